//! `podrun up FILE`: runs the pod in the foreground until it reaches a
//! terminal phase; container output on stdout as `name | line`, lifecycle
//! events on stderr. Ctrl-C or SIGTERM stops it in order; a second one
//! kills at once.

use anyhow::{Context, anyhow};
use podrun::lifecycle::Phase;
use podrun::plan::{self, Settings};
use podrun::sandbox::host;
use podrun::supervisor::{self, Options, state::State, support};

use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML); `-` reads standard input
    file: String,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids); unlimited if unset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let manifest = input::load(&args.file)?;
    let pod = manifest.pod;
    let unsupported = support::unsupported(&pod);
    if !unsupported.is_empty() {
        return Err(Failure::Input(format!(
            "pod {:?} cannot run here yet:\n* {}",
            pod.name,
            unsupported.join("\n* ")
        )));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::Input(
            "podrun up must run as root (it makes cgroups, namespaces and mounts)".to_owned(),
        ));
    }
    let node = host::node_facts().context("reading this machine's facts")?;
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let plan = plan::plan(&pod, &node, &settings);
    if !plan.admission.admitted {
        return Err(anyhow!(
            "pod {:?} does not fit this node: {}",
            pod.name,
            plan.admission.reasons.join("; ")
        )
        .into());
    }
    let phase = supervisor::run(&pod, &plan, Options { echo: true })
        .with_context(|| format!("running pod {:?}", pod.name))?;
    match phase {
        Phase::Succeeded => {
            eprintln!("pod/{} Succeeded", pod.name);
            Ok(())
        }
        _ => {
            let why = State::load(&pod.name)
                .map(|s| failures(&s))
                .unwrap_or_default();
            Err(anyhow!("pod/{} {}{why}", pod.name, phase.as_str()).into())
        }
    }
}

/// Which containers failed and how, from the final status.
fn failures(state: &State) -> String {
    let statuses = state
        .status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(state.status.container_statuses.iter().flatten());
    let mut out = Vec::new();
    for s in statuses {
        let terminated = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        let waiting = s.state.as_ref().and_then(|st| st.waiting.as_ref());
        if let Some(t) = terminated.filter(|t| t.exit_code != 0) {
            let reason = t.reason.as_deref().unwrap_or("Error");
            let message = t
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            out.push(format!(
                "{}: {reason} (exit code {}){message}",
                s.name, t.exit_code
            ));
        } else if let Some(w) = waiting {
            out.push(format!(
                "{}: {}{}",
                s.name,
                w.reason.as_deref().unwrap_or("Waiting"),
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(reason) = &state.status.reason {
        out.insert(0, reason.clone());
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(": {}", out.join("; "))
    }
}
