//! `podrun apply FILE`: an update of a running pod. As the API server
//! allows, only container images may change; each changed container is
//! restarted with its new image (the seed's promise for sidecars), through
//! the pod's socket API.

use anyhow::anyhow;
use podrun::api::{self, client::CallError};
use std::collections::BTreeMap;

use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML, one or more documents); `-` reads
    /// standard input
    file: String,
}

/// The kubelet-side rule of ValidatePodUpdate, for what podrun runs.
const FORBIDDEN: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub fn run(args: Args) -> Result<(), Failure> {
    let input = input::load(&args.file, &input::ObjectFiles::default())?;
    for m in input.pods {
        apply(m.pod)?;
    }
    Ok(())
}

/// One pod of the file, to the running pod of its name.
fn apply(new: podrun::manifest::Pod) -> Result<(), Failure> {
    let state = super::load(&new.name)?;
    let mut client = super::connect(&state)?;
    let old_text = state
        .pod
        .as_ref()
        .map(|v| v.to_string())
        .ok_or_else(|| anyhow!("the state of pod {:?} has no manifest", new.name))?;
    let old = podrun::manifest::parse(&old_text)?.pod;
    if !old.differs_only_in_images(&new) {
        return Err(Failure::Input(format!(
            "The Pod {:?} is invalid: {FORBIDDEN}",
            new.name
        )));
    }
    let (before, after) = (old.images(), new.images());
    let changed: BTreeMap<String, String> = after
        .into_iter()
        .filter(|(name, image)| before.get(name) != Some(image))
        .collect();
    if changed.is_empty() {
        println!("pod/{} unchanged", new.name);
        return Ok(());
    }
    let request = serde_json::json!({"version": api::VERSION, "op": "apply", "images": changed});
    client.call(&request, &[]).map_err(|e| match e {
        CallError::Refused { message, .. } => anyhow!("pod {:?}: {message}", new.name),
        other => other.into(),
    })?;
    println!("pod/{} configured", new.name);
    Ok(())
}
