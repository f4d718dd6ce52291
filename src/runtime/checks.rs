//! Checks and execs in a sandbox's containers: a probe's or hook's check
//! (an exec in the container, or a network check from the pod's network
//! namespace) runs as a process of its own, reaped by the loop and killed
//! once past its timeout (CRI's ExecSync timeout, which the runtime keeps
//! as containerd does); an exec for `podrun exec` runs with the caller's
//! streams until it ends.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal as NixSignal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::api::runtime::{ExitStatus, Handler};
use crate::container::config::Config;
use crate::probe::check::{
    self, CheckError as StartCheckError, ExecAs, ExecError, Running, Session,
};

pub use crate::probe::verdict::Verdict;

/// Why a check could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no container {0:?}")]
    NoContainer(String),
    #[error("the container is not running")]
    NotRunning,
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Start(#[from] StartCheckError),
}

/// How long past its timeout a network check may take to report that it
/// timed out before it is killed.
const NETWORK_CHECK_GRACE: Duration = Duration::from_millis(500);
/// How long a pod's end waits for its killed checks to be reaped.
const END_CHECKS_WAIT: Duration = Duration::from_secs(3);
/// A check with no timeout (a postStart hook) still ends some time.
const NO_TIMEOUT: Duration = Duration::from_secs(3600);

/// A check, by its process.
pub type CheckId = Pid;

/// A check in progress.
#[derive(Debug)]
pub(super) struct Check {
    running: Running,
    /// When it is killed if still running.
    deadline: Option<Instant>,
    timed_out: bool,
}

#[derive(Debug, Default)]
pub(super) struct Checks {
    running: HashMap<Pid, Check>,
    /// Execs (`podrun exec`) still running.
    pub execs: Vec<Pid>,
}

impl Checks {
    /// A reaped process that was a check: its verdict.
    pub fn finished(&mut self, pid: Pid, status: ExitStatus) -> Option<Verdict> {
        let c = self.running.remove(&pid)?;
        if c.timed_out {
            return Some(Verdict::Failure("command timed out".to_owned()));
        }
        Some(check::verdict(&c.running, status))
    }

    /// The earliest time a check is due to be killed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.running.values().filter_map(|c| c.deadline).min()
    }

    /// Kills the checks past their deadline; their reaping reports them.
    pub fn expire(&mut self, now: Instant) {
        for (pid, c) in self.running.iter_mut() {
            if c.deadline.is_some_and(|d| d <= now) && !c.timed_out {
                c.timed_out = true;
                c.deadline = None;
                let _ = kill(*pid, NixSignal::SIGKILL);
            }
        }
    }

    /// Kills the checks still running; their reaping tells nobody.
    pub fn cancel(&mut self) {
        for pid in self.running.keys() {
            let _ = kill(*pid, NixSignal::SIGKILL);
        }
    }

    /// Kills the checks still running and reaps them, as the pod ends:
    /// none outlives it (a network check holds the pod's network
    /// namespace). One stuck in the kernel is not waited for past a few
    /// seconds: exec checks die with the container's cgroup at teardown,
    /// anything else is reaped by init once the supervisor exits.
    pub fn end(&mut self) {
        self.cancel();
        let deadline = Instant::now() + END_CHECKS_WAIT;
        let mut left: Vec<Pid> = self.running.drain().map(|(pid, _)| pid).collect();
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
}

fn exec_as(process: &Config, last_cap: u8) -> ExecAs<'_> {
    ExecAs {
        env: &process.env,
        cwd: &process.cwd,
        creds: &process.creds,
        caps: (process.caps, last_cap),
        no_new_privs: process.no_new_privs,
    }
}

/// A running container, as a check or an exec runs in it.
pub(super) struct Target<'a> {
    /// Its main process.
    pub pid: u32,
    pub cgroup: &'a Path,
    /// How its processes run.
    pub process: &'a Config,
    pub last_cap: u8,
}

impl Target<'_> {
    fn exec_as(&self) -> ExecAs<'_> {
        exec_as(self.process, self.last_cap)
    }
}

impl Checks {
    /// A probe's or hook's check of `handler` (a hook's when `hook`), in
    /// `target` or from the network namespace at `net_ns`; its verdict
    /// comes from reaping. With no timeout it may run as long as the
    /// container.
    pub fn check(
        &mut self,
        target: Result<Target, CheckError>,
        net_ns: Option<&Path>,
        pod_ip: &str,
        handler: &Handler,
        hook: bool,
        timeout: Option<Duration>,
    ) -> Result<CheckId, CheckError> {
        let (running, grace) = match handler {
            Handler::Exec(argv) => {
                let t = target?;
                let running = check::exec_in(t.pid, t.cgroup, argv, &t.exec_as())?;
                (running, Duration::ZERO)
            }
            Handler::Http { .. } | Handler::Tcp { .. } | Handler::Grpc { .. } => {
                let own = timeout.unwrap_or(NO_TIMEOUT);
                let running =
                    check::network(net_ns, || check::run_network(handler, hook, own, pod_ip))?;
                // A network check keeps its own time and says it ran out
                // of it in the kubelet's words; killing it is only the
                // backstop, a little later, for one stuck past it.
                (running, NETWORK_CHECK_GRACE)
            }
        };
        let pid = running.pid;
        self.running.insert(
            pid,
            Check {
                running,
                deadline: timeout.map(|t| Instant::now() + t + grace),
                timed_out: false,
            },
        );
        Ok(pid)
    }

    /// Exec: `argv` in `target`, as the container runs, with the given
    /// standard streams; its end comes from reaping.
    pub fn exec(
        &mut self,
        target: Target,
        argv: &[String],
        stdio: [OwnedFd; 3],
        session: Session,
    ) -> Result<Pid, ExecError> {
        let mut how = target.exec_as();
        // As containerd's exec with a tty: the terminal is an xterm.
        let mut env = how.env.to_vec();
        if session == Session::Terminal {
            env.retain(|(k, _)| k != "TERM");
            env.push(("TERM".to_owned(), "xterm".to_owned()));
        }
        how.env = &env;
        let child = check::exec_with(target.pid, target.cgroup, argv, &how, stdio, session)?;
        self.execs.push(child.pid);
        Ok(child.pid)
    }
}
