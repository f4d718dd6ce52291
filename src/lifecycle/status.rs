//! The engine's state as a Kubernetes `PodStatus`, shaped exactly as
//! `kubectl get pod -o json` shows it.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as ApiTime;
use k8s_openapi::jiff::Timestamp;

use super::container::{Container, State, Terminated};
use super::{Engine, Phase, StopCause, Time};
use crate::manifest::ContainerKind;

/// Kubernetes times have whole seconds.
fn api_time(t: Time) -> Option<ApiTime> {
    Timestamp::from_second(t.0.div_euclid(1000))
        .ok()
        .map(ApiTime)
}

fn terminated(t: &Terminated) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.and_then(api_time),
            finished_at: api_time(t.finished_at),
            container_id: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

fn condition(
    type_: &str,
    status: bool,
    at: Option<Time>,
    why: Option<(&str, String)>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        last_transition_time: at.and_then(api_time),
        reason: why.as_ref().map(|(r, _)| (*r).to_owned()),
        message: why.map(|(_, m)| m),
        ..Default::default()
    }
}

impl Engine {
    /// The phase as the API shows it while the pod runs and after.
    pub fn phase(&self) -> Phase {
        if let Some(phase) = self.finished {
            return phase;
        }
        match self.stop.as_ref().map(|s| s.cause) {
            Some(StopCause::DeadlineExceeded | StopCause::InitFailed) => return Phase::Failed,
            Some(StopCause::Completed) => {
                let ok = self
                    .apps()
                    .all(|c| matches!(&c.last_terminated, Some(t) if t.exit_code == 0));
                return if ok { Phase::Succeeded } else { Phase::Failed };
            }
            _ => {}
        }
        let any_app_ran = self
            .apps()
            .any(|c| c.is_running() || c.last_terminated.is_some());
        if self.initialized() && any_app_ran {
            Phase::Running
        } else {
            Phase::Pending
        }
    }

    fn apps(&self) -> impl Iterator<Item = &Container> {
        self.containers
            .iter()
            .filter(|c| c.model.kind == ContainerKind::App)
    }

    pub fn status(&self) -> PodStatus {
        let initialized = self.initialized();
        let (init_statuses, app_statuses): (Vec<_>, Vec<_>) = self
            .containers
            .iter()
            .map(|c| (c.model.kind, self.container_status(c, initialized)))
            .partition(|(kind, _)| *kind != ContainerKind::App);
        let strip = |list: Vec<(ContainerKind, ContainerStatus)>| -> Vec<ContainerStatus> {
            list.into_iter().map(|(_, s)| s).collect()
        };
        let init_statuses = strip(init_statuses);
        PodStatus {
            phase: Some(self.phase().as_str().to_owned()),
            conditions: Some(self.conditions()),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            container_statuses: Some(strip(app_statuses)),
            qos_class: Some(self.model.qos_class.clone()),
            start_time: self.start_time.and_then(api_time),
            reason: self.reason.as_ref().map(|(r, _)| r.clone()),
            message: self.reason.as_ref().map(|(_, m)| m.clone()),
            ..Default::default()
        }
    }

    /// The pod conditions, in the order the kubelet lists them.
    fn conditions(&self) -> Vec<PodCondition> {
        let start = self.start_time;
        let names = |pick: &dyn Fn(&Container) -> bool| -> String {
            let list: Vec<&str> = self
                .containers
                .iter()
                .filter(|c| pick(c))
                .map(|c| c.model.name.as_str())
                .collect();
            list.join(" ")
        };
        let initialized = self.initialized();
        let not_initialized = (!initialized).then(|| {
            let incomplete = names(&|c| match c.model.kind {
                ContainerKind::Init => !c.completed,
                ContainerKind::Sidecar => !c.ever_started,
                ContainerKind::App => false,
            });
            (
                "ContainersNotInitialized",
                format!("containers with incomplete status: [{incomplete}]"),
            )
        });
        let (ready, ready_at) = self.conditions.ready;
        let not_ready = (!ready).then(|| {
            let unready =
                names(&|c| c.model.kind != ContainerKind::Init && !(c.ready && c.is_running()));
            (
                "ContainersNotReady",
                format!("containers with unready status: [{unready}]"),
            )
        });
        vec![
            condition(
                "PodReadyToStartContainers",
                self.finished.is_none(),
                start,
                None,
            ),
            condition(
                "Initialized",
                initialized,
                self.conditions.initialized.or(start),
                not_initialized,
            ),
            condition("Ready", ready, ready_at, not_ready.clone()),
            condition("ContainersReady", ready, ready_at, not_ready),
            condition("PodScheduled", true, start, None),
        ]
    }

    fn container_status(&self, c: &Container, initialized: bool) -> ContainerStatus {
        let state = match &c.state {
            State::Pending if c.model.kind == ContainerKind::App && initialized => {
                waiting("ContainerCreating", None)
            }
            State::Pending => waiting("PodInitializing", None),
            State::Creating => waiting("ContainerCreating", None),
            State::Running { started_at, .. } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: api_time(*started_at),
                }),
                ..Default::default()
            },
            State::Terminated(t) => terminated(t),
            State::BackOff {
                reason, message, ..
            } => waiting(reason, Some(message.clone())),
        };
        // lastState is the run before the current one.
        let last_state = match &c.state {
            State::Terminated(_) => c.previous_terminated.as_ref().map(terminated),
            _ => c.last_terminated.as_ref().map(terminated),
        };
        ContainerStatus {
            name: c.model.name.clone(),
            image: c.run_image.clone().unwrap_or_else(|| c.image.clone()),
            image_id: String::new(),
            ready: c.ready && c.is_running(),
            restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
            started: Some(c.started && c.is_running()),
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            ..Default::default()
        }
    }
}
