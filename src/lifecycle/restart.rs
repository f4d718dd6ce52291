//! Exits and restarts: what a finished container becomes (completed, to be
//! restarted after its backoff, or done for good), by its kind and the pod's
//! restartPolicy.

use super::backoff::{INITIAL_MS, MAX_MS, PULL_RESYNC_MS};
use super::container::Container;
use super::container::{KillReason, State, Terminated};
use super::model::RestartPolicy;
use super::{Action, Engine, ExitStatus, LifecycleError, Time, TimerKind};
use crate::manifest::ContainerKind;

impl Engine {
    pub(super) fn on_exited(
        &mut self,
        now: Time,
        i: usize,
        status: ExitStatus,
        oom_killed: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        let c = &self.containers[i];
        let started_at = match c.state {
            State::Running { started_at, .. } => Some(started_at),
            State::Creating => None,
            _ => {
                return Err(LifecycleError::Unexpected {
                    container: c.model.name.clone(),
                    event: "exited",
                    state: c.state_name(),
                });
            }
        };
        let (exit_code, signal) = match status {
            ExitStatus::Code(code) => (code, None),
            ExitStatus::Signal(sig) => (128i32.saturating_add(sig), Some(sig)),
        };
        let reason = if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let message = self.containers[i].next_message.take();
        self.finish_run(
            now,
            i,
            Terminated {
                exit_code,
                signal,
                reason: reason.to_owned(),
                message,
                started_at,
                finished_at: now,
            },
            actions,
        );
        Ok(())
    }

    pub(super) fn on_start_failed(
        &mut self,
        now: Time,
        i: usize,
        message: String,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        self.expect_creating(i, "start failed")?;
        // containerd reports a failed exec as exit code 128, StartError.
        self.finish_run(
            now,
            i,
            Terminated {
                exit_code: 128,
                signal: None,
                reason: "StartError".to_owned(),
                message: Some(message),
                started_at: None,
                finished_at: now,
            },
            actions,
        );
        Ok(())
    }

    /// The container could not even be created: it waits with `reason`
    /// (CreateContainerError, CreateContainerConfigError) and is tried
    /// again after its backoff.
    pub(super) fn on_create_failed(
        &mut self,
        now: Time,
        i: usize,
        reason: &'static str,
        message: String,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        self.expect_creating(i, "create failed")?;
        if self.stop.is_some() {
            self.containers[i].state = State::Pending;
            return Ok(());
        }
        let at = self.containers[i].backoff.restart_at(now);
        let at = if at == now {
            now.plus_millis(super::backoff::INITIAL_MS)
        } else {
            at
        };
        self.wait_to_restart(i, at, reason, message, actions);
        Ok(())
    }

    /// Its image could not be had. As on the kubelet, the container waits
    /// in `ErrImagePull` (or `ErrImageNeverPull`) with the image's own
    /// back-off (10 s, doubled at each failure up to 300 s); the pod's next sync
    /// ([`PULL_RESYNC_MS`] later, the kubelet's pod worker back-off) that
    /// finds the back-off still running shows `ImagePullBackOff`.
    pub(super) fn on_pull_failed(
        &mut self,
        now: Time,
        i: usize,
        never: bool,
        message: String,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        let reason = if never {
            "ErrImageNeverPull"
        } else {
            "ErrImagePull"
        };
        self.expect_creating(i, "pull failed")?;
        let c = &mut self.containers[i];
        c.pulling = false;
        if self.stop.is_some() {
            c.state = not_started(c);
            return Ok(());
        }
        // A missing image with Never is no pull to back off from: the
        // kubelet looks again at each sync.
        let delay = if never {
            PULL_RESYNC_MS
        } else {
            c.pull_backoff_ms
                .map_or(INITIAL_MS, |d| (d * 2).min(MAX_MS))
        };
        if !never {
            c.pull_backoff_ms = Some(delay);
        }
        let until = now.plus_millis(delay);
        self.wait_to_restart(i, until, reason, message, actions);
        let resync = now.plus_millis(PULL_RESYNC_MS);
        if !never && resync < until {
            let timer = self.timer(TimerKind::PullResync(self.containers[i].model.name.clone()));
            self.containers[i].resync_generation = timer.generation;
            actions.push(Action::ArmTimer { at: resync, timer });
        }
        Ok(())
    }

    /// A sync during an image's back-off: `ImagePullBackOff`.
    pub(super) fn on_pull_resync(&mut self, i: usize, generation: u64) {
        if self.containers[i].resync_generation != generation {
            return;
        }
        let image = self.containers[i].image.clone();
        if let State::BackOff {
            reason, message, ..
        } = &mut self.containers[i].state
            && *reason == "ErrImagePull"
        {
            *reason = "ImagePullBackOff";
            *message = format!("Back-off pulling image {image:?}");
        }
    }

    /// A pull began: until it ends nothing of the container exists, so a
    /// stop does not wait for it.
    pub(super) fn on_pull_started(&mut self, i: usize) -> Result<(), LifecycleError> {
        self.expect_creating(i, "pull started")?;
        self.containers[i].pulling = true;
        Ok(())
    }

    /// The image is there: the kubelet goes on to create the container,
    /// with the image the spec names now (an apply during the pull wins).
    pub(super) fn on_image_pulled(
        &mut self,
        i: usize,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        self.expect_creating(i, "image pulled")?;
        let c = &mut self.containers[i];
        c.pulling = false;
        if self.stop.is_some() {
            c.state = not_started(c);
            return Ok(());
        }
        c.run_image = Some(c.image.clone());
        actions.push(Action::Start {
            container: c.model.name.clone(),
            run: c.run,
            restart_count: c.restart_count,
            image: c.image.clone(),
        });
        Ok(())
    }

    /// Records a finished run and decides what comes next for the container.
    fn finish_run(&mut self, now: Time, i: usize, t: Terminated, actions: &mut Vec<Action>) {
        self.stop_probes(i, actions);
        let stopping = self.containers[i].stopping.take();
        let c = &mut self.containers[i];
        c.started = false;
        c.ready = false;
        let restart_anyway = std::mem::take(&mut c.restart_after_stop);
        if c.model.kind == ContainerKind::Init && t.exit_code == 0 {
            c.completed = true;
        }
        // A container killed for failing its liveness or startup probe is
        // started again unless the policy is Never, whatever it exited with
        // (the kubelet puts it straight back among the containers to start).
        let probe_kill = stopping
            .as_ref()
            .is_some_and(|s| matches!(s.reason, KillReason::Liveness | KillReason::Startup));
        let wants_restart = restart_anyway
            || (probe_kill && self.model.restart_policy != RestartPolicy::Never)
            || match c.model.kind {
                ContainerKind::Sidecar => true,
                ContainerKind::Init => {
                    t.exit_code != 0 && self.model.restart_policy != RestartPolicy::Never
                }
                ContainerKind::App => match self.model.restart_policy {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => t.exit_code != 0,
                    RestartPolicy::Never => false,
                },
            };
        let finished_at = t.finished_at;
        c.previous_terminated = c.last_terminated.replace(t.clone());
        c.state = State::Terminated(t);
        let pod_stopping =
            self.stop.is_some() || stopping.is_some_and(|s| s.reason == KillReason::PodStop);
        if !wants_restart || pod_stopping {
            return;
        }
        let name = self.containers[i].model.name.clone();
        let at = self.containers[i].backoff.restart_at(finished_at);
        if at <= now {
            self.restart(i, finished_at, now, actions);
        } else {
            let delay = at.millis_since(finished_at) / 1000;
            let pod = self.model.name.clone();
            self.wait_to_restart(
                i,
                at,
                "CrashLoopBackOff",
                format!("back-off {delay}s restarting failed container={name} pod={pod}"),
                actions,
            );
        }
    }

    fn wait_to_restart(
        &mut self,
        i: usize,
        at: Time,
        reason: &'static str,
        message: String,
        actions: &mut Vec<Action>,
    ) {
        let timer = self.timer(TimerKind::Backoff(self.containers[i].model.name.clone()));
        self.containers[i].state = State::BackOff {
            until: at,
            reason,
            message,
            generation: timer.generation,
        };
        actions.push(Action::ArmTimer { at, timer });
    }

    fn restart(&mut self, i: usize, finished_at: Time, now: Time, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        c.backoff.record_restart(finished_at, now);
        c.restart_count += 1;
        self.start_container(i, actions);
    }

    pub(super) fn on_backoff_timer(
        &mut self,
        now: Time,
        i: usize,
        timer: &super::Timer,
        actions: &mut Vec<Action>,
    ) {
        if self.stop.is_some() {
            return;
        }
        let State::BackOff {
            generation, reason, ..
        } = self.containers[i].state
        else {
            return;
        };
        if generation != timer.generation {
            return;
        }
        // The run that could not be made (no image, no config) was never a
        // container: trying it again is no restart. Its count was taken
        // when it was first tried after the last run that did exist.
        if CREATE_REASONS.contains(&reason) && self.containers[i].last_terminated.is_some() {
            self.start_container(i, actions);
            return;
        }
        match self.containers[i]
            .last_terminated
            .as_ref()
            .map(|t| t.finished_at)
        {
            Some(finished_at) => self.restart(i, finished_at, now, actions),
            // Never ran (creation failed): try again without counting a
            // restart. A pull's back-off is its own, not the crash loop's.
            None => {
                if self.containers[i].pull_backoff_ms.is_none() {
                    self.containers[i].backoff.record_restart(now, now);
                }
                self.start_container(i, actions);
            }
        }
    }

    /// A new image restarts that running container only, whatever the
    /// policy; one that is not running picks the image up when it next starts.
    pub(super) fn on_image_changed(
        &mut self,
        now: Time,
        i: usize,
        image: String,
        actions: &mut Vec<Action>,
    ) {
        let c = &mut self.containers[i];
        if c.image == image {
            return;
        }
        c.image = image;
        // The kubelet keys backoff by the container's spec hash, and a
        // pull's by the image: a new image starts with a clean slate.
        c.backoff = Default::default();
        c.pull_backoff_ms = None;
        if self.stop.is_some() {
            return;
        }
        let c = &self.containers[i];
        match c.state {
            // A running regular init container is left to finish, and a
            // sidecar still starting up is left to start (computePodActions
            // checks the spec only of apps and started sidecars).
            State::Running { .. }
                if c.model.kind == ContainerKind::App
                    || (c.model.kind == ContainerKind::Sidecar && c.started) =>
            {
                self.containers[i].restart_after_stop = true;
                let deadline = now.plus_secs(self.model.grace_seconds);
                self.kill_container(now, i, KillReason::ImageChanged, deadline, actions);
            }
            // Waiting out a backoff: start at once with the new image (no
            // restart counted when the waiting run was never made).
            State::BackOff { reason, .. } => {
                if CREATE_REASONS.contains(&reason) {
                    self.start_container(i, actions);
                } else {
                    let finished_at = c.last_terminated.as_ref().map_or(now, |t| t.finished_at);
                    self.restart(i, finished_at, now, actions);
                }
            }
            _ => {}
        }
    }
}

/// Waiting reasons of a run that was never made: its image or its config
/// could not be had.
const CREATE_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "CreateContainerError",
    "CreateContainerConfigError",
];

/// What a container that will not start now shows: its last run, or nothing.
pub(super) fn not_started(c: &Container) -> State {
    match c.last_terminated.clone() {
        Some(t) => State::Terminated(t),
        None => State::Pending,
    }
}
