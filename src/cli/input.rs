//! Reading a manifest named on the command line (`-` is standard input),
//! with the ConfigMaps and Secrets given beside it, and compiling its pods
//! as `up` would: what `validate` reports and `up` refuses is one list.

use std::io::Read;

use anyhow::{Context, anyhow};
use podrun::image::registry::auth::{Keyring, Origin};
use podrun::manifest::{self, Manifest, Objects};
use podrun::plan::{self, NodeFacts, Settings};
use podrun::pod::{self, Identity, PodPlan};

use super::Failure;

pub fn read(file: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let result = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    result.map_err(|e| {
        let what = if file == "-" { "standard input" } else { file };
        Failure::Input(format!("cannot read {what}: {e}"))
    })?;
    Ok(text)
}

/// `--configmap FILE` and `--secret FILE`, as `podman kube play` takes them.
#[derive(clap::Args, Default)]
pub struct ObjectFiles {
    /// A file of v1 ConfigMaps the pods may use (besides those in the
    /// manifest's own file); repeatable
    #[arg(long = "configmap", value_name = "FILE")]
    configmaps: Vec<String>,
    /// A file of v1 Secrets the pods may use, for their volumes,
    /// environment and imagePullSecrets (besides those in the manifest's
    /// own file); repeatable
    #[arg(long = "secret", value_name = "FILE")]
    secrets: Vec<String>,
}

/// A manifest file's pods and the objects they may use.
pub struct Input {
    pub pods: Vec<Manifest>,
    pub objects: Objects,
}

fn warn(file: &str, warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {file}: {w}");
    }
}

/// Reads, parses and validates a manifest file and the object files;
/// warnings go to stderr. The objects of the files given by flag come
/// after the manifest's own, and so replace those of the same name.
pub fn load(file: &str, given: &ObjectFiles) -> Result<Input, Failure> {
    let text = read(file)?;
    let bundle = manifest::parse_all(&text)?;
    warn(file, &bundle.warnings);
    let mut objects = bundle.objects;
    let flagged = given
        .configmaps
        .iter()
        .map(|f| (f, "ConfigMap"))
        .chain(given.secrets.iter().map(|f| (f, "Secret")));
    for (path, kind) in flagged {
        let text = read(path)?;
        let (more, warnings) = manifest::parse_objects(&text, kind)
            .map_err(|e| Failure::Input(format!("{path}: {e}")))?;
        warn(path, &warnings);
        objects.extend(more);
    }
    Ok(Input {
        pods: bundle.pods,
        objects,
    })
}

/// One pod compiled as `up` runs it, or every reason it cannot run here,
/// one line each; with the warnings its compiling noted.
pub struct Compiled {
    pub name: String,
    pub plan: Result<PodPlan, Vec<String>>,
    pub warnings: Vec<String>,
}

/// Compiles each pod of `input` for this node: what the planner, the
/// compiler, the images' checks and the node's admission refuse, as `up`
/// would refuse it, before anything is made.
pub fn compile(
    input: &Input,
    node: &NodeFacts,
    settings: &Settings,
) -> Result<Vec<Compiled>, Failure> {
    let node_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in &input.pods {
        let pod = &m.pod;
        let resources = plan::plan(pod, node, settings);
        let id = Identity {
            uid: podrun::sys::random::uuid_v4()
                .map_err(|e| anyhow!("making the pod's uid: reading random bytes: {e}"))?,
            node_name: node_name.clone(),
        };
        let mut refused = Vec::new();
        let mut plan = match pod::compile(pod, &resources, &id, &input.objects) {
            Ok(plan) => Some(plan),
            Err(unsupported) => {
                refused.extend(unsupported);
                None
            }
        };
        let (pull_secrets, mut warnings) = pod::pull_secrets(pod, &input.objects);
        warnings.extend(pod::unhonoured::of(pod).ignored);
        // A docker config that does not parse is refused, as the API
        // server refuses such a Secret.
        for s in &pull_secrets {
            let origin = Origin::PullSecret(s.name.clone());
            let parsed = if s.legacy {
                Keyring::from_dockercfg(&s.data, origin)
            } else {
                Keyring::from_docker_config_json(&s.data, origin)
            };
            if let Err(e) = parsed {
                refused.push(format!("imagePullSecrets: {e}"));
            }
        }
        if let Some(plan) = &mut plan {
            // Not a refusal: the kubelet starts the pod and the container
            // waits, as it does here; said now all the same.
            for c in &plan.containers {
                if let Err(e) = &c.config {
                    warnings.push(format!(
                        "container {:?} will wait in CreateContainerConfigError: {e}",
                        c.name
                    ));
                }
            }
            plan.pull_secrets = pull_secrets;
            refused.extend(podrun::supervisor::images::refusals(plan));
            // What the sandbox would find wrong on this machine.
            refused.extend(
                plan.sandbox
                    .volumes
                    .iter()
                    .filter_map(podrun::sandbox::volumes::host_path_problem)
                    .map(|e| e.to_string()),
            );
        }
        if !resources.admission.admitted {
            refused.push(format!(
                "the pod does not fit this node: {}",
                resources.admission.reasons.join("; ")
            ));
        }
        out.push(Compiled {
            name: pod.name.clone(),
            plan: match plan {
                Some(plan) if refused.is_empty() => Ok(plan),
                _ => Err(refused),
            },
            warnings,
        });
    }
    Ok(out)
}

/// This machine's facts, for `up`.
pub fn node() -> Result<NodeFacts, Failure> {
    Ok(podrun::sandbox::host::node_facts().context("reading this machine's facts")?)
}

/// `--node-memory` and `--node-cpus`: another node than this machine.
#[derive(clap::Args)]
pub struct NodeFlags {
    /// For a node with this much memory (a quantity such as 16Gi) instead
    /// of this machine's
    #[arg(long, value_name = "QUANTITY", value_parser = parse_memory)]
    node_memory: Option<u64>,
    /// For a node with this many cpus instead of this machine's
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    node_cpus: Option<u32>,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let q = podrun::manifest::Quantity::parse(text).map_err(|e| e.to_string())?;
    u64::try_from(q.value_ceil())
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| "must be a positive amount of memory".to_owned())
}

impl NodeFlags {
    /// This machine's facts only where the flags do not give them.
    pub fn facts(&self) -> Result<NodeFacts, Failure> {
        use podrun::sandbox::host;
        let mut node = match (self.node_memory, self.node_cpus) {
            (Some(memory_bytes), Some(cpus)) => NodeFacts {
                memory_bytes,
                cpus,
                hugepage_sizes: host::hugepage_sizes_on_host(),
            },
            _ => node()?,
        };
        if let Some(memory) = self.node_memory {
            node.memory_bytes = memory;
        }
        if let Some(cpus) = self.node_cpus {
            node.cpus = cpus;
        }
        Ok(node)
    }
}

/// `pod "NAME" cannot run here:` and one `* reason` line each.
pub fn refusal(name: &str, reasons: &[String]) -> String {
    format!("pod {name:?} cannot run here:\n* {}", reasons.join("\n* "))
}
