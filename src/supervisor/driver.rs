//! The kubelet half's core: the lifecycle engine fed every observation in
//! order, its actions carried out on a node through `Effects`, and what a
//! kubelet reports of it all: Kubernetes events, and the lines `up` prints.
//! It does no I/O but through the node, the event recorder and the line
//! sink it is given, so it is tested over a fake node.

use std::collections::{BTreeMap, VecDeque};

use crate::api::events::Recorder;
use crate::lifecycle::{
    Action, Effects, Engine, Event, ExitStatus, Hook, LifecycleError, Phase, PodModel, ProbeKind,
    Signal, Time, Timer, TimerKind, carry_out,
};

/// What a check of a container was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOf {
    Probe(ProbeKind),
    Hook(Hook),
}

/// What a node saw besides the engine's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Event(Event),
    /// A container's image is being pulled.
    Pulling {
        container: String,
        image: String,
    },
    /// A container's image is there: pulled (how, in `message`) or
    /// already present.
    Pulled {
        container: String,
        message: String,
    },
    /// A running container was sent a signal: `name` is the one sent
    /// (its `lifecycle.stopSignal` stands for SIGTERM).
    Signalled {
        container: String,
        signal: Signal,
        name: &'static str,
    },
    /// A check passed with a warning: a probe's is the kubelet's
    /// `ProbeWarning`; a hook's (its HTTPS request answered in plain HTTP,
    /// made again over HTTP) its `LifecycleHTTPFallback`.
    Warning {
        container: String,
        of: CheckOf,
        output: String,
    },
}

/// The node a supervisor drives: it carries out the engine's actions
/// (timers included) and tells what came of them.
pub trait Node: Effects {
    /// What the node has observed since it was last asked.
    fn observed(&mut self) -> Vec<Observed>;
    /// The engine's timers due by `now`, earliest first.
    fn due(&mut self, now: Time) -> Vec<Timer>;
    /// When its next timer is due.
    fn next_deadline(&self) -> Option<Time>;
}

/// Who the pod is, for events.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node_name: String,
    /// Its status's podIPs and hostIPs.
    pub addresses: crate::pod::container::Addresses,
}

/// Where the lines a user sees go (stderr, for `up`).
pub type Say = Box<dyn FnMut(&str)>;

pub struct Driver<N: Node> {
    engine: Engine,
    pub node: N,
    pending: VecDeque<Event>,
    recorder: Recorder,
    say: Say,
    pod: PodRef,
    /// Why pod limits are not enforced here, if not.
    unenforced: Option<String>,
    stops: usize,
    /// The image each container's latest start asked for.
    images: BTreeMap<String, String>,
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

fn object(container: &str) -> String {
    format!("spec.containers{{{container}}}")
}

impl<N: Node> Driver<N> {
    pub fn new(
        model: PodModel,
        node: N,
        recorder: Recorder,
        pod: PodRef,
        unenforced: Option<String>,
        say: Say,
    ) -> Driver<N> {
        Driver {
            engine: Engine::new(model),
            node,
            pending: VecDeque::new(),
            recorder,
            say,
            pod,
            unenforced,
            stops: 0,
            images: BTreeMap::new(),
        }
    }

    /// The pod is scheduled here: its first containers start.
    pub fn start(&mut self, now: Time) {
        let message = format!(
            "Successfully assigned {}/{} to {}",
            self.pod.namespace, self.pod.name, self.pod.node_name
        );
        self.recorder.record(
            false,
            "Scheduled",
            format!("pod/{}", self.pod.name),
            message,
        );
        let actions = self.engine.start(now);
        self.act(actions);
    }

    /// An observation for the engine.
    pub fn push(&mut self, event: Event) {
        self.pending.push_back(event);
    }

    /// The pod's shared PID namespace ended: no container can start in it
    /// again, and the pod stops, as when the kubelet's pause container
    /// dies.
    pub fn sandbox_lost(&mut self) {
        if self.finished().is_some() {
            return;
        }
        (self.say)("podrun: the pod's PID namespace ended; stopping the pod");
        self.push(Event::StopRequested {
            grace_seconds: None,
        });
    }

    /// A stop request (a signal, `podrun down`): the first with `grace`
    /// (the pod's own when `None`), any later one at once.
    pub fn request_stop(&mut self, grace: Option<i64>) {
        self.stops += 1;
        let grace = if self.stops > 1 { Some(0) } else { grace };
        let now = if grace == Some(0) { " now" } else { "" };
        (self.say)(&format!("podrun: stopping pod {}{now}", self.pod.name));
        self.push(Event::StopRequested {
            grace_seconds: grace,
        });
    }

    /// Takes what the node observed, in order, for the engine, saying what
    /// a kubelet says of it as it comes.
    pub fn collect(&mut self) {
        for o in self.node.observed() {
            match o {
                Observed::Event(e) => {
                    self.report(&e);
                    self.pending.push_back(e);
                }
                Observed::Pulling { container, image } => {
                    (self.say)(&format!("{container}: Pulling image {image:?}"));
                    self.recorder.record(
                        false,
                        "Pulling",
                        object(&container),
                        format!("Pulling image {image:?}"),
                    );
                }
                Observed::Pulled { container, message } => {
                    if !message.starts_with("Container image") {
                        (self.say)(&format!("{container}: {message}"));
                    }
                    self.recorder
                        .record(false, "Pulled", object(&container), message);
                }
                Observed::Signalled {
                    container,
                    name: sig,
                    ..
                } => {
                    (self.say)(&format!("{container}: Killing ({sig})"));
                    self.recorder.record(
                        false,
                        "Killing",
                        object(&container),
                        format!("Stopping container {container} ({sig})"),
                    );
                }
                Observed::Warning {
                    container,
                    of: CheckOf::Probe(probe),
                    output,
                } => {
                    let message = format!("{} probe warning: {output}", kind_name(probe));
                    (self.say)(&format!("{container}: ProbeWarning: {message}"));
                    self.recorder
                        .record(true, "ProbeWarning", object(&container), message);
                }
                Observed::Warning {
                    container,
                    of: CheckOf::Hook(_),
                    output,
                } => {
                    (self.say)(&format!("{container}: LifecycleHTTPFallback: {output}"));
                    let pod = format!("pod/{}", self.pod.name);
                    self.recorder
                        .record(true, "LifecycleHTTPFallback", pod, output);
                }
            }
        }
    }

    /// The engine's timers due by `now` fire.
    pub fn fire_due(&mut self, now: Time) {
        for timer in self.node.due(now) {
            self.pending.push_back(Event::TimerFired(timer));
        }
    }

    /// Feeds everything observed to the engine until nothing is left (what
    /// carrying out its actions shows at once, a start's outcome, included);
    /// whether anything changed.
    pub fn settle(&mut self, clock: &dyn Fn() -> Time) -> bool {
        let mut changed = false;
        loop {
            self.collect();
            let Some(event) = self.pending.pop_front() else {
                return changed;
            };
            changed = true;
            let resync = match &event {
                Event::TimerFired(Timer {
                    kind: TimerKind::PullResync(container),
                    ..
                }) => Some(container.clone()),
                _ => None,
            };
            match self.engine.handle(clock(), event) {
                Ok(actions) => {
                    self.act(actions);
                    if let Some(container) = resync {
                        self.pull_backing_off(&container);
                    }
                }
                Err(e @ LifecycleError::Unexpected { .. }) => tracing::debug!("{e}"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }

    /// What a kubelet says of an observation.
    fn report(&mut self, event: &Event) {
        match event {
            Event::Started { container, pid, .. } => {
                (self.say)(&format!("{container}: Started (pid {pid})"));
                self.recorder.record(
                    false,
                    "Created",
                    object(container),
                    format!("Created container: {container}"),
                );
                self.recorder.record(
                    false,
                    "Started",
                    object(container),
                    format!("Started container {container}"),
                );
            }
            Event::CreateFailed {
                container, message, ..
            }
            | Event::ConfigFailed {
                container, message, ..
            }
            | Event::StartFailed {
                container, message, ..
            } => {
                (self.say)(&format!("{container}: Failed: {message}"));
                self.recorder.record(
                    true,
                    "Failed",
                    object(container),
                    format!("Error: {message}"),
                );
            }
            Event::PullFailed {
                container,
                never,
                message,
                ..
            } => {
                let image = self.images.get(container).cloned().unwrap_or_default();
                (self.say)(&format!("{container}: Failed: {message}"));
                let (reason, text, error) = if *never {
                    ("ErrImageNeverPull", message.clone(), "ErrImageNeverPull")
                } else {
                    (
                        "Failed",
                        format!("Failed to pull image {image:?}: {message}"),
                        "ErrImagePull",
                    )
                };
                self.recorder.record(true, reason, object(container), text);
                self.recorder
                    .record(true, "Failed", object(container), format!("Error: {error}"));
            }
            Event::Exited {
                container,
                status,
                oom_killed,
                ..
            } => {
                let shown = match status {
                    ExitStatus::Code(code) => format!("exit code {code}"),
                    ExitStatus::Signal(sig) => format!("signal {sig}"),
                };
                let oom = if *oom_killed { ", OOMKilled" } else { "" };
                (self.say)(&format!("{container}: Exited ({shown}{oom})"));
                if *oom_killed {
                    self.recorder.record(
                        true,
                        "OOMKilled",
                        object(container),
                        format!("Container {container} was killed by the OOM killer"),
                    );
                }
            }
            Event::ProbeResult {
                container,
                probe,
                success: false,
                output,
                ..
            } => {
                let message = format!("{} probe failed: {output}", kind_name(*probe));
                (self.say)(&format!("{container}: Unhealthy: {message}"));
                self.recorder
                    .record(true, "Unhealthy", object(container), message);
            }
            Event::HookFinished {
                container,
                hook,
                result: Err(output),
                ..
            } => {
                let reason = format!("Failed{}Hook", hook_name(*hook));
                (self.say)(&format!("{container}: {reason}: {output}"));
                self.recorder
                    .record(true, &reason, object(container), output.clone());
            }
            _ => {}
        }
    }

    /// Carries the engine's actions out, saying what a kubelet says of
    /// them.
    fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match &action {
                Action::Start {
                    container, image, ..
                } => {
                    self.images.insert(container.clone(), image.clone());
                }
                Action::ArmTimer { timer, .. } => {
                    if let TimerKind::Backoff(container) = &timer.kind {
                        self.backing_off(container);
                    }
                }
                _ => {}
            }
            carry_out([action], &mut self.node);
        }
    }

    /// A sync found a container's image pull backing off.
    fn pull_backing_off(&mut self, container: &str) {
        if self.waiting_reason(container).as_deref() != Some("ImagePullBackOff") {
            return;
        }
        let image = self.images.get(container).cloned().unwrap_or_default();
        (self.say)(&format!("{container}: ImagePullBackOff"));
        self.recorder.record(
            false,
            "BackOff",
            object(container),
            format!("Back-off pulling image {image:?}"),
        );
        self.recorder.record(
            true,
            "Failed",
            object(container),
            "Error: ImagePullBackOff".to_owned(),
        );
    }

    fn waiting_reason(&self, container: &str) -> Option<String> {
        let status = self.engine.status();
        status
            .init_container_statuses
            .iter()
            .chain(status.container_statuses.iter())
            .flatten()
            .filter(|c| c.name == container)
            .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
    }

    /// A container waits to restart: in CrashLoopBackOff, the kubelet's
    /// BackOff warning (a retried CreateContainerError is not a back-off).
    fn backing_off(&mut self, container: &str) {
        if self.waiting_reason(container).as_deref() == Some("CrashLoopBackOff") {
            (self.say)(&format!("{container}: BackOff"));
            self.recorder.record(
                true,
                "BackOff",
                object(container),
                format!(
                    "Back-off restarting failed container {container} in pod {}_{}({})",
                    self.pod.name, self.pod.namespace, self.pod.uid
                ),
            );
        }
    }

    /// The pod's status: the engine's, with podrun's own condition about
    /// limits.
    pub fn status(&self) -> crate::api::PodStatus {
        use k8s_openapi::api::core::v1::{HostIP, PodIP};
        let mut status = self.engine.status();
        let a = &self.pod.addresses;
        if !a.host_ips.is_empty() {
            status.host_ip = a.host_ips.first().cloned();
            status.host_ips = Some(
                a.host_ips
                    .iter()
                    .map(|ip| HostIP { ip: ip.clone() })
                    .collect(),
            );
        }
        if !a.pod_ips.is_empty() {
            status.pod_ip = a.pod_ips.first().cloned();
            status.pod_ips = Some(
                a.pod_ips
                    .iter()
                    .map(|ip| PodIP { ip: ip.clone() })
                    .collect(),
            );
        }
        if let Some(reason) = &self.unenforced {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(crate::api::PodCondition {
                    type_: "podrun.io/LimitsEnforced".to_owned(),
                    status: "False".to_owned(),
                    reason: Some("ControllersUnavailable".to_owned()),
                    message: Some(reason.clone()),
                    ..Default::default()
                });
        }
        status
    }

    /// The phase the pod ended in, once it has.
    pub fn finished(&self) -> Option<Phase> {
        self.engine.finished()
    }

    pub fn events(&self) -> &Recorder {
        &self.recorder
    }

    /// When the node next needs the driver.
    pub fn next_deadline(&self) -> Option<Time> {
        self.node.next_deadline()
    }
}

#[cfg(test)]
mod tests;
