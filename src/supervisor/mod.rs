//! The per-pod supervisor: the kubelet half of podrun for one pod. It
//! claims the pod's name and state, asks the runtime for the sandbox, then
//! runs one single-threaded loop (image pulls are child processes): poll
//! the signal pipes, the image pulls' pipes, the containers'
//! pidfds and log pipes and the API socket; feed every observation to the
//! driver (the lifecycle engine and what a kubelet reports); sleep until
//! the engine's next deadline. It is the child subreaper, and writes the
//! pod's state on every change.

mod api;
mod down;
pub mod driver;
pub mod echo;
pub mod images;
pub mod node;
pub mod pulls;
pub mod timers;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{pipe2, read};

use crate::api::events::Recorder;
use crate::api::state::{self, ContainerState, Limits, State, StateError};
use crate::lifecycle::{Phase, PodModel, Time};
use crate::paths::PodDirs;
use crate::pod::container::Addresses;
use crate::pod::{ContainerKind, PodPlan};
use crate::runtime::{self, ContainerState as Run, Runtime, RuntimeError};
use crate::sandbox::pod::{self as sandbox_pod, PodError};
use driver::{Driver, PodRef};
use echo::Echo;
use node::LiveNode;

pub use down::{down, forget};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("waiting for events: {0}")]
    Poll(Errno),
}

/// How the supervisor talks to the person who started it.
#[derive(Default)]
pub struct Options {
    /// Where image pulls show their progress, if anywhere.
    pub progress: Option<pulls::ShowProgress>,
    /// Echo container output as `name | line` on stdout.
    pub echo: bool,
    /// Put before each container's name in echoed output and before each
    /// lifecycle line on stderr: `NAME/` when several pods share the
    /// terminal, empty for one.
    pub prefix: String,
    /// Written to (a line: the pod's phase) and closed once the pod is
    /// Initialized and its apps have started or are held up, or an init
    /// container is held up, or it has finished: what `up -d` waits for.
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

/// Why a container waits that is not its being made: it will not start
/// on its own (a configuration error, an image that cannot be had, a
/// back-off).
pub fn held_up(c: &crate::api::ContainerStatus) -> bool {
    c.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
}

/// What `up -d` waits for: the pod Initialized and each app started,
/// ended or held up; or an init container held up, which stops the pod
/// there. The word `up -d` is then given is the pod's phase.
fn apps_settled(status: &crate::api::PodStatus) -> bool {
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    let settled = |c: &crate::api::ContainerStatus| {
        let state = c.state.as_ref();
        state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            || c.last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            || held_up(c)
    };
    if initialized {
        status.container_statuses.iter().flatten().all(settled)
    } else {
        // Before the apps: an init container that is held up stops the
        // pod there (a sidecar's back-off once the pod is Initialized
        // does not).
        status.init_container_statuses.iter().flatten().any(held_up)
    }
}

/// The loop's view of one pod.
struct Supervisor<'a> {
    driver: Driver<LiveNode<'a>>,
    state: State,
    ready: Option<OwnedFd>,
    api: Option<api::Server>,
    /// When the loop last handled events, until it has dropped the code
    /// pages they touched (see `release_code_when_quiet`).
    busy_at: Option<Time>,
}

/// The state a pod starts with, saved before anything of it exists; it
/// takes the plan's copy of the manifest, kept only there.
fn initial_state(
    plan: &mut PodPlan,
    dirs: &PodDirs,
    cgroup: std::path::PathBuf,
    unenforced: Option<&str>,
) -> State {
    State {
        name: plan.name.clone(),
        namespace: plan.namespace.clone(),
        uid: plan.uid.clone(),
        supervisor_pid: std::process::id(),
        supervisor_start: state::start_time(std::process::id()).unwrap_or(0),
        dirs: dirs.clone(),
        cgroup,
        limits: Limits {
            enforced: unenforced.is_none(),
            reason: unenforced.map(str::to_owned),
        },
        containers: BTreeMap::new(),
        sidecars: plan.names_of(ContainerKind::Sidecar),
        apps: plan.names_of(ContainerKind::App),
        volumes: BTreeMap::new(),
        pod: Some(std::mem::take(&mut plan.manifest)),
        plan: serde_json::to_value(&plan.resources).ok(),
        status: Default::default(),
        finished: false,
        torn_down: false,
    }
}

/// The pod's and the node's addresses (a hostNetwork pod's are the
/// node's, as the kubelet reports them).
fn addresses(sandbox: &runtime::PodSandbox) -> Addresses {
    let strings =
        |ips: &[std::net::IpAddr]| ips.iter().map(ToString::to_string).collect::<Vec<_>>();
    Addresses {
        pod_ips: strings(sandbox.pod_ips()),
        host_ips: strings(sandbox.node_ips()),
    }
}

/// Runs the compiled pod to a terminal phase and tears it down; returns
/// the phase.
pub fn run(mut plan: PodPlan, options: Options) -> Result<Phase, SupervisorError> {
    let dirs = PodDirs::new(&plan.name, &plan.uid);
    let claim = sandbox_pod::claim(&dirs, &plan.name)?;
    let rt = Runtime::new()?;
    if let Some(reason) = rt.unenforced() {
        eprintln!("warning: {reason}");
    }
    let cgroup = rt.pod_cgroup(&plan.uid)?;
    let state = initial_state(&mut plan, &dirs, cgroup, rt.unenforced());
    state.save()?;
    // The state says from now on whether this supervisor lives.
    drop(claim);
    let sandbox = match rt.run_pod_sandbox(&plan.sandbox, &dirs) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            // Nothing ran: leave nothing, not even the state; unless the
            // network still owes a DEL, which `down` tries again from it.
            if !crate::network::attached(&dirs.network()) {
                let _ = sandbox_pod::forget(&dirs);
            }
            return Err(e.into());
        }
    };
    let addresses = addresses(&sandbox);
    plan.resolve_addresses(&addresses);
    let plan = &plan;
    let signals = match signal_pipes() {
        Ok(signals) => signals,
        Err(e) => {
            let _ = runtime::remove_pod_sandbox(&dirs, sandbox.cgroup_dir());
            let _ = sandbox_pod::forget(&dirs);
            return Err(e);
        }
    };
    // SAFETY: prctl with integer arguments. Orphans of the pod's processes
    // are reaped here rather than by init.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut state = state;
    state.volumes = sandbox.volumes().clone();
    let pod = PodRef {
        name: plan.name.clone(),
        namespace: plan.namespace.clone(),
        uid: plan.uid.clone(),
        node_name: plan.node_name.clone(),
        addresses,
    };
    let pulls = pulls::Pulls::new(plan.pull_secrets.clone(), options.progress.clone());
    let node = LiveNode::new(
        sandbox,
        plan,
        Echo::new(options.echo, options.prefix.clone()),
        pulls,
    );
    let prefix = options.prefix.clone();
    let say: driver::Say = Box::new(move |line: &str| {
        echo::wrote();
        eprintln!("{prefix}{line}");
    });
    let mut sup = Supervisor {
        driver: Driver::new(
            PodModel::from_plan(plan),
            node,
            Recorder::open(&dirs.run),
            pod,
            rt.unenforced().map(str::to_owned),
            say,
        ),
        state,
        ready: options.ready,
        api: api::Server::bind(&dirs.run)
            .map_err(|e| eprintln!("warning: no API socket for this pod: {e}"))
            .ok(),
        busy_at: None,
    };
    let result = sup.run_loop(&signals);
    let node = &mut sup.driver.node;
    node.sandbox.end_checks();
    // Whatever happened, nothing of the pod is left running or mounted.
    let teardown = node.sandbox.remove(&mut node.echo);
    node.echo.flush_all();
    sup.state.finished = true;
    sup.state.torn_down = teardown.is_ok();
    sup.state.status = sup.driver.status();
    for c in sup.state.containers.values_mut() {
        c.pid = None;
    }
    sup.state.save()?;
    teardown?;
    result
}

impl Supervisor<'_> {
    fn run_loop(&mut self, signals: &SignalPipes) -> Result<Phase, SupervisorError> {
        self.driver.start(now());
        crate::memory::release_startup_code();
        loop {
            self.settle();
            if let Some(phase) = self.driver.finished() {
                return Ok(phase);
            }
            self.wait(signals)?;
        }
    }

    /// Feeds what was observed until nothing is left, then saves the
    /// state if the pod changed. Only an event can change it: a wake-up
    /// for output alone (the hot path of a chatty container) computes and
    /// writes nothing, and one that changed nothing shown (a probe's tick,
    /// a check that says what the last one said) writes nothing either.
    fn settle(&mut self) {
        if !self.driver.settle(&now) {
            return;
        }
        self.busy_at = Some(now());
        self.feed_watchers();
        let status = self.driver.status();
        let synced = self.sync_containers();
        if status == self.state.status && !synced {
            return;
        }
        self.state.status = status;
        if let Err(e) = self.state.save() {
            tracing::warn!("{e}");
        }
        if self.ready.is_some() {
            let said = match self.driver.finished() {
                Some(phase) => Some(phase.as_str().to_owned()),
                None => apps_settled(&self.state.status)
                    .then(|| self.state.status.phase.clone().unwrap_or_default()),
            };
            if let Some(said) = said
                && let Some(fd) = self.ready.take()
            {
                let _ = nix::unistd::write(&fd, format!("{said}\n").as_bytes());
            }
        }
    }

    /// The state's record of each container's latest run that started,
    /// from the runtime (one that failed to start has no log); whether it
    /// changed.
    fn sync_containers(&mut self) -> bool {
        let mut changed = false;
        for c in self.driver.node.sandbox.container_statuses() {
            if c.state == Run::Created {
                continue;
            }
            let record = ContainerState {
                pid: match c.state {
                    Run::Running { pid } => Some(pid),
                    _ => None,
                },
                restart_count: c.restart_count,
                log: c.log,
            };
            if self.state.containers.get(&c.name) != Some(&record) {
                self.state.containers.insert(c.name, record);
                changed = true;
            }
        }
        changed
    }

    /// Blocks until something happens or the next deadline, then turns
    /// what happened into observations.
    fn wait(&mut self, signals: &SignalPipes) -> Result<(), SupervisorError> {
        let engine_due = self.driver.next_deadline().map(|at| at.millis_since(now()));
        // Rounded up: a deadline less than a millisecond away is not a
        // zero timeout to spin on.
        let check_due = self.driver.node.sandbox.next_deadline().map(|at| {
            let left = at.saturating_duration_since(Instant::now());
            left.as_micros().div_ceil(1000) as i64
        });
        let timeout = match engine_due.into_iter().chain(check_due).min() {
            Some(ms) => {
                let ms = ms.clamp(0, i64::from(i32::MAX));
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let timeout = self.release_code_when_quiet(timeout);
        let ready = {
            let node = &self.driver.node;
            let (pidfds, pipes) = node.sandbox.fds();
            let mut fds: Vec<PollFd> = vec![
                PollFd::new(signals.stop.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.child.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                node.pulls
                    .fds()
                    .into_iter()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            fds.extend(pidfds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            let pipe_start = fds.len();
            fds.extend(pipes.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            let stdout = std::io::stdout();
            if node.echo.pending() {
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
            fds[pipe_start..pipe_start + pipes.len()]
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect::<Vec<bool>>()
        };
        // Output first, so an exit is reported after the lines before it.
        let node = &mut self.driver.node;
        node.sandbox.pump_logs(&ready, &mut node.echo);
        node.echo.flush();
        self.serve();
        drain(&signals.child);
        let lost = self.reap();
        self.driver.node.pulls_ended();
        // What ended comes before a stop asked for meanwhile, and timers
        // after both.
        self.driver.collect();
        if lost {
            self.driver.sandbox_lost();
        }
        for _ in 0..drain(&signals.stop) {
            let grace = self.requested_grace();
            self.driver.request_stop(grace);
        }
        self.driver.fire_due(now());
        self.driver.node.sandbox.expire_checks(Instant::now());
        Ok(())
    }

    /// What the runtime reaped that is the supervisor's: execs ended, logs
    /// ended; whether the pod's PID namespace is gone.
    fn reap(&mut self) -> bool {
        let reaped = self.driver.node.reap();
        for (pid, code) in reaped.execs {
            if let Some(conn) = self.api.as_mut().and_then(|s| s.exec_ended(pid)) {
                self.exec_exited(conn, code);
            }
        }
        for name in &reaped.exited {
            self.log_ended(name);
        }
        reaped.pid_namespace_lost
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerStatus, PodCondition, PodStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting,
    };

    fn container(name: &str, waiting: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.to_owned(),
            state: Some(match waiting {
                Some(reason) => ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.to_owned()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                None => ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    fn status(
        initialized: bool,
        init: Vec<ContainerStatus>,
        apps: Vec<ContainerStatus>,
    ) -> PodStatus {
        PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Initialized".to_owned(),
                status: if initialized { "True" } else { "False" }.to_owned(),
                ..Default::default()
            }]),
            init_container_statuses: Some(init),
            container_statuses: Some(apps),
            ..Default::default()
        }
    }

    #[test]
    fn up_d_waits_for_the_apps_or_a_container_held_up() {
        // Apps being made: not yet.
        let making = status(
            true,
            vec![],
            vec![container("app", Some("ContainerCreating"))],
        );
        assert!(!apps_settled(&making));
        // Apps running, or one held up: settled.
        assert!(apps_settled(&status(
            true,
            vec![],
            vec![container("app", None)]
        )));
        let config = status(
            true,
            vec![],
            vec![container("app", Some("CreateContainerConfigError"))],
        );
        assert!(apps_settled(&config));
        // An init container held up before the apps: settled (Pending).
        let init = status(
            false,
            vec![container("setup", Some("CreateContainerConfigError"))],
            vec![container("app", Some("PodInitializing"))],
        );
        assert!(apps_settled(&init));
        let initializing = status(
            false,
            vec![container("setup", None)],
            vec![container("app", Some("PodInitializing"))],
        );
        assert!(!apps_settled(&initializing));
        // A sidecar in back-off once the pod is Initialized, while the
        // apps are still being made: not yet.
        let sidecar = status(
            true,
            vec![container("proxy", Some("CrashLoopBackOff"))],
            vec![container("app", Some("ContainerCreating"))],
        );
        assert!(!apps_settled(&sidecar));
    }
}
