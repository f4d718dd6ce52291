//! The pod lifecycle engine: the kubelet's decisions — what to start, kill,
//! restart and when — as a pure state machine. The supervisor feeds it
//! events stamped with the time it observed them and carries out the actions
//! it returns; the engine owns every deadline and asks for timers.
//!
//! One file per concern: `ordering` (init sequence, apps), `restart`
//! (exits, backoff), `probes` (startup, readiness, liveness, hooks, and
//! when each check runs), `termination` (ordered stop), `status` (the
//! PodStatus view). `effects` is what the actions ask of the world.

mod backoff;
mod container;
mod effects;
mod events;
mod model;
mod ordering;
mod probes;
mod restart;
mod status;
mod termination;

pub use container::Terminated;
pub use effects::{Effects, carry_out};
pub use events::{
    Action, Event, ExitStatus, Hook, LifecycleError, Phase, ProbeKind, Signal, Time, Timer,
    TimerKind,
};
pub use model::{ContainerModel, HookSpec, PodModel, ProbeSpec, RestartPolicy};

use container::Container;

/// Why the pod is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Requested,
    /// Every app has finished for good (Never / OnFailure pods).
    Completed,
    /// A regular init container failed under restartPolicy Never.
    InitFailed,
    DeadlineExceeded,
}

#[derive(Debug, Clone)]
struct PodStop {
    cause: StopCause,
    deadline: Time,
    /// A grace of 0 was asked for: kill at once.
    force: bool,
}

/// Condition type → the time it last changed, and its value.
#[derive(Debug, Clone, Default)]
struct Conditions {
    initialized: Option<Time>,
    ready: (bool, Option<Time>),
}

pub struct Engine {
    model: PodModel,
    containers: Vec<Container>,
    start_time: Option<Time>,
    conditions: Conditions,
    stop: Option<PodStop>,
    finished: Option<Phase>,
    finished_at: Option<Time>,
    /// The generation of the activeDeadlineSeconds timer, if armed.
    deadline_timer: Option<u64>,
    reason: Option<(String, String)>,
    generation: u64,
}

impl Engine {
    pub fn new(model: PodModel) -> Engine {
        let containers = model
            .containers
            .iter()
            .cloned()
            .map(Container::new)
            .collect();
        Engine {
            model,
            containers,
            start_time: None,
            conditions: Conditions::default(),
            stop: None,
            finished: None,
            finished_at: None,
            deadline_timer: None,
            reason: None,
            generation: 0,
        }
    }

    /// The phase the pod ended in, once it has.
    pub fn finished(&self) -> Option<Phase> {
        self.finished
    }

    /// Begins the pod: the first init entry (or the apps), and the
    /// activeDeadlineSeconds timer.
    pub fn start(&mut self, now: Time) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.start_time.is_some() {
            return actions;
        }
        self.start_time = Some(now);
        if let Some(deadline) = self.model.active_deadline_seconds {
            let timer = self.timer(TimerKind::ActiveDeadline);
            self.deadline_timer = Some(timer.generation);
            actions.push(Action::ArmTimer {
                at: now.plus_secs(deadline),
                timer,
            });
        }
        self.reconcile(now, &mut actions);
        actions
    }

    /// Feeds one observation; returns what must happen now.
    pub fn handle(&mut self, now: Time, event: Event) -> Result<Vec<Action>, LifecycleError> {
        if self.start_time.is_none() {
            return Err(LifecycleError::NotStarted);
        }
        let mut actions = Vec::new();
        if self.finished.is_some() {
            return Ok(actions);
        }
        // Events about a container run: find the container once; an event
        // about an earlier run of it is stale.
        let target = match event.run() {
            Some((container, run)) => {
                let i = self.index(container)?;
                if run != self.containers[i].run {
                    return Ok(actions);
                }
                Some(i)
            }
            None => None,
        };
        match (event, target) {
            (Event::Started { pid, .. }, Some(i)) => self.on_started(now, i, pid, &mut actions)?,
            (
                Event::Exited {
                    status, oom_killed, ..
                },
                Some(i),
            ) => self.on_exited(now, i, status, oom_killed, &mut actions)?,
            (Event::StartFailed { message, .. }, Some(i)) => {
                self.on_start_failed(now, i, message, &mut actions)?
            }
            (Event::CreateFailed { message, .. }, Some(i)) => {
                self.on_create_failed(now, i, "CreateContainerError", message, &mut actions)?
            }
            (Event::ConfigFailed { message, .. }, Some(i)) => {
                self.on_create_failed(now, i, "CreateContainerConfigError", message, &mut actions)?
            }
            (Event::PullStarted { .. }, Some(i)) => self.on_pull_started(i)?,
            (Event::ImagePulled { .. }, Some(i)) => self.on_image_pulled(i, &mut actions)?,
            (Event::PullFailed { never, message, .. }, Some(i)) => {
                self.on_pull_failed(now, i, never, message, &mut actions)?
            }
            (Event::HookFinished { hook, result, .. }, Some(i)) => {
                self.on_hook_finished(now, i, hook, result, &mut actions)?
            }
            (
                Event::ProbeResult {
                    probe,
                    success,
                    output,
                    ..
                },
                Some(i),
            ) => self.on_probe(now, i, probe, success, output, &mut actions),
            (Event::TimerFired(timer), _) => self.on_timer(now, timer, &mut actions),
            (Event::StopRequested { grace_seconds }, _) => {
                self.request_stop(now, StopCause::Requested, grace_seconds, &mut actions)
            }
            (Event::ImageChanged { container, image }, _) => {
                let i = self.index(&container)?;
                self.on_image_changed(now, i, image, &mut actions);
            }
            // Every run event has its target found above.
            (_, None) => {}
        }
        self.reconcile(now, &mut actions);
        Ok(actions)
    }

    fn index(&self, name: &str) -> Result<usize, LifecycleError> {
        self.containers
            .iter()
            .position(|c| c.model.name == name)
            .ok_or_else(|| LifecycleError::UnknownContainer(name.to_owned()))
    }

    fn timer(&mut self, kind: TimerKind) -> Timer {
        self.generation += 1;
        Timer {
            kind,
            generation: self.generation,
        }
    }

    fn on_timer(&mut self, now: Time, timer: Timer, actions: &mut Vec<Action>) {
        match &timer.kind {
            TimerKind::Backoff(name) => {
                if let Ok(i) = self.index(name) {
                    self.on_backoff_timer(now, i, &timer, actions);
                }
            }
            TimerKind::KillDeadline(name) => {
                if let Ok(i) = self.index(name) {
                    self.on_kill_deadline(now, i, &timer, actions);
                }
            }
            TimerKind::PullResync(name) => {
                if let Ok(i) = self.index(name) {
                    self.on_pull_resync(i, timer.generation);
                }
            }
            // Past the pod's deadline every sidecar still waiting for its
            // turn gets it: reconcile's termination step sees the time.
            TimerKind::PodGrace => {}
            TimerKind::Probe { container, probe } => {
                if let Ok(i) = self.index(container) {
                    self.on_probe_timer(now, i, *probe, timer.generation, actions);
                }
            }
            TimerKind::HookSleep {
                container,
                run,
                hook,
            } => {
                if let Ok(i) = self.index(container)
                    && self.containers[i].run == *run
                {
                    // A sleep that ends is a hook that succeeded.
                    let _ = self.on_hook_finished(now, i, *hook, Ok(()), actions);
                }
            }
            TimerKind::ActiveDeadline => {
                if self.stop.is_none() && Some(timer.generation) == self.deadline_timer {
                    self.reason = Some((
                        "DeadlineExceeded".to_owned(),
                        "Pod was active on the node longer than the specified deadline".to_owned(),
                    ));
                    self.request_stop(now, StopCause::DeadlineExceeded, None, actions);
                }
            }
        }
    }

    /// After any change: start what may start, restart what is due, finish
    /// the pod when everything is done.
    fn reconcile(&mut self, now: Time, actions: &mut Vec<Action>) {
        if self.finished.is_some() {
            return;
        }
        if self.stop.is_some() {
            self.advance_termination(now, actions);
        } else {
            self.advance_start(now, actions);
            self.check_completion(now, actions);
            if self.stop.is_some() {
                self.advance_termination(now, actions);
            }
        }
        self.update_ready(now);
    }
}

#[cfg(test)]
mod tests;
