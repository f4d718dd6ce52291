//! The engine's interface: the time, the events it is fed, the actions it
//! returns, and its errors.

use serde::Serialize;

/// Milliseconds since the Unix epoch, as the caller's clock said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Time(pub i64);

impl Time {
    pub fn plus_secs(self, secs: i64) -> Time {
        Time(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    pub fn plus_millis(self, millis: i64) -> Time {
        Time(self.0.saturating_add(millis))
    }

    pub fn millis_since(self, earlier: Time) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Hook {
    PostStart,
    PreStop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Signal {
    Term,
    Kill,
}

pub use crate::api::runtime::ExitStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
/// Events about one run of a container carry the `run` number of the
/// `Action::Start` that began it; an event about an earlier run is stale and
/// ignored (a late probe result must not kill the new run).
pub enum Event {
    Started {
        container: String,
        run: u64,
        pid: u32,
    },
    Exited {
        container: String,
        run: u64,
        status: ExitStatus,
        /// The container cgroup's `memory.events` oom_kill grew.
        oom_killed: bool,
    },
    /// The process was created but could not exec (`StartError`).
    StartFailed {
        container: String,
        run: u64,
        message: String,
    },
    /// The container could not be created at all (`CreateContainerError`).
    CreateFailed {
        container: String,
        run: u64,
        message: String,
    },
    /// Its configuration could not be made (a Secret it names is not
    /// there): `CreateContainerConfigError`.
    ConfigFailed {
        container: String,
        run: u64,
        message: String,
    },
    /// A pull of its image began (the kubelet's `Pulling`).
    PullStarted {
        container: String,
        run: u64,
    },
    /// The pull ended with the image in the store: the container can be made.
    ImagePulled {
        container: String,
        run: u64,
    },
    /// Its image could not be had: a pull failed (`ErrImagePull`), or the
    /// image is missing and the policy is Never (`ErrImageNeverPull`).
    PullFailed {
        container: String,
        run: u64,
        never: bool,
        message: String,
    },
    HookFinished {
        container: String,
        run: u64,
        hook: Hook,
        /// `Err` with the hook's output when it failed.
        result: Result<(), String>,
    },
    ProbeResult {
        container: String,
        run: u64,
        probe: ProbeKind,
        success: bool,
        output: String,
    },
    TimerFired(Timer),
    StopRequested {
        grace_seconds: Option<i64>,
    },
    ImageChanged {
        container: String,
        image: String,
    },
}

impl Event {
    /// The container run an event is about, if it is about one.
    pub fn run(&self) -> Option<(&str, u64)> {
        match self {
            Event::Started { container, run, .. }
            | Event::Exited { container, run, .. }
            | Event::StartFailed { container, run, .. }
            | Event::CreateFailed { container, run, .. }
            | Event::ConfigFailed { container, run, .. }
            | Event::PullFailed { container, run, .. }
            | Event::PullStarted { container, run }
            | Event::ImagePulled { container, run }
            | Event::HookFinished { container, run, .. }
            | Event::ProbeResult { container, run, .. } => Some((container, *run)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum TimerKind {
    /// A container's CrashLoopBackOff ends.
    Backoff(String),
    /// The pod is synced again while a container's image pull backs off:
    /// ErrImagePull becomes ImagePullBackOff.
    PullResync(String),
    /// A stopping container's SIGTERM (after preStop) or SIGKILL is due.
    KillDeadline(String),
    /// The pod's termination grace period ends.
    PodGrace,
    /// `activeDeadlineSeconds` after the pod started.
    ActiveDeadline,
    /// A probe's next check is due (its initial delay, then each period).
    Probe { container: String, probe: ProbeKind },
    /// A sleep hook of a container run is over.
    HookSleep {
        container: String,
        run: u64,
        hook: Hook,
    },
}

/// A timer the engine asked for; it carries a generation so that a timer
/// made stale by later events is recognised and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Timer {
    pub kind: TimerKind,
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Start a new run of the container, with this image.
    Start {
        container: String,
        run: u64,
        restart_count: u32,
        image: String,
    },
    /// Run a hook's check (never a sleep: the engine times those); a
    /// preStop hook has what is left of the grace period.
    RunHook {
        container: String,
        run: u64,
        hook: Hook,
        timeout_ms: Option<i64>,
    },
    Signal {
        container: String,
        signal: Signal,
    },
    /// A probe's worker starts; its checks follow as `RunProbe`.
    StartProbe {
        container: String,
        run: u64,
        probe: ProbeKind,
    },
    /// One check of a probe, answered by a `ProbeResult`.
    RunProbe {
        container: String,
        run: u64,
        probe: ProbeKind,
        timeout_ms: i64,
    },
    StopProbe {
        container: String,
        probe: ProbeKind,
    },
    ArmTimer {
        at: Time,
        timer: Timer,
    },
    /// Kill whatever is left in the pod cgroup.
    KillPod,
    Finished {
        phase: Phase,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no container named {0:?} in this pod")]
    UnknownContainer(String),
    #[error("container {container:?}: {event} while it is {state}")]
    Unexpected {
        container: String,
        event: &'static str,
        state: &'static str,
    },
    #[error("the pod has not been started")]
    NotStarted,
}
