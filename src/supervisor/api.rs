//! The supervisor's side of the socket API (`crate::api`): a root-only
//! unix socket in the pod's run directory, served from the same loop, never
//! blocking it: connections are non-blocking, a request that is malformed,
//! too long or from a non-root peer gets an error reply and changes nothing.
//! Descriptors travel with requests and replies (`SCM_RIGHTS`): an exec's
//! standard streams in, a log file or an exec's terminal out, so the
//! supervisor never copies a byte of them.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{MsgFlags, getsockopt, sockopt::PeerCredentials};
use nix::unistd::Pid;

use crate::api::{self, ApiError, LogInfo, Reply, Request, wire};
use crate::lifecycle::Event;
use crate::runtime::ExecStreams;

use super::Supervisor;

struct Conn {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    /// Descriptors received and not yet taken by a request.
    fds: Vec<OwnedFd>,
    /// Events already sent to a watching connection, or None.
    watching: Option<usize>,
    /// The container run whose log this connection follows.
    following: Option<(String, u32)>,
    /// The exec this connection started and waits for.
    exec: Option<Pid>,
    closed: bool,
}

pub struct Server {
    listener: UnixListener,
    conns: Vec<Conn>,
    next_id: u64,
    /// Running execs, by pid, with the connection waiting for each.
    execs: HashMap<Pid, u64>,
}

impl Server {
    pub fn bind(run_dir: &Path) -> std::io::Result<Server> {
        let path = run_dir.join(api::SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            conns: Vec::new(),
            next_id: 0,
            execs: HashMap::new(),
        })
    }

    /// What the loop polls: the listener, then each connection.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.conns.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    fn conn(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// The connection waiting for the exec `pid`, if that was one.
    pub fn exec_ended(&mut self, pid: Pid) -> Option<u64> {
        self.execs.remove(&pid)
    }
}

/// Sends a reply line with `fd` attached, if any.
fn send(conn: &mut Conn, reply: &Reply, fd: Option<BorrowedFd>) {
    let fds: Vec<BorrowedFd> = fd.into_iter().collect();
    if wire::send(conn.stream.as_fd(), &reply.line(), &fds).is_err() {
        // A client that does not read its replies is dropped.
        conn.closed = true;
    }
}

/// Reads what a connection has, keeping the descriptors that came with it;
/// the connection is marked closed at its end.
fn receive(conn: &mut Conn) {
    let mut chunk = [0u8; 4096];
    loop {
        let n = match wire::receive(conn.stream.as_fd(), &mut chunk, MsgFlags::MSG_DONTWAIT) {
            Ok((n, fds)) => {
                // More than a request may use are closed.
                let room = api::MAX_FDS.saturating_sub(conn.fds.len());
                conn.fds.extend(fds.into_iter().take(room));
                n
            }
            Err(Errno::EAGAIN) => break,
            Err(_) => {
                conn.closed = true;
                break;
            }
        };
        if n == 0 {
            conn.closed = true;
            break;
        }
        conn.buf.extend_from_slice(&chunk[..n]);
        if conn.buf.len() > api::MAX_REQUEST {
            break;
        }
    }
}

/// A reply and the descriptor that goes with it.
type Answer = (Reply, Option<OwnedFd>);

fn refuse(message: impl Into<String>) -> Answer {
    (Reply::error(message), None)
}

impl Supervisor<'_> {
    /// Accepts, reads and answers whatever the socket has.
    pub(super) fn serve(&mut self) {
        let Some(server) = self.api.as_mut() else {
            return;
        };
        while let Ok((stream, _)) = server.listener.accept() {
            let root = getsockopt(&stream, PeerCredentials).is_ok_and(|c| c.uid() == 0);
            server.next_id += 1;
            let mut conn = Conn {
                id: server.next_id,
                stream,
                buf: Vec::new(),
                fds: Vec::new(),
                watching: None,
                following: None,
                exec: None,
                closed: false,
            };
            if !root {
                send(
                    &mut conn,
                    &Reply::error("permission denied: the API is root's"),
                    None,
                );
                continue;
            }
            let _ = conn.stream.set_nonblocking(true);
            server.conns.push(conn);
        }
        let mut requests = Vec::new();
        for conn in server.conns.iter_mut() {
            receive(conn);
            while let Some(nl) = conn.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = conn.buf.drain(..=nl).collect();
                // The descriptors sent with a request are its own.
                let fds = std::mem::take(&mut conn.fds);
                requests.push((conn.id, api::decode(&line[..line.len() - 1]), fds));
            }
            if conn.buf.len() > api::MAX_REQUEST {
                conn.buf.clear();
                conn.fds.clear();
                requests.push((conn.id, Err(ApiError::TooLong), Vec::new()));
            }
        }
        for (id, request, fds) in requests {
            let (reply, fd) = match request {
                Ok(request) => self.answer(id, request, fds),
                Err(e) => refuse(e.to_string()),
            };
            if let Some(conn) = self.api.as_mut().and_then(|s| s.conn(id)) {
                send(conn, &reply, fd.as_ref().map(|f| f.as_fd()));
            }
        }
        self.feed_watchers();
    }

    fn answer(&mut self, conn: u64, request: Request, fds: Vec<OwnedFd>) -> Answer {
        if !fds.is_empty() && !matches!(request, Request::Exec { tty: false, .. }) {
            return refuse("only an exec without a tty takes descriptors");
        }
        let reply = match request {
            Request::Status { .. } => Reply {
                status: Some(self.driver.status()),
                ..Reply::ok()
            },
            Request::Stop { grace_seconds, .. } => {
                if grace_seconds.is_some_and(|g| g < 0) {
                    return refuse("graceSeconds must not be negative");
                }
                self.driver.push(Event::StopRequested { grace_seconds });
                Reply::ok()
            }
            Request::Events { watch, .. } => {
                let events: Vec<_> = self.driver.events().since(0).cloned().collect();
                let total = self.driver.events().total();
                if watch && let Some(c) = self.api.as_mut().and_then(|s| s.conn(conn)) {
                    c.watching = Some(total);
                }
                Reply {
                    events: Some(events),
                    ..Reply::ok()
                }
            }
            Request::Apply { images, .. } => {
                let plan = self.driver.node.plan();
                let unknown: Vec<&String> = images
                    .keys()
                    .filter(|n| plan.container(n).is_none())
                    .collect();
                if !unknown.is_empty() {
                    return refuse(format!("no container named {unknown:?} in this pod"));
                }
                // A `rootfs:` image must be a root podrun runs (as `up`
                // checks it): otherwise nothing changes. Any other is got
                // (pulled as its policy says) when the container restarts.
                let missing: Vec<String> = images
                    .iter()
                    .filter_map(|(container, image)| {
                        super::images::refusal(image)
                            .map(|r| format!("container {container:?}: {r}"))
                    })
                    .collect();
                if !missing.is_empty() {
                    return refuse(missing.join("; "));
                }
                for (container, image) in images {
                    self.state.set_image(&container, &image);
                    self.driver.push(Event::ImageChanged { container, image });
                }
                Reply::ok()
            }
            Request::Logs {
                container,
                previous,
                follow,
                ..
            } => return self.logs(conn, container.as_deref(), previous, follow),
            Request::Exec {
                container,
                command,
                tty,
                ..
            } => return self.exec(conn, container.as_deref(), &command, tty, fds),
        };
        (reply, None)
    }

    fn logs(&mut self, conn: u64, container: Option<&str>, previous: bool, follow: bool) -> Answer {
        let target = match self.state.log_target(container, previous) {
            Ok(t) => t,
            Err(e) => return refuse(e.to_string()),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&target.path);
        let file = match file {
            Ok(f) => f,
            Err(e) => return refuse(format!("{}: {e}", target.path.display())),
        };
        let following = follow && target.running;
        if following && let Some(c) = self.api.as_mut().and_then(|s| s.conn(conn)) {
            c.following = Some((target.container.clone(), target.restart_count));
        }
        let reply = Reply {
            log: Some(LogInfo {
                container: target.container,
                restart_count: target.restart_count,
            }),
            // Nothing more will come: the client reads to the end and stops.
            ended: (follow && !following).then_some(true),
            ..Reply::ok()
        };
        (reply, Some(file.into()))
    }

    fn exec(
        &mut self,
        conn: u64,
        container: Option<&str>,
        command: &[String],
        tty: bool,
        fds: Vec<OwnedFd>,
    ) -> Answer {
        if command.is_empty() {
            return refuse("exec needs a command");
        }
        let (name, _) = match self.state.exec_target(container) {
            Ok(target) => target,
            Err(e) => return refuse(e.to_string()),
        };
        let streams = if tty {
            ExecStreams::Terminal
        } else {
            match <[OwnedFd; 3]>::try_from(fds) {
                Ok(stdio) => ExecStreams::Given(stdio),
                Err(fds) => {
                    return refuse(format!(
                        "an exec without a tty takes three descriptors (stdin, stdout, stderr), not {}",
                        fds.len()
                    ));
                }
            }
        };
        match self.driver.node.sandbox.exec(&name, command, streams) {
            Ok((child, terminal)) => {
                if let Some(server) = self.api.as_mut() {
                    server.execs.insert(child, conn);
                    if let Some(c) = server.conn(conn) {
                        c.exec = Some(child);
                    }
                }
                let reply = Reply {
                    pid: Some(child.as_raw() as u32),
                    ..Reply::ok()
                };
                (reply, terminal)
            }
            Err(e) => match e.exit_code() {
                Some(code) => {
                    let reply = Reply {
                        exit_code: Some(code),
                        ..Reply::error(format!("exec in {name}: {e}"))
                    };
                    (reply, None)
                }
                None => refuse(e.to_string()),
            },
        }
    }

    /// An exec ended: its connection hears how.
    pub(super) fn exec_exited(&mut self, conn: u64, exit_code: i32) {
        if let Some(c) = self.api.as_mut().and_then(|s| s.conn(conn)) {
            c.exec = None;
            let reply = Reply {
                exit_code: Some(exit_code),
                ..Reply::ok()
            };
            send(c, &reply, None);
        }
    }

    /// A container run ended (its output drained): whoever follows its
    /// log hears so.
    pub(super) fn log_ended(&mut self, container: &str) {
        let Some(server) = self.api.as_mut() else {
            return;
        };
        for c in server.conns.iter_mut() {
            if c.following
                .as_ref()
                .is_some_and(|(name, _)| name == container)
            {
                c.following = None;
                let reply = Reply {
                    ended: Some(true),
                    ..Reply::ok()
                };
                send(c, &reply, None);
            }
        }
    }

    /// Sends watching connections the events recorded since, and drops
    /// closed connections; an exec whose client went away is killed.
    pub(super) fn feed_watchers(&mut self) {
        let Some(server) = self.api.as_mut() else {
            return;
        };
        let events = self.driver.events();
        let total = events.total();
        for conn in server.conns.iter_mut() {
            if let Some(sent) = conn.watching {
                for record in events.since(sent) {
                    let reply = Reply {
                        event: Some(record.clone()),
                        ..Reply::ok()
                    };
                    send(conn, &reply, None);
                }
                conn.watching = Some(total);
            }
        }
        for conn in server.conns.iter().filter(|c| c.closed) {
            if let Some(pid) = conn.exec {
                self.driver.node.sandbox.kill_exec(pid);
            }
        }
        server.conns.retain(|c| !c.closed);
    }
}
