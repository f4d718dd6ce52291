//! What the engine needs to know of a pod: its containers in start order,
//! which hooks and probes each has, and the pod's policies.

use crate::manifest::{ContainerKind, Pod};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// The thresholds the engine applies to a probe's results; the probe runner
/// owns the timing (initial delay, period, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// A probe's own `terminationGracePeriodSeconds`, used when its failure
    /// kills the container.
    pub termination_grace_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerModel {
    pub name: String,
    pub kind: ContainerKind,
    pub image: String,
    pub post_start: bool,
    pub pre_stop: bool,
    pub startup_probe: Option<ProbeSpec>,
    pub readiness_probe: Option<ProbeSpec>,
    pub liveness_probe: Option<ProbeSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodModel {
    pub name: String,
    pub restart_policy: RestartPolicy,
    pub grace_seconds: i64,
    pub active_deadline_seconds: Option<i64>,
    pub qos_class: String,
    /// Init entries (regular and sidecar) in order, then the apps.
    pub containers: Vec<ContainerModel>,
}

fn probe(p: Option<&k8s_openapi::api::core::v1::Probe>) -> Option<ProbeSpec> {
    p.map(|p| ProbeSpec {
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        termination_grace_seconds: p.termination_grace_period_seconds,
    })
}

impl PodModel {
    /// The model of a validated pod; `qos_class` comes from the plan.
    pub fn from_pod(pod: &Pod, qos_class: &str) -> PodModel {
        let restart_policy = match pod.spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        let containers = pod
            .containers
            .iter()
            .filter_map(|info| {
                let c = pod.container(info)?;
                let lifecycle = c.lifecycle.as_ref();
                Some(ContainerModel {
                    name: info.name.clone(),
                    kind: info.kind,
                    image: c.image.clone().unwrap_or_default(),
                    post_start: lifecycle.is_some_and(|l| l.post_start.is_some()),
                    pre_stop: lifecycle.is_some_and(|l| l.pre_stop.is_some()),
                    startup_probe: probe(c.startup_probe.as_ref()),
                    readiness_probe: probe(c.readiness_probe.as_ref()),
                    liveness_probe: probe(c.liveness_probe.as_ref()),
                })
            })
            .collect();
        PodModel {
            name: pod.name.clone(),
            restart_policy,
            grace_seconds: pod
                .spec
                .termination_grace_period_seconds
                .unwrap_or(30)
                .max(0),
            active_deadline_seconds: pod.spec.active_deadline_seconds,
            qos_class: qos_class.to_owned(),
            containers,
        }
    }
}
