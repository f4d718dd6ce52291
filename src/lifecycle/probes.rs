//! Hooks and probes: postStart gates `started`; the startup probe gates
//! `started` and the other probes; readiness sets `ready`; liveness and
//! startup failures kill the container. The engine times them all: a
//! probe's checks come at its initial delay and then every period (one at
//! a time: a period that finds the last check still running is skipped,
//! as the kubelet's worker does), a sleep hook ends on a timer.

use super::container::{KillReason, State, probe_slot};
use super::model::{HookSpec, ProbeSpec};
use super::{Action, Engine, Hook, LifecycleError, ProbeKind, Time, TimerKind};

impl Engine {
    /// postStart is done: run the startup probe, or count as started.
    pub(super) fn after_post_start(&mut self, now: Time, i: usize, actions: &mut Vec<Action>) {
        if self.containers[i].model.startup_probe.is_some() {
            self.start_probe(now, i, ProbeKind::Startup, actions);
        } else {
            self.mark_started(now, i, actions);
        }
    }

    fn mark_started(&mut self, now: Time, i: usize, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        c.started = true;
        if c.model.kind == crate::manifest::ContainerKind::Sidecar {
            c.ever_started = true;
        }
        if c.model.readiness_probe.is_some() {
            self.start_probe(now, i, ProbeKind::Readiness, actions);
        } else {
            self.containers[i].ready = true;
        }
        if self.containers[i].model.liveness_probe.is_some() {
            self.start_probe(now, i, ProbeKind::Liveness, actions);
        }
    }

    fn probe_spec(&self, i: usize, kind: ProbeKind) -> Option<ProbeSpec> {
        let m = &self.containers[i].model;
        match kind {
            ProbeKind::Startup => m.startup_probe,
            ProbeKind::Readiness => m.readiness_probe,
            ProbeKind::Liveness => m.liveness_probe,
        }
    }

    fn start_probe(&mut self, now: Time, i: usize, kind: ProbeKind, actions: &mut Vec<Action>) {
        let Some(spec) = self.probe_spec(i, kind) else {
            return;
        };
        if self.containers[i].probes.contains(&kind) {
            return;
        }
        let timer = self.timer(TimerKind::Probe {
            container: self.containers[i].model.name.clone(),
            probe: kind,
        });
        let c = &mut self.containers[i];
        c.probes.push(kind);
        let slot = probe_slot(kind);
        c.probe_timers[slot] = timer.generation;
        c.probe_busy[slot] = false;
        actions.push(Action::StartProbe {
            container: c.model.name.clone(),
            run: c.run,
            probe: kind,
        });
        actions.push(Action::ArmTimer {
            at: now.plus_millis(spec.initial_delay_ms),
            timer,
        });
    }

    pub(super) fn stop_probe(&mut self, i: usize, kind: ProbeKind, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        if let Some(pos) = c.probes.iter().position(|p| *p == kind) {
            c.probes.remove(pos);
            // Its pending tick is stale from now on.
            c.probe_timers[probe_slot(kind)] = 0;
            c.probe_busy[probe_slot(kind)] = false;
            actions.push(Action::StopProbe {
                container: c.model.name.clone(),
                probe: kind,
            });
        }
    }

    /// A probe's tick: a check unless the last one still runs, and the
    /// next tick one period on.
    pub(super) fn on_probe_timer(
        &mut self,
        now: Time,
        i: usize,
        kind: ProbeKind,
        generation: u64,
        actions: &mut Vec<Action>,
    ) {
        let slot = probe_slot(kind);
        let c = &self.containers[i];
        if generation == 0 || c.probe_timers[slot] != generation || !c.probes.contains(&kind) {
            return;
        }
        let Some(spec) = self.probe_spec(i, kind) else {
            return;
        };
        let timer = self.timer(TimerKind::Probe {
            container: self.containers[i].model.name.clone(),
            probe: kind,
        });
        let c = &mut self.containers[i];
        c.probe_timers[slot] = timer.generation;
        if !c.probe_busy[slot] {
            c.probe_busy[slot] = true;
            actions.push(Action::RunProbe {
                container: c.model.name.clone(),
                run: c.run,
                probe: kind,
                timeout_ms: spec.timeout_ms,
            });
        }
        actions.push(Action::ArmTimer {
            at: now.plus_millis(spec.period_ms),
            timer,
        });
    }

    /// Runs the container's hook: a check, or a wait timed here. A preStop
    /// hook gets what is left until `deadline`; postStart has no limit but
    /// the container's life, as in the kubelet.
    pub(super) fn run_hook(
        &mut self,
        now: Time,
        i: usize,
        hook: Hook,
        deadline: Option<Time>,
        actions: &mut Vec<Action>,
    ) {
        let c = &self.containers[i];
        let spec = match hook {
            Hook::PostStart => c.model.post_start,
            Hook::PreStop => c.model.pre_stop,
        };
        let (name, run) = (c.model.name.clone(), c.run);
        match spec {
            Some(HookSpec::Sleep { seconds }) => {
                let timer = self.timer(TimerKind::HookSleep {
                    container: name,
                    run,
                    hook,
                });
                actions.push(Action::ArmTimer {
                    at: now.plus_secs(seconds.max(0)),
                    timer,
                });
            }
            Some(HookSpec::Run) => actions.push(Action::RunHook {
                container: name,
                run,
                hook,
                timeout_ms: deadline.map(|d| d.millis_since(now).max(0)),
            }),
            None => {}
        }
    }

    pub(super) fn stop_probes(&mut self, i: usize, actions: &mut Vec<Action>) {
        for kind in self.containers[i].probes.clone() {
            self.stop_probe(i, kind, actions);
        }
    }

    pub(super) fn on_hook_finished(
        &mut self,
        now: Time,
        i: usize,
        hook: Hook,
        result: Result<(), String>,
        actions: &mut Vec<Action>,
    ) -> Result<(), LifecycleError> {
        let c = &self.containers[i];
        match hook {
            Hook::PostStart => {
                if !c.is_running() || c.post_start_done {
                    // The container died while its hook ran: nothing to do.
                    return Ok(());
                }
                match result {
                    Ok(()) => {
                        self.containers[i].post_start_done = true;
                        if self.containers[i].stopping.is_none() {
                            self.after_post_start(now, i, actions);
                        }
                    }
                    Err(output) => {
                        self.containers[i].next_message =
                            Some(format!("PostStartHook failed: {output}"));
                        let deadline = now.plus_secs(self.model.grace_seconds);
                        self.kill_container(now, i, KillReason::PostStartFailed, deadline, actions);
                        self.stop_pod_if_no_app_continues(now, actions);
                    }
                }
            }
            Hook::PreStop => self.after_pre_stop(now, i, actions),
        }
        Ok(())
    }

    pub(super) fn on_probe(
        &mut self,
        now: Time,
        i: usize,
        kind: ProbeKind,
        success: bool,
        output: String,
        actions: &mut Vec<Action>,
    ) {
        let Some((passed, failed, grace)) = self.count_probe_result(i, kind, success) else {
            return;
        };
        match kind {
            ProbeKind::Startup if passed => {
                self.stop_probe(i, ProbeKind::Startup, actions);
                self.mark_started(now, i, actions);
            }
            ProbeKind::Readiness if passed => self.containers[i].ready = true,
            ProbeKind::Readiness if failed => self.containers[i].ready = false,
            ProbeKind::Startup | ProbeKind::Liveness if failed => {
                let (reason, what) = if kind == ProbeKind::Startup {
                    (KillReason::Startup, "startup")
                } else {
                    (KillReason::Liveness, "liveness")
                };
                let c = &self.containers[i];
                let restarts = c.model.kind == crate::manifest::ContainerKind::Sidecar
                    || self.model.restart_policy != super::RestartPolicy::Never;
                let message = format!(
                    "Container {} failed {what} probe{}: {output}",
                    c.model.name,
                    if restarts { ", will be restarted" } else { "" }
                );
                self.containers[i].next_message = Some(message);
                self.kill_container(now, i, reason, now.plus_secs(grace), actions);
                self.stop_pod_if_no_app_continues(now, actions);
            }
            _ => {}
        }
    }

    /// Counts one result against the probe's thresholds: (passed, failed,
    /// grace for a kill), or `None` for a result of a probe that no longer
    /// runs.
    fn count_probe_result(
        &mut self,
        i: usize,
        kind: ProbeKind,
        success: bool,
    ) -> Option<(bool, bool, i64)> {
        let pod_grace = self.model.grace_seconds;
        let c = &mut self.containers[i];
        // Its check is over, whatever it says.
        c.probe_busy[probe_slot(kind)] = false;
        if !c.probes.contains(&kind) || !matches!(c.state, State::Running { .. }) {
            return None;
        }
        let spec = match kind {
            ProbeKind::Startup => c.model.startup_probe,
            ProbeKind::Readiness => c.model.readiness_probe,
            ProbeKind::Liveness => c.model.liveness_probe,
        }?;
        let slot = probe_slot(kind);
        if success {
            c.successes[slot] += 1;
            c.failures[slot] = 0;
        } else {
            c.failures[slot] += 1;
            c.successes[slot] = 0;
        }
        Some((
            c.successes[slot] >= spec.success_threshold,
            c.failures[slot] >= spec.failure_threshold,
            spec.termination_grace_seconds.unwrap_or(pod_grace),
        ))
    }

    /// `ContainersReady` / `Ready`: every app and every sidecar is ready.
    pub(super) fn update_ready(&mut self, now: Time) {
        let ready = self.finished.is_none()
            && self
                .containers
                .iter()
                .filter(|c| c.model.kind != crate::manifest::ContainerKind::Init)
                .all(|c| c.ready && c.is_running());
        if ready != self.conditions.ready.0 || self.conditions.ready.1.is_none() {
            self.conditions.ready = (ready, Some(now));
        }
    }
}
