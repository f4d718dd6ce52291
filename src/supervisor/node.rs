//! The real node: the engine's actions carried out on the pod's sandbox
//! through the runtime API (what the kubelet asks of containerd), and what
//! the runtime reaps turned back into the engine's events.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use nix::sys::signal::Signal as NixSignal;
use nix::unistd::Pid;

use super::driver::{CheckOf, Node, Observed};
use super::echo::Echo;
use super::pulls::Pulls;
use super::timers::Timers;
use crate::api::runtime::{Handler, is_rootfs};
use crate::lifecycle::{Effects, Event, Hook, Phase, ProbeKind, Signal, Time, Timer};
use crate::pod::{HookPlan, PodPlan, PullPolicy};
use crate::runtime::{CheckId, PodSandbox, RuntimeEvent, Verdict};

/// What a running check is for.
#[derive(Debug, Clone)]
enum Purpose {
    Probe {
        container: String,
        run: u64,
        probe: ProbeKind,
    },
    Hook {
        container: String,
        run: u64,
        hook: Hook,
    },
}

/// What reaping found that is not the engine's.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Execs that ended, with their exit codes.
    pub execs: Vec<(Pid, i32)>,
    /// Containers whose run ended (their output read to the end).
    pub exited: Vec<String>,
    /// The pod's shared PID namespace ended.
    pub pid_namespace_lost: bool,
}

pub struct LiveNode<'a> {
    pub sandbox: PodSandbox,
    plan: &'a PodPlan,
    pub echo: Echo,
    timers: Timers,
    outbox: Vec<Observed>,
    /// Each container's current run (the engine's number).
    runs: BTreeMap<String, u64>,
    /// The running probes' handlers, taken from the plan once.
    probes: HashMap<(String, ProbeKind), Handler>,
    checks: HashMap<CheckId, Purpose>,
    pub pulls: Pulls,
    /// Images just pulled for a container's run, by container: its
    /// create follows without another pull.
    pulled: HashMap<String, String>,
}

/// Whether a container's image is there to create it from.
enum ImageState {
    Present,
    /// To be pulled (its policy, or it is missing).
    Pull,
    /// Missing, and the policy is Never.
    NeverPull,
}

impl<'a> LiveNode<'a> {
    pub fn new(sandbox: PodSandbox, plan: &'a PodPlan, echo: Echo, pulls: Pulls) -> LiveNode<'a> {
        LiveNode {
            sandbox,
            plan,
            echo,
            timers: Timers::default(),
            outbox: Vec::new(),
            runs: BTreeMap::new(),
            probes: HashMap::new(),
            checks: HashMap::new(),
            pulls,
            pulled: HashMap::new(),
        }
    }

    /// The kubelet's EnsureImageExists for a container's image.
    fn image_state(&self, container: &str, image: &str) -> Result<ImageState, String> {
        if is_rootfs(image) {
            return Ok(ImageState::Present);
        }
        let policy = self
            .plan
            .container(container)
            .map_or(PullPolicy::IfNotPresent, |c| c.pull_policy);
        if policy == PullPolicy::Always {
            return Ok(ImageState::Pull);
        }
        // Never waits on an import: a busy store is retried with back-off.
        let present = self
            .sandbox
            .images()
            .image_status(image, false)
            .map_err(|e| e.to_string())?
            .is_some();
        Ok(match (present, policy) {
            (true, _) => ImageState::Present,
            (false, PullPolicy::Never) => ImageState::NeverPull,
            (false, _) => ImageState::Pull,
        })
    }

    /// Pulls that ended: the engine is told the image is there (it then
    /// asks for the container again), or that the pull failed.
    pub fn pulls_ended(&mut self) {
        for done in self.pulls.ended() {
            match done.result {
                Ok(size) => {
                    let took = done.took.as_secs_f64();
                    self.outbox.push(Observed::Pulled {
                        container: done.container.clone(),
                        message: format!(
                            "Successfully pulled image {:?} in {took:.3}s ({took:.3}s including waiting). Image size: {size} bytes.",
                            done.image
                        ),
                    });
                    self.pulled.insert(done.container.clone(), done.image);
                    self.event(Event::ImagePulled {
                        container: done.container,
                        run: done.run,
                    });
                }
                Err(message) => self.event(Event::PullFailed {
                    container: done.container,
                    run: done.run,
                    never: false,
                    message,
                }),
            }
        }
    }

    /// The compiled pod this node runs.
    pub fn plan(&self) -> &'a PodPlan {
        self.plan
    }

    fn event(&mut self, event: Event) {
        self.outbox.push(Observed::Event(event));
    }

    /// Reaps what has ended in the sandbox: container exits and check
    /// verdicts become the engine's events; the rest is the caller's.
    pub fn reap(&mut self) -> Reaped {
        let mut reaped = Reaped::default();
        for e in self.sandbox.reap(&mut self.echo) {
            match e {
                RuntimeEvent::ContainerExited {
                    name,
                    status,
                    oom_killed,
                } => {
                    let run = self.runs.get(&name).copied().unwrap_or(0);
                    reaped.exited.push(name.clone());
                    self.event(Event::Exited {
                        container: name,
                        run,
                        status,
                        oom_killed,
                    });
                }
                RuntimeEvent::CheckFinished { id, verdict } => {
                    if let Some(purpose) = self.checks.remove(&id) {
                        self.check_done(purpose, verdict);
                    }
                }
                RuntimeEvent::ExecExited { pid, code } => reaped.execs.push((pid, code)),
                RuntimeEvent::PidNamespaceLost => reaped.pid_namespace_lost = true,
            }
        }
        reaped
    }

    fn check_done(&mut self, purpose: Purpose, verdict: Verdict) {
        if let Verdict::Warning(output) = &verdict {
            let (container, of) = match &purpose {
                Purpose::Probe {
                    container, probe, ..
                } => (container.clone(), CheckOf::Probe(*probe)),
                Purpose::Hook {
                    container, hook, ..
                } => (container.clone(), CheckOf::Hook(*hook)),
            };
            self.outbox.push(Observed::Warning {
                container,
                of,
                output: output.clone(),
            });
        }
        // A warning passes.
        let success = verdict.passed();
        let output = verdict.into_message();
        let event = match purpose {
            Purpose::Probe {
                container,
                run,
                probe,
            } => Event::ProbeResult {
                container,
                run,
                probe,
                success,
                output,
            },
            Purpose::Hook {
                container,
                run,
                hook,
            } => Event::HookFinished {
                container,
                run,
                hook,
                result: if success { Ok(()) } else { Err(output) },
            },
        };
        self.event(event);
    }

    /// Starts a check for `purpose`; one that cannot start fails at once.
    fn check(&mut self, purpose: Purpose, handler: &Handler, timeout_ms: Option<i64>) {
        let (container, hook) = match &purpose {
            Purpose::Probe { container, .. } => (container.clone(), false),
            Purpose::Hook { container, .. } => (container.clone(), true),
        };
        let timeout = timeout_ms.map(|ms| Duration::from_millis(ms.max(1) as u64));
        match self.sandbox.check(&container, handler, hook, timeout) {
            Ok(id) => {
                self.checks.insert(id, purpose);
            }
            Err(e) => self.check_done(purpose, Verdict::Failure(e.to_string())),
        }
    }
    /// CreateContainer and StartContainer (with the kubelet's config
    /// step), the image being there.
    fn create_and_start(&mut self, container: &str, run: u64, restart_count: u32, image: &str) {
        let failed = |message: String| Event::CreateFailed {
            container: container.to_owned(),
            run,
            message,
        };
        let config = match self.plan.container(container).map(|c| &c.config) {
            Some(Ok(config)) => config,
            Some(Err(message)) => {
                return self.event(Event::ConfigFailed {
                    container: container.to_owned(),
                    run,
                    message: message.clone(),
                });
            }
            None => return self.event(failed(format!("no container {container:?}"))),
        };
        let mut config = config.clone();
        config.image = image.to_owned();
        // The last run goes before the next is made, as the kubelet's
        // garbage collection removes a dead container.
        if let Err(e) = self.sandbox.remove_container(container) {
            return self.event(failed(e.to_string()));
        }
        if let Err(e) = self.sandbox.create_container(&config, restart_count) {
            return self.event(failed(e.to_string()));
        }
        let event = match self.sandbox.start_container(container) {
            Ok(pid) => {
                // Its exit is this run's.
                self.runs.insert(container.to_owned(), run);
                Event::Started {
                    container: container.to_owned(),
                    run,
                    pid,
                }
            }
            // The process could not become the container: containerd's
            // StartError; anything before it is retried.
            Err(e) if e.is_exec_failure() => Event::StartFailed {
                container: container.to_owned(),
                run,
                message: e.to_string(),
            },
            Err(e) => failed(e.to_string()),
        };
        self.event(event);
    }
}

impl Effects for LiveNode<'_> {
    fn start(&mut self, container: &str, run: u64, restart_count: u32, image: &str) {
        // Just pulled for this start: made now, as the kubelet goes on
        // from EnsureImageExists to CreateContainer.
        if self.pulled.remove(container).as_deref() == Some(image) {
            return self.create_and_start(container, run, restart_count, image);
        }
        match self.image_state(container, image) {
            Ok(ImageState::Present) => {
                self.outbox.push(Observed::Pulled {
                    container: container.to_owned(),
                    message: format!("Container image {image:?} already present on machine"),
                });
                self.create_and_start(container, run, restart_count, image);
            }
            Ok(ImageState::Pull) => {
                self.outbox.push(Observed::Pulling {
                    container: container.to_owned(),
                    image: image.to_owned(),
                });
                let event = match self.pulls.start(container, run, image) {
                    Ok(()) => Event::PullStarted {
                        container: container.to_owned(),
                        run,
                    },
                    Err(message) => Event::PullFailed {
                        container: container.to_owned(),
                        run,
                        never: false,
                        message,
                    },
                };
                self.event(event);
            }
            Ok(ImageState::NeverPull) => self.event(Event::PullFailed {
                container: container.to_owned(),
                run,
                never: true,
                message: format!(
                    "Container image {image:?} is not present with pull policy of Never"
                ),
            }),
            Err(message) => self.event(Event::CreateFailed {
                container: container.to_owned(),
                run,
                message,
            }),
        }
    }

    fn run_hook(&mut self, container: &str, run: u64, hook: Hook, timeout_ms: Option<i64>) {
        let c = self.plan.container(container);
        let plan = match hook {
            Hook::PostStart => c.and_then(|c| c.post_start.as_ref()),
            Hook::PreStop => c.and_then(|c| c.pre_stop.as_ref()),
        };
        let purpose = Purpose::Hook {
            container: container.to_owned(),
            run,
            hook,
        };
        match plan {
            Some(HookPlan::Run(handler)) => self.check(purpose, handler, timeout_ms),
            _ => self.check_done(
                purpose,
                Verdict::Failure(format!("container {container:?} has no such hook")),
            ),
        }
    }

    fn start_probe(&mut self, container: &str, run: u64, probe: ProbeKind) {
        let c = self.plan.container(container);
        let handler = match probe {
            ProbeKind::Startup => c.and_then(|c| c.startup_probe.as_ref()),
            ProbeKind::Readiness => c.and_then(|c| c.readiness_probe.as_ref()),
            ProbeKind::Liveness => c.and_then(|c| c.liveness_probe.as_ref()),
        }
        .map(|p| p.handler.clone());
        match handler {
            Some(handler) => {
                self.probes.insert((container.to_owned(), probe), handler);
            }
            None => self.event(Event::ProbeResult {
                container: container.to_owned(),
                run,
                probe,
                success: false,
                output: format!("container {container:?} has no such probe"),
            }),
        }
    }

    fn run_probe(&mut self, container: &str, run: u64, probe: ProbeKind, timeout_ms: i64) {
        let purpose = Purpose::Probe {
            container: container.to_owned(),
            run,
            probe,
        };
        match self.probes.get(&(container.to_owned(), probe)).cloned() {
            Some(handler) => self.check(purpose, &handler, Some(timeout_ms)),
            None => self.check_done(
                purpose,
                Verdict::Failure(format!("container {container:?} has no such probe")),
            ),
        }
    }

    fn stop_probe(&mut self, container: &str, probe: ProbeKind) {
        self.probes.remove(&(container.to_owned(), probe));
    }

    fn signal(&mut self, container: &str, signal: Signal) {
        let sig = match signal {
            // The container's `lifecycle.stopSignal`, where it has one
            // (compile checked that it names a signal).
            Signal::Term => self
                .plan
                .container(container)
                .and_then(|c| c.stop_signal.as_deref())
                .and_then(|name| name.parse().ok())
                .unwrap_or(NixSignal::SIGTERM),
            Signal::Kill => NixSignal::SIGKILL,
        };
        // One that has just ended (its exit not yet told) is not killed.
        if self.sandbox.kill_container(container, sig) {
            self.outbox.push(Observed::Signalled {
                container: container.to_owned(),
                signal,
                name: sig.as_str(),
            });
        }
    }

    fn kill_pod(&mut self) {
        if let Err(e) = self.sandbox.stop() {
            tracing::warn!("{e}");
        }
    }

    fn arm_timer(&mut self, at: Time, timer: Timer) {
        self.timers.arm(at, timer);
    }

    fn finished(&mut self, _phase: Phase) {
        // Nothing is left to check: a check would only hold the pod's
        // namespaces. They are reaped as the sandbox goes.
        self.sandbox.cancel_checks();
        self.checks.clear();
    }
}

impl Node for LiveNode<'_> {
    fn observed(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.outbox)
    }

    fn due(&mut self, now: Time) -> Vec<Timer> {
        self.timers.due(now)
    }

    fn next_deadline(&self) -> Option<Time> {
        self.timers.next()
    }
}
