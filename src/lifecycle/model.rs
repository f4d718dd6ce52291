//! What the engine needs to know of a pod: its containers in start order,
//! which hooks and probes each has (with their timing), and the pod's
//! policies; taken from the compiled pod.

use crate::manifest::{ContainerKind, defaults};
use crate::pod::{HookPlan, PodPlan, ProbePlan};

pub use crate::pod::RestartPolicy;

/// A probe as the engine runs it: when, and how its results count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// A probe's own `terminationGracePeriodSeconds`, used when its failure
    /// kills the container.
    pub termination_grace_seconds: Option<i64>,
    /// The first check this long after the probe starts.
    pub initial_delay_ms: i64,
    pub period_ms: i64,
    /// How long one check may take.
    pub timeout_ms: i64,
}

impl Default for ProbeSpec {
    /// A probe with the API server's defaults.
    fn default() -> ProbeSpec {
        ProbeSpec {
            success_threshold: defaults::PROBE_SUCCESS_THRESHOLD as u32,
            failure_threshold: defaults::PROBE_FAILURE_THRESHOLD as u32,
            termination_grace_seconds: None,
            initial_delay_ms: 0,
            period_ms: i64::from(defaults::PROBE_PERIOD_SECONDS) * 1000,
            timeout_ms: i64::from(defaults::PROBE_TIMEOUT_SECONDS) * 1000,
        }
    }
}

/// A lifecycle hook: a check the node runs, or a wait the engine times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSpec {
    Run,
    Sleep { seconds: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerModel {
    pub name: String,
    pub kind: ContainerKind,
    pub image: String,
    pub post_start: Option<HookSpec>,
    pub pre_stop: Option<HookSpec>,
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

fn probe(p: Option<&ProbePlan>) -> Option<ProbeSpec> {
    p.map(|p| ProbeSpec {
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
        termination_grace_seconds: p.termination_grace_seconds,
        initial_delay_ms: p.timing.initial_delay_ms,
        period_ms: p.timing.period_ms,
        timeout_ms: p.timing.timeout_ms,
    })
}

fn hook(h: Option<&HookPlan>) -> Option<HookSpec> {
    h.map(|h| match h {
        HookPlan::Sleep { seconds } => HookSpec::Sleep { seconds: *seconds },
        HookPlan::Run(_) => HookSpec::Run,
    })
}

impl PodModel {
    /// The model of a compiled pod.
    pub fn from_plan(plan: &PodPlan) -> PodModel {
        PodModel {
            name: plan.name.clone(),
            restart_policy: plan.restart_policy,
            grace_seconds: plan.grace_seconds,
            active_deadline_seconds: plan.active_deadline_seconds,
            qos_class: plan.qos_class.as_str().to_owned(),
            containers: plan
                .containers
                .iter()
                .map(|c| ContainerModel {
                    name: c.name.clone(),
                    kind: c.kind,
                    image: c.image.clone(),
                    post_start: hook(c.post_start.as_ref()),
                    pre_stop: hook(c.pre_stop.as_ref()),
                    startup_probe: probe(c.startup_probe.as_ref()),
                    readiness_probe: probe(c.readiness_probe.as_ref()),
                    liveness_probe: probe(c.liveness_probe.as_ref()),
                })
                .collect(),
        }
    }
}
