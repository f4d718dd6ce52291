//! A pod's sandbox once made: its containers, their log pipes, the checks
//! and execs running in it; and what happened to them, found by reaping
//! (the supervisor is the child subreaper: every process of the pod that
//! ends is reaped here).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal as NixSignal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::checks::{CheckError, CheckId, Checks, Target, Verdict};
use super::container::{
    Base, Container, ContainerStatus, CreateError, Phase, RemoveError, StartError,
};
use super::images::ImageService;
use super::logs::{self, LogPipe, LogSink};
use crate::api::runtime::{ContainerConfig, ExitStatus, Handler, SandboxConfig};
use crate::container::caps::Holding;
use crate::container::pty::{self, PtyError};
use crate::paths::PodDirs;
use crate::probe::check::{ExecError, Session};
use crate::sandbox::namespaces::{self, Kind};
use crate::sandbox::pod::{self as sandbox_pod, PodError, Sandbox};

/// The standard streams of an exec.
pub enum ExecStreams {
    /// stdin, stdout and stderr, given by the caller.
    Given([OwnedFd; 3]),
    /// A terminal made in the container's devpts.
    Terminal,
}

/// Why an exec did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecFailure {
    #[error(transparent)]
    Terminal(#[from] PtyError),
    #[error("terminal: {0}")]
    TerminalCopy(std::io::Error),
    #[error(transparent)]
    Target(CheckError),
    #[error(transparent)]
    Start(#[from] ExecError),
}

impl ExecFailure {
    /// The exit code a shell would give a command that could not run
    /// (126, 127); none when the exec was refused before that.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecFailure::Terminal(_) | ExecFailure::TerminalCopy(_) => None,
            ExecFailure::Target(_) => Some(126),
            ExecFailure::Start(e) => Some(e.exit_code()),
        }
    }
}

/// What reaping found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A container's main process ended (its output read to the end).
    ContainerExited {
        name: String,
        status: ExitStatus,
        /// Its cgroup's `memory.events` oom_kill grew.
        oom_killed: bool,
    },
    CheckFinished {
        id: CheckId,
        verdict: Verdict,
    },
    /// An exec ended: its exit code, or 128 + the signal that killed it.
    ExecExited {
        pid: Pid,
        code: i32,
    },
    /// The pod's shared PID namespace ended: no container can start in it
    /// again (as when the kubelet's pause container dies).
    PidNamespaceLost,
}

/// The running container `name` of `containers`, as a check or an exec
/// runs in it.
fn target<'a>(
    containers: &'a BTreeMap<String, Container>,
    base: &Base,
    name: &str,
) -> Result<Target<'a>, CheckError> {
    let c = containers
        .get(name)
        .ok_or_else(|| CheckError::NoContainer(name.to_owned()))?;
    let (pid, cgroup, process) = c.running().ok_or(CheckError::NotRunning)?;
    Ok(Target {
        pid,
        cgroup,
        process,
        last_cap: base.holding.last_cap,
    })
}

/// A sandbox and what runs in it.
pub struct PodSandbox {
    base: Base,
    containers: BTreeMap<String, Container>,
    checks: Checks,
    pipes: Vec<LogPipe>,
}

impl PodSandbox {
    pub(super) fn new(
        config: SandboxConfig,
        dirs: PodDirs,
        made: Sandbox,
        holding: Holding,
        oom_floor: i64,
    ) -> PodSandbox {
        PodSandbox {
            base: Base {
                config,
                dirs,
                made,
                holding,
                oom_floor,
                images: ImageService::default(),
            },
            containers: BTreeMap::new(),
            checks: Checks::default(),
            pipes: Vec::new(),
        }
    }

    /// The images this sandbox's containers are made from.
    pub fn images(&self) -> &ImageService {
        &self.base.images
    }

    /// Volume name → where its data is on the host.
    pub fn volumes(&self) -> &BTreeMap<String, PathBuf> {
        &self.base.made.volumes
    }

    /// The pod's addresses: on the node's network, or the node's own with
    /// hostNetwork.
    pub fn pod_ips(&self) -> &[std::net::IpAddr] {
        &self.base.made.pod_ips
    }

    /// The node's addresses (the pod's `hostIPs`).
    pub fn node_ips(&self) -> &[std::net::IpAddr] {
        &self.base.made.node_ips
    }

    /// The pod's cgroup directory.
    pub fn cgroup_dir(&self) -> &Path {
        self.base.made.cgroup.dir()
    }

    /// CreateContainer: run `restart_count` of the container `config`
    /// describes; its previous run must have been removed.
    pub fn create_container(
        &mut self,
        config: &ContainerConfig,
        restart_count: u32,
    ) -> Result<(), CreateError> {
        let name = &config.name;
        if self.containers.contains_key(name) {
            return Err(CreateError::Exists(name.clone()));
        }
        let created = Container::create(&self.base, config, restart_count)?;
        self.containers.insert(name.clone(), created);
        Ok(())
    }

    /// RemoveContainer: what container `name`'s last run was made of (its
    /// root from an image); not while it runs. Nothing to remove is fine.
    pub fn remove_container(&mut self, name: &str) -> Result<(), RemoveError> {
        let Some(c) = self.containers.get(name) else {
            return Ok(());
        };
        if matches!(c.phase, Phase::Running(_)) {
            return Err(RemoveError::Running(name.to_owned()));
        }
        c.remove()?;
        self.containers.remove(name);
        Ok(())
    }

    /// StartContainer: the created container's process, in its
    /// namespaces, cgroup and view. Returns its pid.
    pub fn start_container(&mut self, name: &str) -> Result<u32, StartError> {
        let c = self
            .containers
            .get_mut(name)
            .ok_or_else(|| StartError::NotCreated(name.to_owned()))?;
        let (pid, pipes) = c.start(&self.base, name)?;
        self.pipes.extend(pipes);
        Ok(pid)
    }

    /// ContainerStatus: the container's latest run.
    pub fn container_status(&self, name: &str) -> Option<ContainerStatus> {
        Some(self.containers.get(name)?.status(name, &self.base.dirs))
    }

    /// Every container's latest run.
    pub fn container_statuses(&self) -> Vec<ContainerStatus> {
        self.containers
            .iter()
            .map(|(name, c)| c.status(name, &self.base.dirs))
            .collect()
    }

    /// The pod's pinned network namespace (none with hostNetwork).
    fn net_ns(&self) -> Option<PathBuf> {
        self.base
            .made
            .namespaces
            .contains(&Kind::Net)
            .then(|| namespaces::pin_path(&self.base.dirs.ns(), Kind::Net))
    }

    /// A probe's or hook's check of `handler` in container `name` (an
    /// exec in it, or a network check from the pod's network namespace;
    /// a hook's when `hook`): ExecSync and the kubelet's prober. Its
    /// verdict comes from `reap`; it is killed once past `timeout`.
    pub fn check(
        &mut self,
        name: &str,
        handler: &Handler,
        hook: bool,
        timeout: Option<Duration>,
    ) -> Result<CheckId, CheckError> {
        // A check to a host it names runs from the node, as the kubelet's
        // prober does; one to the pod, from the pod's namespace.
        let names_host = matches!(
            handler,
            Handler::Http { host: Some(_), .. }
                | Handler::Tcp { host: Some(_), .. }
                | Handler::Grpc { host: Some(_), .. }
        );
        let net_ns = if names_host { None } else { self.net_ns() };
        let target = target(&self.containers, &self.base, name);
        // The kubelet calls the pod's IP (the node's, with hostNetwork).
        let pod_ip = self
            .base
            .made
            .pod_ips
            .first()
            .map_or_else(|| "127.0.0.1".to_owned(), ToString::to_string);
        self.checks
            .check(target, net_ns.as_deref(), &pod_ip, handler, hook, timeout)
    }

    /// Exec: `argv` in the running container `name`, as the container
    /// runs, with the caller's standard streams or a terminal of the
    /// container's own (whose other end is returned); its end comes from
    /// `reap`.
    pub fn exec(
        &mut self,
        name: &str,
        argv: &[String],
        streams: ExecStreams,
    ) -> Result<(Pid, Option<OwnedFd>), ExecFailure> {
        let target = target(&self.containers, &self.base, name).map_err(ExecFailure::Target)?;
        let (stdio, session, master) = match streams {
            ExecStreams::Given(stdio) => (stdio, Session::New, None),
            ExecStreams::Terminal => {
                let pty = pty::open_in(target.pid)?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(ExecFailure::TerminalCopy);
                let (out, err) = (dup(&pty.slave)?, dup(&pty.slave)?);
                ([pty.slave, out, err], Session::Terminal, Some(pty.master))
            }
        };
        let pid = self.checks.exec(target, argv, stdio, session)?;
        Ok((pid, master))
    }

    /// Kills an exec of this sandbox (its caller went away); its reaping
    /// tells nobody.
    pub fn kill_exec(&self, pid: Pid) {
        if self.checks.execs.contains(&pid) {
            let _ = nix::sys::signal::kill(pid, NixSignal::SIGKILL);
        }
    }

    /// When the loop must next wake for a check's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.checks.next_deadline()
    }

    /// Kills the checks past their deadline.
    pub fn expire_checks(&mut self, now: Instant) {
        self.checks.expire(now);
    }

    /// Kills every check still running (the pod has finished).
    pub fn cancel_checks(&mut self) {
        self.checks.cancel();
    }

    /// Kills and reaps every check still running (the pod is ending).
    pub fn end_checks(&mut self) {
        self.checks.end();
    }

    /// Signals container `name`'s main process, if it runs (the signals of
    /// CRI's StopContainer: the kubelet half times them).
    pub fn kill_container(&self, name: &str, signal: NixSignal) -> bool {
        match self.containers.get(name).map(|c| &c.phase) {
            Some(Phase::Running(p)) => {
                crate::sys::pidfd::signal(Some(&p.pidfd), p.pid, signal);
                true
            }
            _ => false,
        }
    }

    /// StopPodSandbox: kills whatever is left in the pod's cgroup.
    pub fn stop(&self) -> Result<(), PodError> {
        Ok(self.base.made.cgroup.kill()?)
    }

    /// RemovePodSandbox: every process killed, every mount, namespace,
    /// volume and cgroup of the pod removed; its state and logs stay.
    pub fn remove(&mut self, sink: &mut dyn LogSink) -> Result<(), PodError> {
        let removed = sandbox_pod::teardown(&self.base.dirs, &self.base.made.cgroup);
        // What the pod wrote last is kept.
        for mut pipe in std::mem::take(&mut self.pipes) {
            pipe.pump(sink, logs::DRAIN_BUDGET);
        }
        removed
    }

    /// What the loop polls besides the signal pipes: each running
    /// container's pidfd, then each log pipe.
    pub fn fds(&self) -> (Vec<BorrowedFd<'_>>, Vec<BorrowedFd<'_>>) {
        let pidfds = self
            .containers
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Running(p) => Some(p.pidfd.as_fd()),
                _ => None,
            })
            .collect();
        (pidfds, self.pipes.iter().map(LogPipe::fd).collect())
    }

    /// Reads the log pipes poll found ready (`ready[i]` for pipe `i` of
    /// `fds`), at most a budget each, dropping those at their end.
    pub fn pump_logs(&mut self, ready: &[bool], sink: &mut dyn LogSink) {
        let mut eof = Vec::new();
        for (i, is_ready) in ready.iter().enumerate() {
            if *is_ready
                && let Some(pipe) = self.pipes.get_mut(i)
                && pipe.pump(sink, logs::PUMP_BUDGET)
            {
                eof.push(i);
            }
        }
        for i in eof.into_iter().rev() {
            self.pipes.remove(i);
        }
    }

    /// Reaps every child that has ended and says what it was: a
    /// container's main process (after every line it wrote), a check, an
    /// exec, the pod's PID namespace; an orphan the pod left is simply
    /// reaped.
    pub fn reap(&mut self, sink: &mut dyn LogSink) -> Vec<RuntimeEvent> {
        let mut out = Vec::new();
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return out,
                Ok(status) => status,
            };
            let (pid, exit) = match status {
                WaitStatus::Exited(pid, code) => (pid, ExitStatus::Code(code)),
                WaitStatus::Signaled(pid, sig, _) => (pid, ExitStatus::Signal(sig as i32)),
                _ => continue,
            };
            if let Some(i) = self.checks.execs.iter().position(|p| *p == pid) {
                self.checks.execs.remove(i);
                out.push(RuntimeEvent::ExecExited {
                    pid,
                    code: exit.code(),
                });
                continue;
            }
            if let Some(verdict) = self.checks.finished(pid, exit) {
                out.push(RuntimeEvent::CheckFinished { id: pid, verdict });
                continue;
            }
            if let Some(event) = self.container_ended(pid, exit, sink) {
                out.push(event);
                continue;
            }
            let shared_pid = &mut self.base.made.shared_pid;
            if shared_pid.as_ref().is_some_and(|p| p.init == pid) {
                *shared_pid = None;
                out.push(RuntimeEvent::PidNamespaceLost);
            }
        }
    }

    /// A container whose main process was `pid` has ended: its output is
    /// read to the end, its OOM kill told.
    fn container_ended(
        &mut self,
        pid: Pid,
        status: ExitStatus,
        sink: &mut dyn LogSink,
    ) -> Option<RuntimeEvent> {
        let (name, c) = self
            .containers
            .iter_mut()
            .find(|(_, c)| matches!(&c.phase, Phase::Running(p) if p.pid == pid))?;
        let Phase::Running(process) = std::mem::replace(&mut c.phase, Phase::Exited(status)) else {
            return None;
        };
        let oom_killed = c.cgroup.oom_kills().is_ok_and(|n| n > process.oom_base);
        let name = name.clone();
        // Every line written before the exit is logged before it.
        let mut eof = Vec::new();
        for (i, pipe) in self.pipes.iter_mut().enumerate() {
            if pipe.container == name && pipe.pump(sink, logs::DRAIN_BUDGET) {
                eof.push(i);
            }
        }
        for i in eof.into_iter().rev() {
            self.pipes.remove(i);
        }
        Some(RuntimeEvent::ContainerExited {
            name,
            status,
            oom_killed,
        })
    }
}
