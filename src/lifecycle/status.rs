//! The engine's state as a Kubernetes `PodStatus`, shaped exactly as
//! `kubectl get pod -o json` shows it.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as ApiTime;

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
        message: why.map(|(_, m)| m).filter(|m| !m.is_empty()),
        ..Default::default()
    }
}

impl Engine {
    /// The phase as the API shows it, modelled on the kubelet's getPhase:
    /// Pending until every app has run; Running while anything runs, sidecars
    /// included; terminal once everything has stopped. A failed init under
    /// Never and activeDeadlineSeconds fail the pod at once.
    pub fn phase(&self) -> Phase {
        if let Some(phase) = self.finished {
            return phase;
        }
        if let Some(StopCause::DeadlineExceeded | StopCause::InitFailed) =
            self.stop.as_ref().map(|s| s.cause)
        {
            return Phase::Failed;
        }
        // The kubelet's `waiting > 0`: an app that has never run (its image
        // or its configuration not to be had) keeps the pod Pending.
        let every_app_ran = self
            .apps()
            .all(|c| c.is_running() || c.last_terminated.is_some());
        if self.initialized() && every_app_ran {
            Phase::Running
        } else {
            Phase::Pending
        }
    }

    /// The phase the pod ends in: Failed for a deadline or a failed init,
    /// else Succeeded exactly when every app's last run exited 0.
    pub(super) fn terminal_phase(&self, cause: StopCause) -> Phase {
        match cause {
            StopCause::DeadlineExceeded | StopCause::InitFailed => Phase::Failed,
            StopCause::Completed | StopCause::Requested => {
                let ok = self
                    .apps()
                    .all(|c| matches!(&c.last_terminated, Some(t) if t.exit_code == 0));
                if ok { Phase::Succeeded } else { Phase::Failed }
            }
        }
    }

    fn apps(&self) -> impl Iterator<Item = &Container> {
        self.containers
            .iter()
            .filter(|c| c.model.kind == ContainerKind::App)
    }

    pub fn status(&self) -> PodStatus {
        let initialized = self.initialized();
        // The last init entry that ever ran: when the pod ends, entries up to
        // it that did not end are reported failed (see container_status).
        let last_ran_init = self
            .containers
            .iter()
            .rposition(|c| c.model.kind != ContainerKind::App && c.run > 0);
        let (init_statuses, app_statuses): (Vec<_>, Vec<_>) = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let before_last_ran = last_ran_init.is_some_and(|last| i <= last);
                (
                    c.model.kind,
                    self.container_status(c, initialized, before_last_ran),
                )
            })
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
        // A finished pod's conditions say how it ended.
        let terminal = self.finished.map(|p| match p {
            Phase::Succeeded => "PodCompleted",
            _ => "PodFailed",
        });
        let not_ready = match terminal {
            Some(reason) => Some((reason, String::new())),
            None => (!ready).then(|| {
                let unready =
                    names(&|c| c.model.kind != ContainerKind::Init && !(c.ready && c.is_running()));
                (
                    "ContainersNotReady",
                    format!("containers with unready status: [{unready}]"),
                )
            }),
        };
        let not_initialized = not_initialized.or_else(|| {
            (self.finished == Some(Phase::Succeeded)).then(|| ("PodCompleted", String::new()))
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

    /// `before_last_ran`: an init entry at or before the last one that ran.
    fn container_status(
        &self,
        c: &Container,
        initialized: bool,
        before_last_ran: bool,
    ) -> ContainerStatus {
        // When the pod has finished, a container that did not end is
        // reported failed, as the kubelet's TerminatePod does: apps once the
        // pod was initialized; init entries up to the last one that ran.
        let unaccounted = self.finished.is_some()
            && !matches!(c.state, State::Terminated(_))
            && match c.model.kind {
                ContainerKind::App => initialized,
                _ => before_last_ran,
            };
        let state = match &c.state {
            _ if unaccounted => terminated(&Terminated {
                exit_code: 137,
                signal: None,
                reason: "ContainerStatusUnknown".to_owned(),
                message: Some(
                    "The container could not be located when the pod was terminated".to_owned(),
                ),
                started_at: None,
                finished_at: self.finished_at.unwrap_or(Time(0)),
            }),
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
            // A regular init container is ready once it has completed.
            ready: match c.model.kind {
                ContainerKind::Init => {
                    matches!(&c.state, State::Terminated(t) if t.exit_code == 0)
                }
                _ => c.ready && c.is_running(),
            },
            restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
            started: Some(c.started && c.is_running()),
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            ..Default::default()
        }
    }
}
