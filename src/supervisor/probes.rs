//! The supervisor's probe workers and hook runs: the engine says when a
//! probe starts and stops and when a hook runs; here they are timed
//! (initialDelaySeconds, periodSeconds, timeoutSeconds, a sleep hook's
//! seconds), run as check processes, and their results fed back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal as NixSignal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Due, Supervisor, now};
use crate::lifecycle::{Event, ExitStatus, Hook, ProbeKind, Time};
use crate::probe::check::{self, Running};
use crate::probe::verdict::Verdict;
use crate::probe::{Handler, Timing};

/// How long past its timeout a network check may take to report that it
/// timed out before it is killed.
const NETWORK_CHECK_GRACE_MS: i64 = 500;
/// How long a pod's end waits for its killed checks to be reaped.
const END_CHECKS_WAIT: Duration = Duration::from_secs(3);

/// A probe of one container run, between StartProbe and StopProbe.
pub struct Worker {
    run: u64,
    handler: Handler,
    timing: Timing,
    /// A check of this worker is running.
    busy: bool,
}

/// What a running check is for.
pub enum Purpose {
    Probe {
        container: String,
        run: u64,
        kind: ProbeKind,
    },
    Hook {
        container: String,
        run: u64,
        hook: Hook,
    },
}

pub struct Check {
    purpose: Purpose,
    running: Running,
    timed_out: bool,
}

#[derive(Default)]
pub struct Probes {
    workers: HashMap<(String, ProbeKind), Worker>,
    checks: HashMap<Pid, Check>,
}

fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "Startup",
        ProbeKind::Readiness => "Readiness",
        ProbeKind::Liveness => "Liveness",
    }
}

fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::PostStart => "PostStart",
        Hook::PreStop => "PreStop",
    }
}

impl Supervisor<'_> {
    pub(super) fn start_probe(&mut self, container: String, run: u64, kind: ProbeKind) {
        let found = self.launcher.probe(&container, kind);
        let (handler, timing) = match found {
            Ok(found) => found,
            Err(message) => {
                self.pending.push_back(Event::ProbeResult {
                    container,
                    run,
                    probe: kind,
                    success: false,
                    output: message,
                });
                return;
            }
        };
        let first = now().plus_millis(timing.initial_delay_ms);
        self.probes.workers.insert(
            (container.clone(), kind),
            Worker {
                run,
                handler,
                timing,
                busy: false,
            },
        );
        self.arm(first, Due::Probe(container, kind));
    }

    pub(super) fn stop_probe(&mut self, container: String, kind: ProbeKind) {
        self.probes.workers.remove(&(container, kind));
    }

    /// A probe's period came round: run it unless it is still running.
    pub(super) fn probe_due(&mut self, container: String, kind: ProbeKind) {
        let key = (container, kind);
        let Some(worker) = self.probes.workers.get(&key) else {
            return;
        };
        let (run, handler, timing, busy) = (
            worker.run,
            worker.handler.clone(),
            worker.timing,
            worker.busy,
        );
        self.arm(
            now().plus_millis(timing.period_ms),
            Due::Probe(key.0.clone(), kind),
        );
        if busy {
            return;
        }
        let purpose = Purpose::Probe {
            container: key.0.clone(),
            run,
            kind,
        };
        if self.run_check(purpose, &handler, Some(timing.timeout_ms))
            && let Some(w) = self.probes.workers.get_mut(&key)
        {
            w.busy = true;
        }
    }

    pub(super) fn run_hook(&mut self, container: String, run: u64, hook: Hook) {
        let handler = match self.launcher.hook(&container, hook) {
            Ok(handler) => handler,
            Err(message) => {
                self.pending.push_back(Event::HookFinished {
                    container,
                    run,
                    hook,
                    result: Err(message),
                });
                return;
            }
        };
        if let Handler::Sleep { seconds } = handler {
            self.arm(
                now().plus_secs(seconds.max(0)),
                Due::HookSleep(container, run, hook),
            );
            return;
        }
        // A preStop hook gets the pod's grace period; a postStart hook has
        // no limit but the container's life, as in the kubelet.
        let timeout = (hook == Hook::PreStop).then(|| {
            self.launcher
                .pod
                .spec
                .termination_grace_period_seconds
                .unwrap_or(30)
                * 1000
        });
        let purpose = Purpose::Hook {
            container,
            run,
            hook,
        };
        self.run_check(purpose, &handler, timeout);
    }

    /// Starts a check; false (with its result already pending) when it
    /// could not start.
    fn run_check(&mut self, purpose: Purpose, handler: &Handler, timeout_ms: Option<i64>) -> bool {
        let container = match &purpose {
            Purpose::Probe { container, .. } | Purpose::Hook { container, .. } => container.clone(),
        };
        let timeout = Duration::from_millis(timeout_ms.unwrap_or(3_600_000).max(1) as u64);
        let started = match handler {
            Handler::Exec(argv) => match self.runs.get(&container) {
                Some(r) => self
                    .launcher
                    .exec_check(&container, r.pid.as_raw() as u32, argv),
                None => Err("the container is not running".to_owned()),
            },
            Handler::Http { .. } | Handler::Tcp { .. } | Handler::Grpc { .. } => {
                let hook = matches!(purpose, Purpose::Hook { .. });
                check::network(self.launcher.net_ns().as_deref(), || {
                    check::run_network(handler, hook, timeout)
                })
                .map_err(|e| e.to_string())
            }
            Handler::Sleep { .. } => Err("a sleep handler is not a check".to_owned()),
        };
        // A network check keeps its own time and says it ran out of it in
        // the kubelet's words; killing it is only the backstop, a little
        // later, for one stuck past its own deadline.
        let grace = match handler {
            Handler::Exec(_) => 0,
            _ => NETWORK_CHECK_GRACE_MS,
        };
        match started {
            Ok(running) => {
                let pid = running.pid;
                if let Some(ms) = timeout_ms {
                    self.arm(now().plus_millis(ms + grace), Due::CheckDeadline(pid));
                }
                self.probes.checks.insert(
                    pid,
                    Check {
                        purpose,
                        running,
                        timed_out: false,
                    },
                );
                true
            }
            Err(message) => {
                self.finish_check(purpose, Verdict::Failure(message));
                false
            }
        }
    }

    /// A check ran past its timeout: kill it; its reaping reports it.
    pub(super) fn check_deadline(&mut self, pid: Pid) {
        if let Some(c) = self.probes.checks.get_mut(&pid) {
            c.timed_out = true;
            let _ = kill(pid, NixSignal::SIGKILL);
        }
    }

    /// Kills the checks still running and reaps them, as the pod ends:
    /// none outlives it (a network check holds the pod's network
    /// namespace, and its results have nobody to go to). One stuck in the
    /// kernel (a hung mount) is not waited for past a few seconds: exec
    /// checks die with the container's cgroup at teardown, and anything
    /// else is reaped by init once the supervisor exits.
    pub(super) fn end_checks(&mut self) {
        for pid in self.probes.checks.keys() {
            let _ = kill(*pid, NixSignal::SIGKILL);
        }
        let deadline = Instant::now() + END_CHECKS_WAIT;
        let mut left: Vec<Pid> = self.probes.checks.drain().map(|(pid, _)| pid).collect();
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|pid| {
                matches!(
                    waitpid(*pid, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub(super) fn hook_slept(&mut self, container: String, run: u64, hook: Hook) {
        self.pending.push_back(Event::HookFinished {
            container,
            run,
            hook,
            result: Ok(()),
        });
    }

    /// A reaped process that was a check; false when `pid` is not one.
    pub(super) fn check_exited(&mut self, pid: Pid, exit: ExitStatus) -> bool {
        let Some(c) = self.probes.checks.remove(&pid) else {
            return false;
        };
        let verdict = if c.timed_out {
            Verdict::Failure("command timed out".to_owned())
        } else {
            check::verdict(&c.running, exit)
        };
        self.finish_check(c.purpose, verdict);
        true
    }

    fn finish_check(&mut self, purpose: Purpose, verdict: Verdict) {
        let success = verdict.passed();
        let warning = matches!(verdict, Verdict::Warning(_));
        let output = verdict.into_message();
        match purpose {
            Purpose::Probe {
                container,
                run,
                kind,
            } => {
                if let Some(w) = self.probes.workers.get_mut(&(container.clone(), kind)) {
                    w.busy = false;
                }
                if !success {
                    self.events.record(
                        true,
                        "Unhealthy",
                        format!("spec.containers{{{container}}}"),
                        format!("{} probe failed: {output}", kind_name(kind)),
                    );
                    eprintln!(
                        "{container}: Unhealthy: {} probe failed: {output}",
                        kind_name(kind)
                    );
                }
                // A warning passes, and is told as the kubelet tells it.
                if warning {
                    self.events.record(
                        true,
                        "ProbeWarning",
                        format!("spec.containers{{{container}}}"),
                        format!("{} probe warning: {output}", kind_name(kind)),
                    );
                    eprintln!(
                        "{container}: ProbeWarning: {} probe warning: {output}",
                        kind_name(kind)
                    );
                }
                self.pending.push_back(Event::ProbeResult {
                    container,
                    run,
                    probe: kind,
                    success,
                    output,
                });
            }
            Purpose::Hook {
                container,
                run,
                hook,
            } => {
                // A hook's only warning: its HTTPS request was answered in
                // plain HTTP and made again over HTTP, an event on the pod.
                if warning {
                    eprintln!("{container}: LifecycleHTTPFallback: {output}");
                    self.events.record(
                        true,
                        "LifecycleHTTPFallback",
                        format!("pod/{}", self.state.name),
                        output.clone(),
                    );
                }
                if !success {
                    eprintln!("{container}: Failed{}Hook: {output}", hook_name(hook));
                    self.events.record(
                        true,
                        &format!("Failed{}Hook", hook_name(hook)),
                        format!("spec.containers{{{container}}}"),
                        output.clone(),
                    );
                }
                self.pending.push_back(Event::HookFinished {
                    container,
                    run,
                    hook,
                    result: if success { Ok(()) } else { Err(output) },
                });
            }
        }
    }

    pub(super) fn arm(&mut self, at: Time, due: Due) {
        self.next_timer += 1;
        self.timers.push(std::cmp::Reverse((at, self.next_timer)));
        self.timer_of.insert(self.next_timer, due);
    }
}
