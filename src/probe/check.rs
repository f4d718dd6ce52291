//! Running one probe or hook check as a process of its own: an exec joins
//! the container's namespaces and cgroup and runs as the container does; an
//! HTTP(S) GET (`super::http_get`), a TCP connect (`super::tcp`) or a gRPC
//! health call (`super::grpc`) is made by a fork of the supervisor inside
//! the pod's network namespace, which reports its verdict as its exit code
//! and its message on a pipe. The supervisor reaps it, reads what it wrote
//! and kills it at its deadline.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::unistd::{ForkResult, Pid, fork, pipe2, read};

use super::Handler;
use super::http_get::{self, HttpGet};
use super::verdict::Verdict;
use super::{grpc, tcp};
use crate::api::runtime::ExitStatus;
use crate::container::spawn::{Command, Creds, Isolation, SpawnError, spawn};
use crate::sys::process::SigmaskGuard;

/// What kept a check from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot make a pipe: {0}")]
    Pipe(Errno),
    #[error("cannot duplicate a pipe: {0}")]
    Duplicate(std::io::Error),
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot fork a check: {0}")]
    Fork(Errno),
    #[error("cannot join the pod's network: {0}")]
    JoinNetwork(Errno),
    #[error("cannot start the check's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("not a network check")]
    NotNetwork,
}

/// An exec that did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl ExecError {
    /// The exit code a shell would give it (126 or 127).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Check(_) => 126,
            ExecError::Spawn(e) => e.exit_code(),
        }
    }
}

/// What runs a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A command in the container: its exit code is its result.
    Exec,
    /// A fork of the supervisor: its exit code is a `Verdict`'s.
    Network,
}

/// A check in progress.
#[derive(Debug)]
pub struct Running {
    pub pid: Pid,
    /// What it writes (its stdout and stderr, or its verdict's message),
    /// non-blocking.
    pub output: OwnedFd,
    pub kind: Kind,
}

/// The most of a check's output kept (the kubelet keeps 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// Reads what a finished check left in its pipe.
pub fn output(r: &Running) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < MAX_OUTPUT {
        match read(&r.output, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// What a finished check found, from how it exited and what it wrote: an
/// exec succeeds on exit code 0 and fails otherwise; a network check
/// exits with its verdict's code.
pub fn verdict(r: &Running, exit: ExitStatus) -> Verdict {
    let message = output(r);
    let code = match exit {
        ExitStatus::Code(code) => Some(code),
        ExitStatus::Signal(_) => None,
    };
    match r.kind {
        Kind::Exec if code == Some(0) => Verdict::Success(message),
        Kind::Exec => Verdict::Failure(message),
        Kind::Network => Verdict::of_exit_code(code, message),
    }
}

fn nonblocking_pipe() -> Result<(OwnedFd, OwnedFd), CheckError> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(CheckError::Pipe)?;
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(CheckError::Pipe)?;
    Ok((r, w))
}

fn open(path: &str) -> Result<OwnedFd, CheckError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| CheckError::Open {
            path: path.to_owned(),
            source,
        })
}

/// The session an exec'd process runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A session of its own, so no terminal's signals reach it.
    New,
    /// A session of its own whose controlling terminal is its stdin.
    Terminal,
}

/// How an exec check runs: as the container's main process does.
pub struct ExecAs<'a> {
    pub env: &'a [(String, String)],
    pub cwd: &'a str,
    pub creds: &'a Creds,
    pub caps: (u64, u8),
    pub no_new_privs: bool,
}

/// Runs `argv` inside the running container whose main process is `pid`
/// (its mount, PID, network, IPC and UTS namespaces) and in its cgroup.
pub fn exec_in(
    pid: u32,
    cgroup: &Path,
    argv: &[String],
    how: &ExecAs,
) -> Result<Running, ExecError> {
    let (r, w) = nonblocking_pipe()?;
    let err = w.try_clone().map_err(CheckError::Duplicate)?;
    let child = exec_with(
        pid,
        cgroup,
        argv,
        how,
        [open("/dev/null")?, w, err],
        Session::New,
    )?;
    Ok(Running {
        pid: child.pid,
        output: r,
        kind: Kind::Exec,
    })
}

/// Runs `argv` in the running container whose main process is `pid`, with
/// the given stdin, stdout and stderr (what `podrun exec` does).
pub fn exec_with(
    pid: u32,
    cgroup: &Path,
    argv: &[String],
    how: &ExecAs,
    stdio: [OwnedFd; 3],
    session: Session,
) -> Result<crate::container::spawn::Child, ExecError> {
    let root = format!("/proc/{pid}/root");
    let cmd = Command::new(argv, how.env, Some(how.cwd), Path::new(&root))?;
    // The mount namespace last: after it, paths are the container's.
    let join = [
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("mnt", libc::CLONE_NEWNS),
    ]
    .into_iter()
    .map(|(name, flag)| Ok((open(&format!("/proc/{pid}/ns/{name}"))?, flag)))
    .collect::<Result<Vec<_>, CheckError>>()?;
    let iso = Isolation {
        cgroup: Some(open(&cgroup.to_string_lossy())?),
        join,
        stdio: Some(stdio),
        creds: Some(how.creds.clone()),
        caps: Some(how.caps),
        no_new_privs: how.no_new_privs,
        new_session: true,
        controlling_tty: session == Session::Terminal,
        pid_namespace: Some(open(&format!("/proc/{pid}/ns/pid"))?),
        ..Isolation::default()
    };
    Ok(spawn(&cmd, &iso)?)
}

/// A network check from inside the network namespace at `net_ns` (the
/// host's when `None`): a fork that runs `check` and exits with its
/// verdict's code, its message written to the pipe.
pub fn network(
    net_ns: Option<&Path>,
    check: impl FnOnce() -> Verdict,
) -> Result<Running, CheckError> {
    let (r, w) = nonblocking_pipe()?;
    let ns = net_ns.map(|p| open(&p.to_string_lossy())).transpose()?;
    let supervisor = nix::unistd::getpid();
    // Blocked across the fork; the child keeps them blocked.
    let blocked = SigmaskGuard::block_all();
    // SAFETY: the supervisor is single-threaded, so the child may allocate;
    // it blocks every signal (the supervisor's handlers must not run in
    // it), does the check and _exits.
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => {
            std::mem::forget(blocked);
            // A check outliving a killed supervisor would keep the pod's
            // network namespace after `podrun down` (for up to its
            // timeout): it dies with the supervisor.
            // SAFETY: prctl with integer arguments; SIGKILL cannot be blocked.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            if nix::unistd::getppid() != supervisor {
                // SAFETY: _exit(2); the supervisor died before the prctl.
                unsafe { libc::_exit(1) }
            }
            drop(r);
            let joined = ns.is_none_or(|fd| {
                // SAFETY: setns(2) on a namespace descriptor.
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) == 0 }
            });
            let verdict = if joined {
                check()
            } else {
                Verdict::Failure(CheckError::JoinNetwork(Errno::last()).to_string())
            };
            let mut w = std::fs::File::from(w);
            let _ = w.write_all(verdict.message().as_bytes());
            // SAFETY: _exit(2) ends the child without running the
            // supervisor's exit handlers.
            unsafe { libc::_exit(verdict.exit_code()) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(blocked);
            Ok(Running {
                pid: child,
                output: r,
                kind: Kind::Network,
            })
        }
        Err(e) => Err(CheckError::Fork(e)),
    }
}

/// A network check of `handler` (a hook's when `hook`), as the kubelet
/// makes it, from the network namespace the caller is in, to `pod_ip`
/// when the handler names no host: each check keeps to `timeout` on its
/// own and says so in the kubelet's words.
pub fn run_network(handler: &Handler, hook: bool, timeout: Duration, pod_ip: &str) -> Verdict {
    let host_of = |h: &Option<String>| h.clone().unwrap_or_else(|| pod_ip.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return Verdict::Failure(CheckError::Runtime(e).to_string()),
    };
    let verdict = runtime.block_on(async {
        match handler {
            Handler::Http {
                tls,
                host,
                port,
                path,
                headers,
            } => {
                let host = host_of(host);
                let get = HttpGet {
                    tls: *tls,
                    host: &host,
                    port: *port,
                    path,
                    headers,
                };
                if hook {
                    http_get::hook(&get, timeout).await
                } else {
                    http_get::probe(&get, timeout).await
                }
            }
            Handler::Tcp { host: h, port } => tcp::check(&host_of(h), *port, timeout).await,
            Handler::Grpc {
                host: h,
                port,
                service,
            } => grpc::check(&host_of(h), *port, service, timeout).await,
            Handler::Exec(_) => Verdict::Failure(CheckError::NotNetwork.to_string()),
        }
    });
    // A name lookup may still hold a thread of the runtime's: the check
    // is over, so it is not waited for.
    runtime.shutdown_background();
    verdict
}
