//! Start order: init entries strictly one after another (a regular init
//! container must complete, a sidecar must have started), then every app
//! together; and Job-like completion.

use super::container::State;
use super::model::RestartPolicy;
use super::{Action, Engine, Hook, LifecycleError, StopCause, Time};
use crate::manifest::ContainerKind;

impl Engine {
    /// Starts the next init entry, or the apps once init is done.
    pub(super) fn advance_start(&mut self, now: Time, actions: &mut Vec<Action>) {
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            match c.model.kind {
                ContainerKind::Init => {
                    if c.completed {
                        continue;
                    }
                    if matches!(c.state, State::Pending) {
                        self.start_container(i, actions);
                    }
                    return;
                }
                ContainerKind::Sidecar => {
                    if c.ever_started {
                        continue;
                    }
                    if matches!(c.state, State::Pending) {
                        self.start_container(i, actions);
                    }
                    return;
                }
                ContainerKind::App => break,
            }
        }
        if self.conditions.initialized.is_none() {
            self.conditions.initialized = Some(now);
        }
        // The kubelet starts the apps one after another in spec order, each
        // once the one before is running and its postStart hook has
        // returned (e2e: "should not launch second container before
        // PostStart of the first container completed").
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            if c.model.kind != ContainerKind::App {
                continue;
            }
            match c.state {
                State::Pending => self.start_container(i, actions),
                State::Creating => return,
                State::Running { .. } if !c.post_start_done => return,
                _ => {}
            }
            if matches!(self.containers[i].state, State::Creating) {
                return;
            }
        }
    }

    pub(super) fn start_container(&mut self, i: usize, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        c.state = State::Creating;
        c.run += 1;
        c.run_image = Some(c.image.clone());
        c.post_start_done = false;
        c.started = false;
        c.ready = false;
        c.successes = [0; 3];
        c.failures = [0; 3];
        actions.push(Action::Start {
            container: c.model.name.clone(),
            run: c.run,
            restart_count: c.restart_count,
            image: c.image.clone(),
        });
    }

    pub(super) fn on_started(
        &mut self,
        now: Time,
        i: usize,
        pid: u32,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        self.expect_creating(i, "started")?;
        let c = &mut self.containers[i];
        c.pull_backoff_ms = None;
        c.state = State::Running {
            pid,
            started_at: now,
        };
        if c.model.post_start.is_some() {
            self.run_hook(now, i, Hook::PostStart, None, actions);
        } else {
            c.post_start_done = true;
            self.after_post_start(now, i, actions);
        }
        Ok(())
    }

    /// Events about a run being born are only valid while it is being made.
    pub(super) fn expect_creating(
        &self,
        i: usize,
        event: &'static str,
    ) -> Result<(), LifecycleError> {
        let c = &self.containers[i];
        if matches!(c.state, State::Creating) {
            return Ok(());
        }
        Err(LifecycleError::Unexpected {
            container: c.model.name.clone(),
            event,
            state: c.state_name(),
        })
    }

    /// Init is finished when every regular init container has completed and
    /// every sidecar has started.
    pub(super) fn initialized(&self) -> bool {
        self.conditions.initialized.is_some()
    }

    /// When a kill leaves no app that keeps running or will run again, the
    /// kubelet kills the whole pod (computePodActions' KillPod): sidecars
    /// stop too instead of being probed and restarted beside a dying app.
    pub(super) fn stop_pod_if_no_app_continues(&mut self, now: Time, actions: &mut Vec<Action>) {
        if self.stop.is_some() || !self.initialized() {
            return;
        }
        let policy = self.model.restart_policy;
        let continues = self.containers.iter().any(|c| {
            c.model.kind == ContainerKind::App
                && match (&c.state, &c.stopping) {
                    // Being killed: it comes back unless the policy is Never.
                    (State::Running { .. }, Some(_)) => {
                        c.restart_after_stop || policy != RestartPolicy::Never
                    }
                    (State::Terminated(_), _) => false,
                    _ => true,
                }
        });
        if !continues {
            self.request_stop(now, StopCause::Completed, None, actions);
        }
    }

    /// Never / OnFailure pods complete once every app has finished for good;
    /// a regular init container failing under Never fails the pod. Sidecars
    /// never hold completion up.
    pub(super) fn check_completion(&mut self, now: Time, actions: &mut Vec<Action>) {
        let policy = self.model.restart_policy;
        let init_failed = policy == RestartPolicy::Never
            && self.containers.iter().any(|c| {
                c.model.kind == ContainerKind::Init
                    && !c.completed
                    && matches!(c.state, State::Terminated(_))
            });
        if init_failed {
            self.request_stop(now, StopCause::InitFailed, None, actions);
            return;
        }
        if policy == RestartPolicy::Always || !self.initialized() {
            return;
        }
        let apps_done = self
            .containers
            .iter()
            .filter(|c| c.model.kind == ContainerKind::App)
            .all(|c| matches!(c.state, State::Terminated(_)));
        if apps_done {
            self.request_stop(now, StopCause::Completed, None, actions);
        }
    }
}
