//! Stopping containers and the pod: preStop, SIGTERM, SIGKILL at the
//! deadline; apps (and a running regular init container) first, all
//! together; then sidecars one at a time in reverse order, sharing what is
//! left of the pod's grace period, each given at least the kubelet's minimum.

use super::container::{KillReason, State, Stopping};
use super::{Action, Engine, Hook, PodStop, ProbeKind, Signal, StopCause, Time, TimerKind};
use crate::manifest::ContainerKind;

/// The kubelet never gives a container less than this between SIGTERM and
/// SIGKILL (`minimumGracePeriodInSeconds`).
pub const MINIMUM_GRACE_SECONDS: i64 = 2;

impl Engine {
    /// Starts (or hastens) the pod's termination.
    pub(super) fn request_stop(
        &mut self,
        now: Time,
        cause: StopCause,
        grace: Option<i64>,
        actions: &mut Vec<Action>,
    ) {
        // Only an explicit grace of 0 (podrun down --grace 0, a second
        // Ctrl-C) kills at once; a spec's terminationGracePeriodSeconds: 0
        // still gets SIGTERM and the kubelet's 2 s minimum.
        let force = grace == Some(0);
        let grace = grace.unwrap_or(self.model.grace_seconds).max(0);
        let deadline = now.plus_secs(grace);
        match &mut self.stop {
            Some(stop) if deadline < stop.deadline => {
                stop.deadline = deadline;
                stop.force = force;
            }
            Some(_) => return,
            None => {
                self.stop = Some(PodStop {
                    cause,
                    deadline,
                    force,
                });
                // Nothing waiting to restart will start again, and a pull
                // under way makes nothing: its result is ignored.
                for c in &mut self.containers {
                    let pulling = matches!(c.state, State::Creating) && c.pulling;
                    if pulling || matches!(c.state, State::BackOff { .. }) {
                        c.pulling = false;
                        c.state = super::restart::not_started(c);
                    }
                }
            }
        }
        let timer = self.timer(TimerKind::PodGrace);
        actions.push(Action::ArmTimer {
            at: deadline,
            timer,
        });
        // Containers already stopping keep their own deadlines unless the
        // new pod deadline is sooner; a forced stop kills them now.
        for i in 0..self.containers.len() {
            let name = self.containers[i].model.name.clone();
            let Some(s) = self.containers[i].stopping.as_mut() else {
                continue;
            };
            if force && !s.kill_sent {
                s.term_sent = true;
                s.kill_sent = true;
                actions.push(Action::Signal {
                    container: name,
                    signal: Signal::Kill,
                });
            } else if deadline < s.deadline {
                self.rearm_kill(i, deadline, actions);
            }
        }
    }

    pub(super) fn advance_termination(&mut self, now: Time, actions: &mut Vec<Action>) {
        let Some(stop) = self.stop.clone() else {
            return;
        };
        // Every running container is told at once: preStop hooks (apps' and
        // sidecars') run together, as the kubelet kills all containers in
        // parallel; apps get SIGTERM as soon as their hook is done.
        let apps_then_sidecars_reversed: Vec<usize> = (0..self.containers.len())
            .filter(|&i| self.containers[i].model.kind != ContainerKind::Sidecar)
            .chain(
                (0..self.containers.len())
                    .rev()
                    .filter(|&i| self.containers[i].model.kind == ContainerKind::Sidecar),
            )
            .collect();
        for i in apps_then_sidecars_reversed {
            if self.containers[i].is_running() && self.containers[i].stopping.is_none() {
                self.kill_container(now, i, KillReason::PodStop, stop.deadline, actions);
            }
        }
        // A sidecar's SIGTERM waits for its turn: every app (and regular
        // init) has exited and every later sidecar too; once the pod's grace
        // period is gone, every sidecar's turn has come.
        let others_active = self
            .containers
            .iter()
            .any(|c| c.model.kind != ContainerKind::Sidecar && c.is_active());
        if !others_active {
            let past_deadline = now >= stop.deadline;
            for i in (0..self.containers.len()).rev() {
                let c = &self.containers[i];
                if c.model.kind != ContainerKind::Sidecar || !c.is_active() {
                    continue;
                }
                self.give_turn(now, i, actions);
                if !past_deadline {
                    break;
                }
            }
        }
        if self.containers.iter().all(|c| !c.is_active()) {
            self.finish(now, stop.cause, actions);
        }
    }

    fn give_turn(&mut self, now: Time, i: usize, actions: &mut Vec<Action>) {
        let Some(s) = self.containers[i].stopping.as_mut() else {
            return;
        };
        s.turn = true;
        if !s.pre_stop_running && !s.term_sent {
            self.send_term(now, i, actions);
        }
    }

    /// preStop (if any), then SIGTERM once it is this container's turn;
    /// SIGKILL when the grace runs out.
    pub(super) fn kill_container(
        &mut self,
        now: Time,
        i: usize,
        reason: KillReason,
        deadline: Time,
        actions: &mut Vec<Action>,
    ) {
        if self.containers[i].stopping.is_some() || !self.containers[i].is_running() {
            return;
        }
        // Liveness and startup probes stop; readiness keeps running through
        // preStop, as the kubelet's does.
        self.stop_probe(i, ProbeKind::Startup, actions);
        self.stop_probe(i, ProbeKind::Liveness, actions);
        let force = reason == KillReason::PodStop && self.stop.as_ref().is_some_and(|s| s.force);
        let name = self.containers[i].model.name.clone();
        let timer = self.timer(TimerKind::KillDeadline(name.clone()));
        let c = &mut self.containers[i];
        let waits_for_turn =
            reason == KillReason::PodStop && c.model.kind == ContainerKind::Sidecar;
        let mut stopping = Stopping {
            reason,
            pre_stop_running: false,
            turn: !waits_for_turn,
            term_sent: false,
            kill_sent: false,
            deadline,
            generation: timer.generation,
        };
        if force {
            stopping.term_sent = true;
            stopping.kill_sent = true;
            c.stopping = Some(stopping);
            actions.push(Action::Signal {
                container: name,
                signal: Signal::Kill,
            });
            return;
        }
        // As the kubelet: no preStop without time left to run it.
        stopping.pre_stop_running = c.model.pre_stop.is_some() && deadline > now;
        let term_now = !stopping.pre_stop_running && stopping.turn;
        let pre_stop = stopping.pre_stop_running;
        c.stopping = Some(stopping);
        if pre_stop {
            self.run_hook(now, i, Hook::PreStop, Some(deadline), actions);
        }
        actions.push(Action::ArmTimer {
            at: deadline,
            timer,
        });
        if term_now {
            self.send_term(now, i, actions);
        }
    }

    pub(super) fn after_pre_stop(&mut self, now: Time, i: usize, actions: &mut Vec<Action>) {
        let Some(s) = self.containers[i].stopping.as_mut() else {
            return;
        };
        if !s.pre_stop_running {
            return;
        }
        s.pre_stop_running = false;
        if s.turn && !s.term_sent {
            self.send_term(now, i, actions);
        }
    }

    /// SIGTERM now, with at least the minimum grace before SIGKILL.
    fn send_term(&mut self, now: Time, i: usize, actions: &mut Vec<Action>) {
        let name = self.containers[i].model.name.clone();
        let Some(s) = self.containers[i].stopping.as_mut() else {
            return;
        };
        s.term_sent = true;
        actions.push(Action::Signal {
            container: name,
            signal: Signal::Term,
        });
        let earliest_kill = now.plus_secs(MINIMUM_GRACE_SECONDS);
        if s.deadline < earliest_kill {
            self.rearm_kill(i, earliest_kill, actions);
        }
    }

    fn rearm_kill(&mut self, i: usize, at: Time, actions: &mut Vec<Action>) {
        let name = self.containers[i].model.name.clone();
        let timer = self.timer(TimerKind::KillDeadline(name));
        if let Some(s) = self.containers[i].stopping.as_mut() {
            s.deadline = at;
            s.generation = timer.generation;
            actions.push(Action::ArmTimer { at, timer });
        }
    }

    pub(super) fn on_kill_deadline(
        &mut self,
        now: Time,
        i: usize,
        timer: &super::Timer,
        actions: &mut Vec<Action>,
    ) {
        let Some(s) = self.containers[i].stopping.clone() else {
            return;
        };
        if s.generation != timer.generation || s.kill_sent {
            return;
        }
        if !s.term_sent {
            // The grace period ran out in preStop or waiting for the turn:
            // SIGTERM now, then the minimum.
            self.send_term(now, i, actions);
            return;
        }
        if let Some(s) = self.containers[i].stopping.as_mut() {
            s.kill_sent = true;
        }
        actions.push(Action::Signal {
            container: self.containers[i].model.name.clone(),
            signal: Signal::Kill,
        });
    }

    fn finish(&mut self, now: Time, cause: StopCause, actions: &mut Vec<Action>) {
        let phase = self.terminal_phase(cause);
        self.finished = Some(phase);
        self.finished_at = Some(now);
        actions.push(Action::KillPod);
        actions.push(Action::Finished { phase });
    }
}
