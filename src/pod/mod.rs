//! A validated pod compiled once into what podrun runs: the `PodPlan`.
//! Every default is resolved here (grace periods, probe timing, pull
//! policies, the environment, the hostname), so that nothing above reads
//! the manifest again: the lifecycle engine takes its model from the plan,
//! the supervisor carries it out, the runtime is handed its sandbox and
//! container configurations. Pure: the pod's uid and the node's name come
//! in as arguments.

pub mod container;
mod expand;
pub mod handler;
pub mod projection;
pub mod sandbox;
pub mod unhonoured;

use crate::api::runtime::{ContainerConfig, Handler, SandboxConfig};
use crate::manifest::{Objects, Pod, defaults};
use crate::plan::{Plan, QosClass};

pub use crate::api::runtime::{DEFAULT_PATH, RootfsFormError, is_rootfs, rootfs_dir};
pub use crate::manifest::ContainerKind;
pub use container::hostname;
pub use expand::expand;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// When an image is pulled (`imagePullPolicy`, defaulted from the tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// When a probe runs, in milliseconds (the kubelet's defaults resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay_ms: i64,
    pub period_ms: i64,
    pub timeout_ms: i64,
}

impl Timing {
    /// A defaulted probe's timing (the defaults again only for one that
    /// was not, as a test's may be).
    pub fn of(p: &k8s_openapi::api::core::v1::Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32| i64::from(v.unwrap_or(default).max(0)) * 1000;
        Timing {
            initial_delay_ms: secs(p.initial_delay_seconds, 0),
            period_ms: secs(p.period_seconds, defaults::PROBE_PERIOD_SECONDS).max(1000),
            timeout_ms: secs(p.timeout_seconds, defaults::PROBE_TIMEOUT_SECONDS).max(1000),
        }
    }
}

/// A probe: what it checks, when, and how its results count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    pub handler: Handler,
    pub timing: Timing,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, for the kill its
    /// failure causes.
    pub termination_grace_seconds: Option<i64>,
}

/// A lifecycle hook: a wait, or a check the runtime runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookPlan {
    Sleep { seconds: i64 },
    Run(Handler),
}

/// One container of the pod, in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    pub kind: ContainerKind,
    pub image: String,
    pub pull_policy: PullPolicy,
    /// What the runtime creates it from; `Err` is the kubelet's
    /// `CreateContainerConfigError`, met at each attempt to start it.
    pub config: Result<ContainerConfig, String>,
    pub startup_probe: Option<ProbePlan>,
    pub readiness_probe: Option<ProbePlan>,
    pub liveness_probe: Option<ProbePlan>,
    pub post_start: Option<HookPlan>,
    pub pre_stop: Option<HookPlan>,
    /// `lifecycle.stopSignal` (`SIGUSR1`...): sent instead of SIGTERM.
    pub stop_signal: Option<String>,
}

/// What is not the manifest's but the pod's: given when it is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: String,
    /// This machine's name (`spec.nodeName`).
    pub node_name: String,
}

/// The compiled pod.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node_name: String,
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds`.
    pub grace_seconds: i64,
    pub active_deadline_seconds: Option<i64>,
    pub qos_class: QosClass,
    pub sandbox: SandboxConfig,
    /// Init containers (regular and sidecar) in order, then the apps.
    pub containers: Vec<ContainerPlan>,
    /// The resources plan (`podrun plan -o json`'s shape).
    pub resources: Plan,
    /// The pod as a v1 Pod (its metadata and spec), as podrun keeps it in
    /// the pod's state.
    pub manifest: serde_json::Value,
    /// Its imagePullSecrets that were found ([`pull_secrets`]).
    pub pull_secrets: Vec<PullSecret>,
    /// What it was compiled from, kept only while its containers'
    /// configurations wait for the pod's addresses
    /// ([`PodPlan::resolve_addresses`]).
    pub waits_for_addresses: Option<Box<Compiled>>,
}

/// The pod and the objects given with it, as they were compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub pod: Pod,
    pub objects: Objects,
}

impl PodPlan {
    /// Once the sandbox is on the network: the configurations of the
    /// containers again, with the pod's and the node's addresses, for a
    /// pod whose environment names them (the kubelet makes every
    /// container's configuration after the sandbox; podrun only those).
    pub fn resolve_addresses(&mut self, addresses: &container::Addresses) {
        let Some(compiled) = self.waits_for_addresses.take() else {
            return;
        };
        let pod = &compiled.pod;
        let given = projection::Given {
            objects: &compiled.objects,
            node: Some(&self.resources.node),
        };
        let hostname = hostname(pod);
        let facts = container::PodFacts {
            pod,
            uid: &self.uid,
            hostname: &hostname,
            node_name: &self.node_name,
            addresses,
        };
        for info in &pod.containers {
            let Some(c) = pod.container(info) else {
                continue;
            };
            if let Some(plan) = self.containers.iter_mut().find(|p| p.name == info.name) {
                plan.config = config_of(&facts, &given, c, &self.resources);
            }
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerPlan> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The containers of a kind, in order.
    pub fn names_of(&self, kind: ContainerKind) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.name.clone())
            .collect()
    }
}

fn restart_policy(pod: &Pod) -> RestartPolicy {
    match pod.spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    }
}

/// The defaulted `imagePullPolicy` (the tag's default for one that was
/// not defaulted, as a test's may be).
fn pull_policy(c: &k8s_openapi::api::core::v1::Container) -> PullPolicy {
    let image = c.image.as_deref().unwrap_or_default();
    match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some(_) => PullPolicy::IfNotPresent,
        None if defaults::image_is_latest(image) => PullPolicy::Always,
        None => PullPolicy::IfNotPresent,
    }
}

/// The pod as a v1 Pod: its metadata and spec.
fn manifest_json(pod: &Pod) -> serde_json::Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    serde_json::to_value(k8s_openapi::api::core::v1::Pod {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            labels: Some(pod.labels.clone()),
            annotations: Some(pod.annotations.clone()),
            ..Default::default()
        },
        spec: Some(pod.spec.clone()),
        status: None,
    })
    .unwrap_or_default()
}

/// Compiles a validated pod with its resources plan and the ConfigMaps and
/// Secrets given with it. `Err` lists, one line each, what the pod asks
/// for that podrun cannot run (yet), or cannot run without (a volume's
/// ConfigMap or Secret that is not there).
///
/// The pod's addresses are not known yet: a pod whose environment names
/// them keeps what it was compiled from until they are.
pub fn compile(
    pod: &Pod,
    resources: &Plan,
    id: &Identity,
    objects: &Objects,
) -> Result<PodPlan, Vec<String>> {
    let given = projection::Given {
        objects,
        node: Some(&resources.node),
    };
    let hostname = hostname(pod);
    let no_addresses = container::Addresses::default();
    let facts = container::PodFacts {
        pod,
        uid: &id.uid,
        hostname: &hostname,
        node_name: &id.node_name,
        addresses: &no_addresses,
    };
    let mut refused = Vec::new();
    let mut containers = Vec::new();
    for info in &pod.containers {
        let Some(c) = pod.container(info) else {
            continue;
        };
        let name = &info.name;
        let mut probe = |field: &str, p: Option<&k8s_openapi::api::core::v1::Probe>| {
            let p = p?;
            match handler::of_probe(p, c) {
                Ok(handler) => Some(ProbePlan {
                    handler,
                    timing: Timing::of(p),
                    success_threshold: p
                        .success_threshold
                        .unwrap_or(defaults::PROBE_SUCCESS_THRESHOLD)
                        .max(1) as u32,
                    failure_threshold: p
                        .failure_threshold
                        .unwrap_or(defaults::PROBE_FAILURE_THRESHOLD)
                        .max(1) as u32,
                    termination_grace_seconds: p.termination_grace_period_seconds,
                }),
                Err(e) => {
                    refused.push(format!("container {name:?}: {field}: {e}"));
                    None
                }
            }
        };
        let startup_probe = probe("startupProbe", c.startup_probe.as_ref());
        let readiness_probe = probe("readinessProbe", c.readiness_probe.as_ref());
        let liveness_probe = probe("livenessProbe", c.liveness_probe.as_ref());
        let lifecycle = c.lifecycle.as_ref();
        let mut hook = |field: &str, h: Option<&k8s_openapi::api::core::v1::LifecycleHandler>| {
            match handler::of_hook(h?, c) {
                Ok(plan) => Some(plan),
                Err(e) => {
                    refused.push(format!("container {name:?}: lifecycle.{field}: {e}"));
                    None
                }
            }
        };
        let post_start = hook("postStart", lifecycle.and_then(|l| l.post_start.as_ref()));
        let pre_stop = hook("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref()));
        let stop_signal = lifecycle.and_then(|l| l.stop_signal.clone());
        if let Some(signal) = &stop_signal
            && signal.parse::<nix::sys::signal::Signal>().is_err()
        {
            refused.push(format!(
                "container {name:?}: lifecycle.stopSignal {signal}: podrun cannot send real-time signals yet"
            ));
        }
        let image = c.image.clone().unwrap_or_default();
        let config = config_of(&facts, &given, c, resources);
        for m in c.volume_mounts.iter().flatten() {
            if m.mount_propagation.as_deref() == Some("Bidirectional") {
                refused.push(format!(
                    "container {name:?}: volumeMounts {:?}: podrun does not do Bidirectional mount propagation yet",
                    m.mount_path
                ));
            }
        }
        if is_rootfs(&image)
            && let Err(e) = rootfs_dir(&image)
        {
            refused.push(format!("container {name:?}: {e}"));
        }
        containers.push(ContainerPlan {
            name: name.clone(),
            kind: info.kind,
            pull_policy: pull_policy(c),
            image,
            config,
            startup_probe,
            readiness_probe,
            liveness_probe,
            post_start,
            pre_stop,
            stop_signal,
        });
    }
    let mut volumes = Vec::new();
    for v in pod.spec.volumes.iter().flatten() {
        match sandbox::volume(v, pod, &id.uid, &given) {
            Ok(volume) => volumes.push(volume),
            Err(e) => refused.push(format!("volume {:?}: {e}", v.name)),
        }
    }
    let bandwidth = sandbox::bandwidth(&pod.annotations).unwrap_or_else(|e| {
        refused.push(e);
        None
    });
    // The kubelet leaves a hostNetwork pod unshaped without a word: it has
    // no interface of its own to shape. podrun says so.
    let bandwidth = match bandwidth {
        Some(_) if pod.spec.host_network == Some(true) => {
            refused.push(format!(
                "annotations {}/{}: a hostNetwork pod has no interface of its own to shape",
                sandbox::INGRESS_BANDWIDTH,
                sandbox::EGRESS_BANDWIDTH
            ));
            None
        }
        b => b,
    };
    refused.extend(unhonoured::of(pod).refused);
    if !refused.is_empty() {
        return Err(refused);
    }
    let spec = &pod.spec;
    Ok(PodPlan {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        uid: id.uid.clone(),
        node_name: id.node_name.clone(),
        restart_policy: restart_policy(pod),
        grace_seconds: spec
            .termination_grace_period_seconds
            .unwrap_or(defaults::GRACE_SECONDS)
            .max(0),
        active_deadline_seconds: spec.active_deadline_seconds,
        qos_class: resources.qos_class,
        sandbox: SandboxConfig {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            uid: id.uid.clone(),
            hostname,
            node_name: id.node_name.clone(),
            namespaces: sandbox::namespaces(spec),
            dns: sandbox::dns(spec),
            hosts: sandbox::hosts(spec),
            volumes,
            cgroup: resources.cgroup.pod.clone(),
            port_mappings: sandbox::port_mappings(spec),
            bandwidth,
            annotations: pod.annotations.clone(),
        },
        containers,
        resources: resources.clone(),
        manifest: manifest_json(pod),
        pull_secrets: Vec::new(),
        waits_for_addresses: container::uses_addresses(pod).then(|| {
            Box::new(Compiled {
                pod: pod.clone(),
                objects: objects.clone(),
            })
        }),
    })
}

/// Container `c`'s configuration, with its cgroup values and
/// oom_score_adj from the resources plan.
fn config_of(
    facts: &container::PodFacts,
    given: &projection::Given,
    c: &k8s_openapi::api::core::v1::Container,
    resources: &Plan,
) -> Result<ContainerConfig, String> {
    container::config(facts, given, c)
        .map(|mut config| {
            config.cgroup = resources
                .cgroup
                .containers
                .get(&c.name)
                .cloned()
                .unwrap_or_default();
            config.oom_score_adj = resources.oom_score_adj.get(&c.name).copied().unwrap_or(0);
            config
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

/// An imagePullSecret of the pod, as found among the Secrets given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecret {
    pub name: String,
    /// `kubernetes.io/dockercfg` (`.dockercfg`) rather than
    /// `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`).
    pub legacy: bool,
    pub data: Vec<u8>,
}

/// The pod's imagePullSecrets from `secrets`, and a warning for each that
/// is missing or not a docker config (the kubelet goes on without it, as
/// here, and says so: FailedToRetrieveImagePullSecret).
pub fn pull_secrets(
    pod: &Pod,
    objects: &crate::manifest::Objects,
) -> (Vec<PullSecret>, Vec<String>) {
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    for r in pod.spec.image_pull_secrets.iter().flatten() {
        let name = r.name.as_str();
        // The kubelet passes over an empty name without a word.
        if name.is_empty() {
            continue;
        }
        let Some(secret) = objects.secret(&pod.namespace, name) else {
            warnings.push(format!(
                "imagePullSecrets: secret {name:?} not found in namespace {:?} (give it in the manifest's file or with --secret FILE); pulling without it",
                pod.namespace
            ));
            continue;
        };
        let (key, legacy) = match secret.type_.as_deref() {
            Some("kubernetes.io/dockercfg") => (".dockercfg", true),
            _ => (".dockerconfigjson", false),
        };
        let data = secret.data.as_ref().and_then(|d| d.get(key));
        match (secret.type_.as_deref(), data) {
            (Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg"), Some(data)) => {
                found.push(PullSecret {
                    name: name.to_owned(),
                    legacy,
                    data: data.0.clone(),
                });
            }
            (t, _) => warnings.push(format!(
                "imagePullSecrets: secret {name:?} is not a docker config (type {}, wants kubernetes.io/dockerconfigjson with a {key} key); pulling without it",
                t.unwrap_or("Opaque")
            )),
        }
    }
    (found, warnings)
}
