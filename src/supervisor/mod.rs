//! The per-pod supervisor: builds the sandbox, then one single-threaded
//! loop that polls the signal pipes, the containers' pidfds and their log
//! pipes, fires the engine's timers, feeds every observation to the
//! lifecycle engine and carries out the actions it returns. It is the
//! child subreaper, and writes the pod's state on every change.

mod api;
pub mod events;
pub mod images;
pub mod launch;
pub mod logs;
mod probes;
pub mod state;
pub mod support;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal as NixSignal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2, read};

use crate::lifecycle::{
    Action, Engine, Event, ExitStatus, Hook, LifecycleError, Phase, PodModel, ProbeKind, Signal,
    Time, Timer, TimerKind,
};
use crate::manifest::Pod;
use crate::plan::Plan;
use crate::sandbox::cgroup::{self, CgroupError, PodCgroup, PodrunRoot};
use crate::sandbox::pod::{self as sandbox_pod, PodDirs, PodError};
use launch::{Launcher, Outcome};
use logs::{Echo, LogPipe};
use state::{ContainerState, Limits, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("waiting for events: {0}")]
    Poll(Errno),
}

/// How the supervisor talks to the person who started it.
#[derive(Debug, Default)]
pub struct Options {
    /// Echo container output as `name | line` on stdout.
    pub echo: bool,
    /// Written to (a line: `running` or the final phase) and closed once
    /// the pod is Initialized and its apps have started or failed, or it
    /// has finished: what `up -d` waits for.
    pub ready: Option<OwnedFd>,
}

/// A file in the run directory `podrun down --grace N` leaves for the
/// supervisor before it signals it.
pub const STOP_GRACE_FILE: &str = "stop-grace";

/// The engine's clock: wall time when the supervisor started, advanced by
/// the monotonic clock, so a step of the wall clock moves no grace period
/// or back-off.
fn now() -> Time {
    static START: std::sync::OnceLock<(i64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, at) = START.get_or_init(|| {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (ms, std::time::Instant::now())
    });
    Time(wall + at.elapsed().as_millis() as i64)
}

/// A random version 4 UUID, for the pod's uid.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The lowest oom_score_adj this process may give a child: without
/// CAP_SYS_RESOURCE it cannot go below its own.
fn oom_floor(holding: &crate::container::caps::Holding) -> i64 {
    if holding.effective & caps::Capability::CAP_SYS_RESOURCE.bitmask() != 0 {
        return -1000;
    }
    fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A running container run.
struct Run {
    run: u64,
    pid: Pid,
    pidfd: OwnedFd,
    oom_base: u64,
}

/// Signals arrive as bytes on pipes (signal-hook's self-pipe).
struct SignalPipes {
    stop: OwnedFd,
    child: OwnedFd,
}

fn signal_pipes() -> Result<SignalPipes, SupervisorError> {
    let pipe = || -> Result<(OwnedFd, OwnedFd), SupervisorError> {
        let (r, w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| SupervisorError::Signals(e.into()))?;
        Ok((r, w))
    };
    let (stop_r, stop_w) = pipe()?;
    let (child_r, child_w) = pipe()?;
    let register = |sig, fd: &OwnedFd| {
        let fd = fd.try_clone().map_err(SupervisorError::Signals)?;
        signal_hook::low_level::pipe::register(sig, fd).map_err(SupervisorError::Signals)
    };
    register(signal_hook::consts::SIGINT, &stop_w)?;
    register(signal_hook::consts::SIGTERM, &stop_w)?;
    register(signal_hook::consts::SIGCHLD, &child_w)?;
    Ok(SignalPipes {
        stop: stop_r,
        child: child_r,
    })
}

/// Reads what a non-blocking pipe holds; returns how many bytes.
fn drain(fd: &OwnedFd) -> usize {
    let mut buf = [0u8; 64];
    let mut total = 0;
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

/// The pod is Initialized and each app has started, ended or failed to
/// start (what `up -d` waits for).
fn apps_settled(status: &k8s_openapi::api::core::v1::PodStatus) -> bool {
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    let settled = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        let state = c.state.as_ref();
        let waiting = state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            || c.last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            || waiting.is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
    };
    initialized && status.container_statuses.iter().flatten().all(settled)
}

/// What a deadline is for.
enum Due {
    /// One of the engine's timers.
    Engine(Timer),
    /// A probe's next period.
    Probe(String, ProbeKind),
    /// A check's timeout.
    CheckDeadline(Pid),
    /// A sleep hook's end.
    HookSleep(String, u64, Hook),
}

struct Supervisor<'a> {
    launcher: Launcher<'a>,
    engine: Engine,
    state: State,
    runs: BTreeMap<String, Run>,
    pipes: Vec<LogPipe>,
    echo: Echo,
    /// The init of a shared PID namespace.
    pid_init: Option<Pid>,
    /// Deadlines in order, and what each one is for.
    timers: BinaryHeap<Reverse<(Time, u64)>>,
    timer_of: BTreeMap<u64, Due>,
    probes: probes::Probes,
    next_timer: u64,
    pending: VecDeque<Event>,
    finished: Option<Phase>,
    stops: usize,
    ready: Option<OwnedFd>,
    events: events::Recorder,
    api: Option<api::Server>,
    /// When the loop last handled events, until it has dropped the code
    /// pages they touched (see `release_code_when_quiet`).
    busy_at: Option<Time>,
}

/// Runs the pod to a terminal phase and tears it down; returns the phase.
pub fn run(pod: &Pod, plan: &Plan, options: Options) -> Result<Phase, SupervisorError> {
    let uid = new_uid();
    let dirs = PodDirs::new(&pod.name, &uid);
    let claim = sandbox_pod::claim(&dirs, &pod.name)?;
    let (mount, controllers) = cgroup::discover()?;
    let reason = cgroup::unenforced_reason(&mount, &controllers);
    if let Some(reason) = &reason {
        eprintln!("warning: {reason}");
    }
    let cgroup_root = PodrunRoot::at(&mount.mount);
    let pod_cgroup = cgroup_root.pod(&uid)?;
    let state = State {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        uid: uid.clone(),
        supervisor_pid: std::process::id(),
        supervisor_start: state::start_time(std::process::id()).unwrap_or(0),
        dirs: dirs.clone(),
        cgroup: pod_cgroup.dir().to_owned(),
        limits: Limits {
            enforced: reason.is_none(),
            reason,
        },
        containers: BTreeMap::new(),
        sidecars: pod
            .containers
            .iter()
            .filter(|c| c.kind == crate::manifest::ContainerKind::Sidecar)
            .map(|c| c.name.clone())
            .collect(),
        apps: pod
            .containers
            .iter()
            .filter(|c| c.kind == crate::manifest::ContainerKind::App)
            .map(|c| c.name.clone())
            .collect(),
        volumes: BTreeMap::new(),
        pod: serde_json::to_value(k8s_openapi::api::core::v1::Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                labels: Some(pod.labels.clone()),
                annotations: Some(pod.annotations.clone()),
                ..Default::default()
            },
            spec: Some(pod.spec.clone()),
            status: None,
        })
        .ok(),
        plan: serde_json::to_value(plan).ok(),
        status: Default::default(),
        finished: false,
        torn_down: false,
    };
    state.save()?;
    // The state says from now on whether this supervisor lives.
    drop(claim);
    let hostname = crate::container::config::hostname(pod);
    let node_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sandbox = match sandbox_pod::create(
        &dirs,
        pod,
        &cgroup_root,
        &uid,
        &plan.cgroup.pod,
        &hostname,
        &node_name,
    ) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            // Nothing ran: leave nothing, not even the state.
            let _ = sandbox_pod::teardown(&dirs, &pod_cgroup);
            let _ = sandbox_pod::forget(&dirs);
            return Err(e.into());
        }
    };
    let mut state = state;
    state.volumes = sandbox.volumes.clone();
    let signals = match signal_pipes() {
        Ok(signals) => signals,
        Err(e) => {
            let _ = sandbox_pod::teardown(&dirs, &sandbox.cgroup);
            let _ = sandbox_pod::forget(&dirs);
            return Err(e);
        }
    };
    // SAFETY: prctl with integer arguments. Orphans of the pod's processes
    // are reaped here rather than by init.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let holding = crate::container::caps::this_process();
    let oom_floor = oom_floor(&holding);
    let model = PodModel::from_pod(pod, plan.qos_class.as_str());
    let mut sup = Supervisor {
        launcher: Launcher {
            pod,
            uid: &uid,
            hostname: &hostname,
            node_name: &node_name,
            dirs: &dirs,
            cgroup: &sandbox.cgroup,
            plan,
            volumes: &sandbox.volumes,
            namespaces: &sandbox.namespaces,
            pid_namespace: sandbox.shared_pid.as_ref().map(|p| &p.ns),
            all_caps: holding.all,
            last_cap: holding.last_cap,
            oom_floor,
            etc_files: &sandbox.etc_files,
            image_runs: Default::default(),
            store: Default::default(),
        },
        engine: Engine::new(model),
        state,
        runs: BTreeMap::new(),
        pipes: Vec::new(),
        echo: Echo::new(options.echo),
        pid_init: sandbox.shared_pid.as_ref().map(|p| p.init),
        timers: BinaryHeap::new(),
        timer_of: BTreeMap::new(),
        probes: probes::Probes::default(),
        next_timer: 0,
        pending: VecDeque::new(),
        finished: None,
        stops: 0,
        ready: options.ready,
        events: events::Recorder::open(&dirs.run),
        api: api::Server::bind(&dirs.run)
            .map_err(|e| eprintln!("warning: no API socket for this pod: {e}"))
            .ok(),
        busy_at: None,
    };
    let result = sup.run_loop(&signals);
    sup.end_checks();
    // Whatever happened, nothing of the pod is left running or mounted.
    let teardown = sandbox_pod::teardown(&dirs, &sandbox.cgroup);
    for mut pipe in std::mem::take(&mut sup.pipes) {
        pipe.pump(&mut sup.echo, logs::DRAIN_BUDGET);
    }
    sup.echo.flush_all();
    sup.state.finished = true;
    sup.state.torn_down = teardown.is_ok();
    sup.state.status = sup.status();
    for c in sup.state.containers.values_mut() {
        c.pid = None;
    }
    sup.state.save()?;
    teardown?;
    result
}

impl Supervisor<'_> {
    fn run_loop(&mut self, signals: &SignalPipes) -> Result<Phase, SupervisorError> {
        self.events.record(
            false,
            "Scheduled",
            format!("pod/{}", self.state.name),
            format!(
                "Successfully assigned {}/{} to {}",
                self.state.namespace, self.state.name, self.launcher.node_name
            ),
        );
        let actions = self.engine.start(now());
        self.act_all(actions);
        crate::memory::release_startup_code();
        loop {
            self.settle();
            if let Some(phase) = self.finished {
                return Ok(phase);
            }
            self.wait(signals)?;
        }
    }

    /// Feeds pending events until none is left, then saves the state.
    /// Only an event changes the pod: a wake-up for output alone (the hot
    /// path of a chatty container) computes and writes nothing.
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.busy_at = Some(now());
        while let Some(event) = self.pending.pop_front() {
            match self.engine.handle(now(), event) {
                Ok(actions) => self.act_all(actions),
                Err(e @ LifecycleError::Unexpected { .. }) => tracing::debug!("{e}"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        self.state.status = self.status();
        if let Err(e) = self.state.save() {
            tracing::warn!("{e}");
        }
        self.feed_watchers();
        if self.ready.is_some() {
            let said = match self.finished {
                Some(phase) => Some(phase.as_str()),
                None => apps_settled(&self.state.status).then_some("Running"),
            };
            if let Some(said) = said
                && let Some(fd) = self.ready.take()
            {
                let _ = nix::unistd::write(&fd, format!("{said}\n").as_bytes());
            }
        }
    }

    /// The engine's status, with podrun's own condition about limits.
    fn status(&self) -> k8s_openapi::api::core::v1::PodStatus {
        let mut status = self.engine.status();
        if let Some(reason) = &self.state.limits.reason {
            status.conditions.get_or_insert_with(Vec::new).push(
                k8s_openapi::api::core::v1::PodCondition {
                    type_: "podrun.io/LimitsEnforced".to_owned(),
                    status: "False".to_owned(),
                    reason: Some("ControllersUnavailable".to_owned()),
                    message: Some(reason.clone()),
                    ..Default::default()
                },
            );
        }
        status
    }

    fn act_all(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Start {
                container,
                run,
                restart_count,
                image,
            } => self.start(container, run, restart_count, &image),
            Action::Signal { container, signal } => {
                if let Some(r) = self.runs.get(&container) {
                    let sig = match signal {
                        Signal::Term => NixSignal::SIGTERM,
                        Signal::Kill => NixSignal::SIGKILL,
                    };
                    eprintln!("{container}: Killing ({sig})");
                    self.events.record(
                        false,
                        "Killing",
                        format!("spec.containers{{{container}}}"),
                        format!("Stopping container {container} ({sig})"),
                    );
                    let _ = kill(r.pid, sig);
                }
            }
            Action::KillPod => {
                if let Err(e) = self.launcher.cgroup.kill() {
                    tracing::warn!("{e}");
                }
            }
            Action::ArmTimer { at, timer } => {
                if let TimerKind::Backoff(container) = &timer.kind {
                    self.backing_off(container);
                }
                self.arm(at, Due::Engine(timer));
            }
            Action::Finished { phase } => self.finished = Some(phase),
            Action::RunHook {
                container,
                run,
                hook,
            } => self.run_hook(container, run, hook),
            Action::StartProbe {
                container,
                run,
                probe,
            } => self.start_probe(container, run, probe),
            Action::StopProbe { container, probe } => self.stop_probe(container, probe),
        }
    }

    fn start(&mut self, container: String, run: u64, restart_count: u32, image: &str) {
        let log = self.launcher.dirs.log_file(&container, restart_count);
        match self.launcher.start(&container, image, restart_count) {
            Outcome::Started {
                child,
                pipes,
                oom_base,
            } => {
                let pid = child.pid.as_raw() as u32;
                eprintln!("{container}: Started (pid {pid})");
                let object = format!("spec.containers{{{container}}}");
                self.events.record(
                    false,
                    "Pulled",
                    object.clone(),
                    format!("Container image {image:?} already present on machine"),
                );
                self.events.record(
                    false,
                    "Created",
                    object.clone(),
                    format!("Created container: {container}"),
                );
                self.events.record(
                    false,
                    "Started",
                    object,
                    format!("Started container {container}"),
                );
                self.pipes.extend(pipes);
                self.state.containers.insert(
                    container.clone(),
                    ContainerState {
                        pid: Some(pid),
                        restart_count,
                        log,
                    },
                );
                self.runs.insert(
                    container.clone(),
                    Run {
                        run,
                        pid: child.pid,
                        pidfd: child.pidfd,
                        oom_base,
                    },
                );
                self.pending.push_back(Event::Started {
                    container,
                    run,
                    pid,
                });
            }
            Outcome::CreateFailed(message) => {
                self.failed(&container, &message);
                self.pending.push_back(Event::CreateFailed {
                    container,
                    run,
                    message,
                });
            }
            Outcome::StartFailed(message) => {
                self.failed(&container, &message);
                self.pending.push_back(Event::StartFailed {
                    container,
                    run,
                    message,
                });
            }
        }
    }

    /// A container waits to restart: in CrashLoopBackOff, the kubelet's
    /// BackOff warning (a retried CreateContainerError is not a back-off).
    fn backing_off(&mut self, container: &str) {
        let status = self.engine.status();
        let crash_looping = status
            .init_container_statuses
            .iter()
            .chain(status.container_statuses.iter())
            .flatten()
            .filter(|c| c.name == container)
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
            .any(|r| r == "CrashLoopBackOff");
        if crash_looping {
            eprintln!("{container}: BackOff");
            self.events.record(
                true,
                "BackOff",
                format!("spec.containers{{{container}}}"),
                format!(
                    "Back-off restarting failed container {container} in pod {}_{}({})",
                    self.state.name, self.state.namespace, self.state.uid
                ),
            );
        }
    }

    /// A container that could not be created or started: said and recorded.
    fn failed(&mut self, container: &str, message: &str) {
        eprintln!("{container}: Failed: {message}");
        self.events.record(
            true,
            "Failed",
            format!("spec.containers{{{container}}}"),
            format!("Error: {message}"),
        );
    }

    /// Blocks until something happens, then turns it into events.
    fn wait(&mut self, signals: &SignalPipes) -> Result<(), SupervisorError> {
        let timeout = match self.timers.peek() {
            Some(Reverse((at, _))) => {
                let ms = at.millis_since(now()).clamp(0, i64::from(i32::MAX));
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let timeout = self.release_code_when_quiet(timeout);
        let ready = {
            let mut fds: Vec<PollFd> = vec![
                PollFd::new(signals.stop.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.child.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                self.runs
                    .values()
                    .map(|r| PollFd::new(r.pidfd.as_fd(), PollFlags::POLLIN)),
            );
            fds.extend(
                self.pipes
                    .iter()
                    .map(|p| PollFd::new(p.fd(), PollFlags::POLLIN)),
            );
            let stdout = std::io::stdout();
            if self.echo.pending() {
                fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(server) = &self.api {
                fds.extend(
                    server
                        .fds()
                        .into_iter()
                        .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
                );
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(SupervisorError::Poll(e)),
            }
            let pipe_start = 2 + self.runs.len();
            fds[pipe_start..pipe_start + self.pipes.len()]
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect::<Vec<bool>>()
        };
        // Output first, so an exit is reported after the lines before it.
        let mut eof = Vec::new();
        for (i, is_ready) in ready.iter().enumerate() {
            if *is_ready && self.pipes[i].pump(&mut self.echo, logs::PUMP_BUDGET) {
                eof.push(i);
            }
        }
        for i in eof.into_iter().rev() {
            self.pipes.remove(i);
        }
        self.echo.flush();
        self.serve();
        drain(&signals.child);
        self.reap();
        let stops = drain(&signals.stop);
        for _ in 0..stops {
            self.stops += 1;
            let grace = if self.stops > 1 {
                Some(0)
            } else {
                self.requested_grace()
            };
            eprintln!(
                "podrun: stopping pod {}{}",
                self.state.name,
                if grace == Some(0) { " now" } else { "" }
            );
            self.pending.push_back(Event::StopRequested {
                grace_seconds: grace,
            });
        }
        let now = now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.timer_of.remove(&seq) {
                Some(Due::Engine(timer)) => self.pending.push_back(Event::TimerFired(timer)),
                Some(Due::Probe(container, kind)) => self.probe_due(container, kind),
                Some(Due::CheckDeadline(pid)) => self.check_deadline(pid),
                Some(Due::HookSleep(container, run, hook)) => self.hook_slept(container, run, hook),
                None => {}
            }
        }
        Ok(())
    }

    /// Starting containers, saving state and reporting status run code
    /// that an idle pod does not run again, and each page of it touched
    /// stays mapped (a whole large page-cache folio, 64 KiB here, per
    /// fault). Once the loop has handled no event for `QUIET`, it drops
    /// them; what a later wake-up needs faults back in from the page
    /// cache. Returns the poll timeout, shortened to wake the loop when
    /// that quiet time is up.
    fn release_code_when_quiet(&mut self, timeout: PollTimeout) -> PollTimeout {
        const QUIET: i64 = 1000;
        let Some(at) = self.busy_at else {
            return timeout;
        };
        let left = QUIET - now().millis_since(at);
        if left <= 0 {
            crate::memory::release_startup_code();
            self.busy_at = None;
            return timeout;
        }
        let left = PollTimeout::try_from(left as u32).unwrap_or(PollTimeout::MAX);
        if timeout.is_none() {
            left
        } else {
            timeout.min(left)
        }
    }

    /// `podrun down --grace N` leaves N in the run directory.
    fn requested_grace(&self) -> Option<i64> {
        let path = self.state.dirs.run.join(STOP_GRACE_FILE);
        let grace = fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let _ = fs::remove_file(path);
        grace
    }

    /// Reaps every child that has ended: a container's main process becomes
    /// an Exited event; an orphan the pod left is simply reaped.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let (pid, exit) = match status {
                WaitStatus::Exited(pid, code) => (pid, ExitStatus::Code(code)),
                WaitStatus::Signaled(pid, sig, _) => (pid, ExitStatus::Signal(sig as i32)),
                _ => continue,
            };
            if let Some(conn) = self.api.as_mut().and_then(|s| s.exec_ended(pid)) {
                let code = match exit {
                    ExitStatus::Code(code) => code,
                    ExitStatus::Signal(sig) => 128 + sig,
                };
                self.exec_exited(conn, code);
                continue;
            }
            if self.check_exited(pid, exit) {
                continue;
            }
            let Some(name) = self
                .runs
                .iter()
                .find(|(_, r)| r.pid == pid)
                .map(|(n, _)| n.clone())
            else {
                if Some(pid) == self.pid_init && self.finished.is_none() {
                    // The shared PID namespace is gone, and no container can
                    // start in it again: the sandbox is lost, as when the
                    // kubelet's pause container dies.
                    eprintln!("podrun: the pod's PID namespace ended; stopping the pod");
                    self.pid_init = None;
                    self.pending.push_back(Event::StopRequested {
                        grace_seconds: None,
                    });
                }
                continue;
            };
            let Some(run) = self.runs.remove(&name) else {
                continue;
            };
            // Every line written before the exit is logged before it.
            let mut eof = Vec::new();
            for (i, pipe) in self.pipes.iter_mut().enumerate() {
                if pipe.container == name && pipe.pump(&mut self.echo, logs::DRAIN_BUDGET) {
                    eof.push(i);
                }
            }
            for i in eof.into_iter().rev() {
                self.pipes.remove(i);
            }
            self.log_ended(&name);
            let oom_killed = self
                .launcher
                .cgroup
                .container(&name)
                .and_then(|c| c.oom_kills())
                .is_ok_and(|n| n > run.oom_base);
            let shown = match exit {
                ExitStatus::Code(code) => format!("exit code {code}"),
                ExitStatus::Signal(sig) => format!("signal {sig}"),
            };
            let oom = if oom_killed { ", OOMKilled" } else { "" };
            eprintln!("{name}: Exited ({shown}{oom})");
            if oom_killed {
                self.events.record(
                    true,
                    "OOMKilled",
                    format!("spec.containers{{{name}}}"),
                    format!("Container {name} was killed by the OOM killer"),
                );
            }
            if let Some(c) = self.state.containers.get_mut(&name) {
                c.pid = None;
            }
            self.pending.push_back(Event::Exited {
                container: name,
                run: run.run,
                status: exit,
                oom_killed,
            });
        }
    }
}

/// Tears a pod down from its state alone: asks a live supervisor to stop
/// (with `grace`), waits for it, then removes whatever is left.
pub fn down(
    name: &str,
    grace: Option<i64>,
    wait: std::time::Duration,
) -> Result<State, SupervisorError> {
    let mut state = State::load(name)?;
    let pid = state.supervisor_pid;
    let running = |s: &State| s.supervisor_alive();
    if !state.finished && running(&state) {
        if let Some(g) = grace {
            let _ = fs::write(state.dirs.run.join(STOP_GRACE_FILE), g.to_string());
        }
        let target = Pid::from_raw(pid as i32);
        // Its exit is awaited on a pidfd, opened before the signal and
        // known to be this supervisor's (not a reused pid) once its start
        // time still matches.
        let pidfd = pidfd_open(pid).filter(|_| running(&state));
        signal(pidfd.as_ref(), target, NixSignal::SIGTERM);
        let deadline = std::time::Instant::now() + wait;
        wait_exit(pidfd.as_ref(), deadline, || running(&state));
        if running(&state) {
            signal(pidfd.as_ref(), target, NixSignal::SIGKILL);
            let forever = std::time::Instant::now() + std::time::Duration::from_secs(3600);
            wait_exit(pidfd.as_ref(), forever, || running(&state));
        }
        state = State::load(name)?;
    }
    let cgroup = PodCgroup::at(&state.cgroup);
    sandbox_pod::teardown(&state.dirs, &cgroup)?;
    if !state.torn_down || !state.finished {
        state.finished = true;
        state.torn_down = true;
        for c in state.containers.values_mut() {
            c.pid = None;
        }
        state.save()?;
    }
    Ok(state)
}

/// A pidfd of process `pid`, if it is there (and the kernel has pidfds).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) with integer arguments; a descriptor it returns
    // is this process's own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor from the kernel, owned from here on.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Signals the process of `pidfd`, which cannot be another one that has
/// taken its pid since; `pid` only without a pidfd.
fn signal(pidfd: Option<&OwnedFd>, pid: Pid, sig: NixSignal) {
    match pidfd {
        Some(fd) => {
            // SAFETY: pidfd_send_signal(2) with a descriptor this process
            // owns, a signal number and no siginfo.
            let _ = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig as libc::c_int,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        None => {
            let _ = kill(pid, sig);
        }
    }
}

/// Waits until the process of `pidfd` exits or `deadline` passes; without
/// a pidfd, polls `alive` instead.
fn wait_exit(pidfd: Option<&OwnedFd>, deadline: std::time::Instant, alive: impl Fn() -> bool) {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match pidfd {
            Some(fd) => {
                let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                match poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                ) {
                    Err(Errno::EINTR) => continue,
                    _ => return,
                }
            }
            None if alive() => std::thread::sleep(std::time::Duration::from_millis(5)),
            None => return,
        }
    }
}

/// Removes a pod's state and logs (after `down`).
pub fn forget(state: &State) -> Result<(), SupervisorError> {
    Ok(sandbox_pod::forget(&state.dirs)?)
}
