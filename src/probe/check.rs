//! Running one probe or hook check as a process of its own: an exec joins
//! the container's namespaces and cgroup and runs as the container does; an
//! HTTP(S) GET, a TCP connect or a gRPC health call (`super::grpc`) is made
//! by a fork of the supervisor inside the pod's network namespace, which
//! reports its verdict as its exit code and its message on a pipe. The
//! supervisor reaps it, reads what it wrote and kills it at its deadline.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::unistd::{ForkResult, Pid, fork, pipe2, read};

use super::Handler;
use super::verdict::Verdict;
use crate::container::spawn::{Command, Creds, Isolation, SigmaskGuard, SpawnError, spawn};
use crate::lifecycle::ExitStatus;

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
    #[error("not a network check")]
    NotNetwork,
}

/// An exec that did not start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The caller's setup failed (its message).
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

impl ExecError {
    /// The exit code a shell would give it (126 or 127).
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Setup(_) | ExecError::Check(_) => 126,
            ExecError::Spawn(e) => e.exit_code(),
        }
    }
}

impl From<String> for ExecError {
    fn from(message: String) -> ExecError {
        ExecError::Setup(message)
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

/// The kubelet's version as its probes give it in their User-Agent.
pub const KUBE_VERSION: &str = "1.37";

/// An HTTP GET as the kubelet makes it for a probe or a hook.
#[derive(Debug, Clone, Copy)]
pub struct HttpGet<'a> {
    /// HTTPS: TLS without certificate verification, as the kubelet.
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
}

/// What a GET is for, in its default User-Agent (`kube-<purpose>/<version>`).
const PROBE: &str = "probe";
const HOOK: &str = "lifecycle";

impl HttpGet<'_> {
    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }

    /// The request's head: the user's headers, with the kubelet's
    /// User-Agent and Accept unless they set their own (an empty Accept
    /// removes it), and their Host, if any, as the only Host.
    fn request(&self, purpose: &str) -> String {
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let host = self
            .headers
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case("host") && !v.is_empty())
            .map_or_else(
                || format!("{}:{}", self.host, self.port),
                |(_, v)| v.clone(),
            );
        let mut request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", self.path);
        if !has("user-agent") {
            request.push_str(&format!("User-Agent: kube-{purpose}/{KUBE_VERSION}\r\n"));
        }
        if !has("accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (name, value) in self.headers {
            let dropped = name.eq_ignore_ascii_case("host")
                || (name.eq_ignore_ascii_case("accept") && value.is_empty());
            if !dropped {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        request.push_str("Connection: close\r\n\r\n");
        request
    }
}

/// A read or write that ran past the socket's timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Why an HTTP GET got no status, in Go's words where the kubelet's
/// client has them.
#[derive(Debug, thiserror::Error)]
enum GetError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Tls(super::tls::TlsError),
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    Timeout,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("malformed HTTP response")]
    Malformed,
}

impl From<std::io::Error> for GetError {
    fn from(e: std::io::Error) -> GetError {
        if is_timeout(&e) {
            GetError::Timeout
        } else {
            GetError::Io(e)
        }
    }
}

impl From<super::tls::TlsError> for GetError {
    fn from(e: super::tls::TlsError) -> GetError {
        match e {
            super::tls::TlsError::Handshake(io) if is_timeout(&io) => GetError::Timeout,
            other => GetError::Tls(other),
        }
    }
}

/// Sends the GET (for `purpose`) and reads the status line of its answer,
/// all before `deadline`.
fn status(get: &HttpGet, deadline: Instant, purpose: &str) -> Result<u16, GetError> {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let tcp = connect(get.host, get.port, left()).map_err(GetError::Connect)?;
    // A second handle on the socket, to set its timeouts under TLS.
    let socket = tcp.try_clone()?;
    let _ = socket.set_write_timeout(Some(left()));
    let _ = socket.set_read_timeout(Some(left()));
    let mut stream: Box<dyn ReadWrite> = if get.tls {
        Box::new(super::tls::connect(tcp, get.host)?)
    } else {
        Box::new(tcp)
    };
    let _ = socket.set_write_timeout(Some(left()));
    stream.write_all(get.request(purpose).as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < MAX_OUTPUT {
        let _ = socket.set_read_timeout(Some(left()));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(GetError::Malformed)
}

fn judge(get: &HttpGet, status: Result<u16, GetError>) -> Result<String, String> {
    match status {
        Ok(code) if (200..400).contains(&code) => {
            Ok(format!("HTTP probe succeeded with statuscode: {code}"))
        }
        Ok(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Err(format!("Get {:?}: {e}", get.url())),
    }
}

/// The kubelet's HTTP check: a GET answered with a status in 200..=399.
/// Redirects are not followed: a 3xx is a success, as the kubelet's
/// result for a redirect it does not follow.
pub fn http_get(get: &HttpGet, timeout: Duration) -> Result<String, String> {
    judge(get, status(get, Instant::now() + timeout, PROBE))
}

/// The kubelet's HTTP hook: an HTTPS request that a plain HTTP server
/// answered is made again over HTTP, without its Authorization header (its
/// fallback for hooks written when it ignored the scheme).
pub fn http_hook(get: &HttpGet, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    match status(get, deadline, HOOK) {
        Err(GetError::Tls(super::tls::TlsError::PlainHttp)) => {
            let headers: Vec<_> = get
                .headers
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
                .cloned()
                .collect();
            let plain = HttpGet {
                tls: false,
                headers: &headers,
                ..*get
            };
            judge(&plain, status(&plain, deadline, HOOK))
        }
        other => judge(get, other),
    }
}

/// A network check of `handler` (a hook's when `hook`), as the kubelet
/// makes it, from the network namespace the caller is in.
pub fn run_network(handler: &Handler, hook: bool, timeout: Duration) -> Verdict {
    let result = match handler {
        Handler::Http {
            tls,
            host,
            port,
            path,
            headers,
        } => {
            let get = HttpGet {
                tls: *tls,
                host,
                port: *port,
                path,
                headers,
            };
            if hook {
                http_hook(&get, timeout)
            } else {
                http_get(&get, timeout)
            }
        }
        Handler::Tcp { host, port } => tcp_connect(host, *port, timeout),
        Handler::Grpc {
            host,
            port,
            service,
        } => super::grpc::health(host, *port, service, timeout),
        Handler::Exec(_) | Handler::Sleep { .. } => Err(CheckError::NotNetwork.to_string()),
    };
    match result {
        Ok(message) => Verdict::Success(message),
        Err(message) => Verdict::Failure(message),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A server answering one request with `status`; it sends the
    /// request's head on the channel.
    fn serve(status: &'static str) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
                let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
            }
        });
        (port, rx)
    }

    fn get<'a>(port: u16, path: &'a str, headers: &'a [(String, String)]) -> HttpGet<'a> {
        HttpGet {
            tls: false,
            host: "127.0.0.1",
            port,
            path,
            headers,
        }
    }

    #[test]
    fn http_status_decides() {
        let t = Duration::from_secs(2);
        let (ok, _) = serve("204 No Content");
        assert_eq!(
            http_get(&get(ok, "/", &[]), t).unwrap(),
            "HTTP probe succeeded with statuscode: 204"
        );
        let (bad, _) = serve("503 Service Unavailable");
        assert_eq!(
            http_get(&get(bad, "/healthz", &[]), t).unwrap_err(),
            "HTTP probe failed with statuscode: 503"
        );
    }

    #[test]
    fn the_request_carries_the_kubelets_headers_unless_the_user_sets_them() {
        let t = Duration::from_secs(2);
        let (port, rx) = serve("200 OK");
        http_get(&get(port, "/a", &[]), t).unwrap();
        let head = rx.recv().unwrap();
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "GET /a HTTP/1.1",
                &format!("Host: 127.0.0.1:{port}"),
                "User-Agent: kube-probe/1.37",
                "Accept: */*",
                "Connection: close",
            ]
        );

        let own = [
            ("host".to_owned(), "example.test".to_owned()),
            ("User-Agent".to_owned(), "mine".to_owned()),
            ("Accept".to_owned(), String::new()),
            ("X-A".to_owned(), "b".to_owned()),
        ];
        let (port, rx) = serve("200 OK");
        http_get(&get(port, "/", &own), t).unwrap();
        let head = rx.recv().unwrap();
        let lines: Vec<&str> = head.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "GET / HTTP/1.1",
                "Host: example.test",
                "User-Agent: mine",
                "X-A: b",
                "Connection: close",
            ]
        );

        let (port, rx) = serve("200 OK");
        http_hook(&get(port, "/", &[]), t).unwrap();
        assert!(
            rx.recv()
                .unwrap()
                .contains("\r\nUser-Agent: kube-lifecycle/1.37\r\n")
        );
    }

    #[test]
    fn a_server_that_does_not_answer_times_out_as_gos_client_says() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = http_get(&get(port, "/", &[]), Duration::from_millis(300)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )
        );
        drop(listener);
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
            http_get(&get(port, "/", &[]), t)
                .unwrap_err()
                .starts_with(&format!("Get \"http://127.0.0.1:{port}/\": dial tcp"))
        );
        let (open, _) = serve("200 OK");
        assert_eq!(tcp_connect("127.0.0.1", open, t).unwrap(), "");
    }
}
