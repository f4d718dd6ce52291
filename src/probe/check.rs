//! Running one probe or hook check as a process of its own: an exec joins
//! the container's namespaces and cgroup and runs as the container does; an
//! HTTP GET or TCP connect is made by a fork of the supervisor inside the
//! pod's network namespace. The supervisor reaps it, reads what it wrote
//! and kills it at its deadline.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::unistd::{ForkResult, Pid, fork, pipe2, read};

use crate::container::spawn::{Command, Creds, Isolation, SigmaskGuard, SpawnError, spawn};

/// An exec that did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Its descriptors or configuration could not be had.
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl ExecError {
    /// The exit code a shell would give it (126 or 127).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Setup(_) => 126,
            ExecError::Spawn(e) => e.exit_code(),
        }
    }
}

impl From<String> for ExecError {
    fn from(message: String) -> ExecError {
        ExecError::Setup(message)
    }
}

/// A check in progress.
#[derive(Debug)]
pub struct Running {
    pub pid: Pid,
    /// What it writes (its stdout and stderr), non-blocking.
    pub output: OwnedFd,
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

fn nonblocking_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot make a pipe: {e}"))?;
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| format!("pipe: {e}"))?;
    Ok((r, w))
}

fn open(path: &str) -> Result<OwnedFd, String> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| format!("{path}: {e}"))
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
pub fn exec_in(pid: u32, cgroup: &Path, argv: &[String], how: &ExecAs) -> Result<Running, String> {
    let (r, w) = nonblocking_pipe()?;
    let err = w.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let child = exec_with(
        pid,
        cgroup,
        argv,
        how,
        [open("/dev/null")?, w, err],
        Session::New,
    )
    .map_err(|e| e.to_string())?;
    Ok(Running {
        pid: child.pid,
        output: r,
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
    .collect::<Result<Vec<_>, String>>()?;
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
/// host's when `None`): a fork that connects and exits 0 on success.
pub fn network(
    net_ns: Option<&Path>,
    check: impl FnOnce() -> Result<String, String>,
) -> Result<Running, String> {
    let (r, w) = nonblocking_pipe()?;
    let ns = net_ns.map(|p| open(&p.to_string_lossy())).transpose()?;
    // Blocked across the fork; the child keeps them blocked.
    let blocked = SigmaskGuard::block_all();
    // SAFETY: the supervisor is single-threaded, so the child may allocate;
    // it blocks every signal (the supervisor's handlers must not run in
    // it), does the check and _exits.
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => {
            std::mem::forget(blocked);
            drop(r);
            let joined = ns.is_none_or(|fd| {
                // SAFETY: setns(2) on a namespace descriptor.
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) == 0 }
            });
            let result = if joined {
                check()
            } else {
                Err(format!("cannot join the pod's network: {}", Errno::last()))
            };
            let (code, message) = match result {
                Ok(m) => (0, m),
                Err(m) => (1, m),
            };
            let mut w = std::fs::File::from(w);
            let _ = w.write_all(message.as_bytes());
            // SAFETY: _exit(2) ends the child without running the
            // supervisor's exit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(blocked);
            Ok(Running {
                pid: child,
                output: r,
            })
        }
        Err(e) => Err(format!("cannot fork a check: {e}")),
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?
        .collect();
    let mut last = format!("dial tcp {host}:{port}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("dial tcp {addr}: {e}"),
        }
    }
    Err(last)
}

/// The kubelet's TCP check: the connection opens.
pub fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    connect(host, port, timeout).map(|_| String::new())
}

/// The kubelet's HTTP check: a GET answered with a status in 200..=399.
pub fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<String, String> {
    let url = format!("http://{host}:{port}{path}");
    let deadline = Instant::now() + timeout;
    let fail = |what: String| format!("Get {url:?}: {what}");
    let mut stream = connect(host, port, timeout).map_err(fail)?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let _ = stream.set_write_timeout(Some(left()));
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.37\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < MAX_OUTPUT {
        let _ = stream.set_read_timeout(Some(left()));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| fail("malformed HTTP response".to_owned()))?;
    if (200..400).contains(&code) {
        Ok(format!("HTTP probe succeeded with statuscode: {code}"))
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(status: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        port
    }

    #[test]
    fn http_status_decides() {
        let t = Duration::from_secs(2);
        let ok = serve("204 No Content");
        assert_eq!(
            http_get("127.0.0.1", ok, "/", &[], t).unwrap(),
            "HTTP probe succeeded with statuscode: 204"
        );
        let bad = serve("503 Service Unavailable");
        assert_eq!(
            http_get("127.0.0.1", bad, "/healthz", &[], t).unwrap_err(),
            "HTTP probe failed with statuscode: 503"
        );
    }

    #[test]
    fn nothing_listening_fails_both_checks() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Duration::from_secs(1);
        assert!(
            tcp_connect("127.0.0.1", port, t)
                .unwrap_err()
                .starts_with("dial tcp 127.0.0.1:")
        );
        assert!(
            http_get("127.0.0.1", port, "/", &[], t)
                .unwrap_err()
                .starts_with(&format!("Get \"http://127.0.0.1:{port}/\": dial tcp"))
        );
        assert_eq!(tcp_connect("127.0.0.1", serve("200 OK"), t).unwrap(), "");
    }
}
