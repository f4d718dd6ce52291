//! The supervisor's side of the socket API (`crate::api`): a root-only
//! unix socket in the pod's run directory, served from the same loop, never
//! blocking it: connections are non-blocking, a request that is malformed,
//! too long or from a non-root peer gets an error reply and changes nothing.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use crate::api::{self, ApiError, Reply, Request};
use crate::lifecycle::Event;

use super::Supervisor;

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Events already sent to a watching connection, or None.
    watching: Option<usize>,
    closed: bool,
}

pub struct Server {
    listener: UnixListener,
    conns: Vec<Conn>,
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
        })
    }

    /// What the loop polls: the listener, then each connection.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.conns.iter().map(|c| c.stream.as_fd()))
            .collect()
    }
}

fn send(conn: &mut Conn, reply: &Reply) {
    if conn.stream.write_all(&reply.line()).is_err() {
        // A client that does not read its replies is dropped.
        conn.closed = true;
    }
}

impl Supervisor<'_> {
    /// Accepts, reads and answers whatever the socket has.
    pub(super) fn serve(&mut self) {
        let Some(server) = self.api.as_mut() else {
            return;
        };
        while let Ok((stream, _)) = server.listener.accept() {
            let root = getsockopt(&stream, PeerCredentials).is_ok_and(|c| c.uid() == 0);
            let mut conn = Conn {
                stream,
                buf: Vec::new(),
                watching: None,
                closed: false,
            };
            if !root {
                send(
                    &mut conn,
                    &Reply::error("permission denied: the API is root's"),
                );
                continue;
            }
            let _ = conn.stream.set_nonblocking(true);
            server.conns.push(conn);
        }
        let mut requests = Vec::new();
        for (i, conn) in server.conns.iter_mut().enumerate() {
            let mut chunk = [0u8; 4096];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => {
                        conn.closed = true;
                        break;
                    }
                    Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        conn.closed = true;
                        break;
                    }
                }
                if conn.buf.len() > api::MAX_REQUEST {
                    break;
                }
            }
            while let Some(nl) = conn.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = conn.buf.drain(..=nl).collect();
                requests.push((i, api::decode(&line[..line.len() - 1])));
            }
            if conn.buf.len() > api::MAX_REQUEST {
                conn.buf.clear();
                requests.push((i, Err(ApiError::TooLong)));
            }
        }
        for (i, request) in requests {
            let reply = match request {
                Ok(request) => self.answer(i, request),
                Err(e) => Reply::error(e.to_string()),
            };
            if let Some(conn) = self.api.as_mut().and_then(|s| s.conns.get_mut(i)) {
                send(conn, &reply);
            }
        }
        self.feed_watchers();
    }

    fn answer(&mut self, conn: usize, request: Request) -> Reply {
        match request {
            Request::Status { .. } => Reply {
                status: Some(self.status()),
                ..Reply::ok()
            },
            Request::Stop { grace_seconds, .. } => {
                if grace_seconds.is_some_and(|g| g < 0) {
                    return Reply::error("graceSeconds must not be negative");
                }
                self.pending
                    .push_back(Event::StopRequested { grace_seconds });
                Reply::ok()
            }
            Request::Events { watch, .. } => {
                let events = self.events.recorded().to_vec();
                if watch && let Some(c) = self.api.as_mut().and_then(|s| s.conns.get_mut(conn)) {
                    c.watching = Some(events.len());
                }
                Reply {
                    events: Some(events),
                    ..Reply::ok()
                }
            }
            Request::Apply { images, .. } => {
                let unknown: Vec<&String> = images
                    .keys()
                    .filter(|n| !self.launcher.pod.containers.iter().any(|c| c.name == **n))
                    .collect();
                if !unknown.is_empty() {
                    return Reply::error(format!("no container named {unknown:?} in this pod"));
                }
                for (container, image) in images {
                    self.pending
                        .push_back(Event::ImageChanged { container, image });
                }
                Reply::ok()
            }
        }
    }

    /// Sends watching connections the events recorded since, and drops
    /// closed connections.
    pub(super) fn feed_watchers(&mut self) {
        let recorded = self.events.recorded();
        let Some(server) = self.api.as_mut() else {
            return;
        };
        for conn in server.conns.iter_mut() {
            if let Some(sent) = conn.watching {
                for record in &recorded[sent.min(recorded.len())..] {
                    let reply = Reply {
                        event: Some(record.clone()),
                        ..Reply::ok()
                    };
                    send(conn, &reply);
                }
                conn.watching = Some(recorded.len());
            }
        }
        server.conns.retain(|c| !c.closed);
    }
}
