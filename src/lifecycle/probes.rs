//! Hooks and probes: postStart gates `started`; the startup probe gates
//! `started` and the other probes; readiness sets `ready`; liveness and
//! startup failures kill the container.

use super::container::{KillReason, State, probe_slot};
use super::{Action, Engine, Hook, LifecycleError, ProbeKind, Time};

impl Engine {
    /// postStart is done: run the startup probe, or count as started.
    pub(super) fn after_post_start(&mut self, i: usize, actions: &mut Vec<Action>) {
        if self.containers[i].model.startup_probe.is_some() {
            self.start_probe(i, ProbeKind::Startup, actions);
        } else {
            self.mark_started(i, actions);
        }
    }

    fn mark_started(&mut self, i: usize, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        c.started = true;
        if c.model.kind == crate::manifest::ContainerKind::Sidecar {
            c.ever_started = true;
        }
        if c.model.readiness_probe.is_some() {
            self.start_probe(i, ProbeKind::Readiness, actions);
        } else {
            self.containers[i].ready = true;
        }
        if self.containers[i].model.liveness_probe.is_some() {
            self.start_probe(i, ProbeKind::Liveness, actions);
        }
    }

    fn start_probe(&mut self, i: usize, kind: ProbeKind, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        if c.probes.contains(&kind) {
            return;
        }
        c.probes.push(kind);
        actions.push(Action::StartProbe {
            container: c.model.name.clone(),
            run: c.run,
            probe: kind,
        });
    }

    pub(super) fn stop_probe(&mut self, i: usize, kind: ProbeKind, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        if let Some(pos) = c.probes.iter().position(|p| *p == kind) {
            c.probes.remove(pos);
            actions.push(Action::StopProbe {
                container: c.model.name.clone(),
                probe: kind,
            });
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
                            self.after_post_start(i, actions);
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
                self.mark_started(i, actions);
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
