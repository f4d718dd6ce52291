//! One container's state as the engine tracks it.

use super::backoff::Backoff;
use super::model::ContainerModel;
use super::{ProbeKind, Time};

/// A finished run of the container, as `state.terminated` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Time>,
    pub finished_at: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started yet (waiting for its turn).
    Pending,
    /// Start asked for; the process is not running yet.
    Creating,
    Running {
        pid: u32,
        started_at: Time,
    },
    Terminated(Terminated),
    /// Waiting to be restarted: CrashLoopBackOff until `until`, or
    /// CreateContainerError.
    BackOff {
        until: Time,
        reason: &'static str,
        message: String,
        generation: u64,
    },
}

/// Why a single container is being stopped outside a pod stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    PodStop,
    Liveness,
    Startup,
    PostStartFailed,
    ImageChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    pub reason: KillReason,
    pub pre_stop_running: bool,
    /// SIGTERM may be sent once preStop is done (a sidecar waits for the
    /// apps and the sidecars after it).
    pub turn: bool,
    pub term_sent: bool,
    pub kill_sent: bool,
    pub deadline: Time,
    pub generation: u64,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub model: ContainerModel,
    pub state: State,
    pub restart_count: u32,
    /// The current run (1 for the first `Action::Start`).
    pub run: u64,
    /// The latest finished run, and the one before it (`lastState` while
    /// the container rests terminated).
    pub last_terminated: Option<Terminated>,
    pub previous_terminated: Option<Terminated>,
    pub backoff: Backoff,
    /// The image pull's back-off, apart from the crash loop's as the
    /// kubelet keeps it: the last delay, doubled at each failed pull.
    pub pull_backoff_ms: Option<i64>,
    /// Its image is being pulled (the run is being made, nothing exists).
    pub pulling: bool,
    /// The ImagePullBackOff resync timer that counts.
    pub resync_generation: u64,
    /// postStart has finished for the current run.
    pub post_start_done: bool,
    /// `started` in the status: running, postStart done, startup passed.
    pub started: bool,
    /// A sidecar has been started once: init goes on past it from then on.
    pub ever_started: bool,
    /// A regular init container exited 0: it never runs again.
    pub completed: bool,
    pub ready: bool,
    pub probes: Vec<ProbeKind>,
    /// Per probe slot: the generation of its pending tick (0: none), and
    /// whether a check of it is running.
    pub probe_timers: [u64; 3],
    pub probe_busy: [bool; 3],
    pub successes: [u32; 3],
    pub failures: [u32; 3],
    pub stopping: Option<Stopping>,
    /// Restart after the current stop even if the policy says not to (the
    /// image changed).
    pub restart_after_stop: bool,
    pub image: String,
    /// The image of the latest run, which the status reports: a container
    /// shows a new image only once it runs it.
    pub run_image: Option<String>,
    pub next_message: Option<String>,
}

impl Container {
    pub fn new(model: ContainerModel) -> Container {
        let image = model.image.clone();
        Container {
            model,
            state: State::Pending,
            restart_count: 0,
            run: 0,
            last_terminated: None,
            previous_terminated: None,
            backoff: Backoff::default(),
            pull_backoff_ms: None,
            pulling: false,
            resync_generation: 0,
            post_start_done: false,
            started: false,
            ever_started: false,
            completed: false,
            ready: false,
            probes: Vec::new(),
            probe_timers: [0; 3],
            probe_busy: [false; 3],
            successes: [0; 3],
            failures: [0; 3],
            stopping: None,
            restart_after_stop: false,
            image,
            run_image: None,
            next_message: None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Running or about to run: a process exists or is being made (an
    /// image being pulled is not yet a process).
    pub fn is_active(&self) -> bool {
        match self.state {
            State::Running { .. } => true,
            State::Creating => !self.pulling,
            _ => false,
        }
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Pending => "not started",
            State::Creating => "being created",
            State::Running { .. } => "running",
            State::Terminated(_) => "terminated",
            State::BackOff { .. } => "waiting to restart",
        }
    }
}

pub fn probe_slot(kind: ProbeKind) -> usize {
    match kind {
        ProbeKind::Startup => 0,
        ProbeKind::Readiness => 1,
        ProbeKind::Liveness => 2,
    }
}
