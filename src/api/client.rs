//! The client side of the socket API, as the CLI uses it: a request out
//! with the descriptors it carries, replies in with theirs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use super::{MAX_REQUEST, Reply, SOCKET, wire};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the pod's supervisor: {0}")]
    Io(Errno),
    #[error("the pod's supervisor sent what is not a reply: {0}")]
    Decode(String),
}

pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Client {
    /// Connects to the socket in a pod's run directory.
    pub fn connect(run_dir: &Path) -> Result<Client, ClientError> {
        let path = run_dir.join(SOCKET);
        let stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            fds: Vec::new(),
        })
    }

    /// What to poll for replies. Poll it only when `has_reply` is false:
    /// one read may have taken several replies off the socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// A whole reply has been read already and waits in the buffer (the
    /// socket may have nothing more to say: a fast exec's exit code comes
    /// in the same read as its pid).
    pub fn has_reply(&self) -> bool {
        self.buf.contains(&b'\n')
    }

    /// Sends a request line with `fds` attached.
    pub fn send(
        &mut self,
        request: &serde_json::Value,
        fds: &[BorrowedFd],
    ) -> Result<(), ClientError> {
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        wire::send(self.stream.as_fd(), &line, fds).map_err(ClientError::Io)
    }

    /// The next reply and the descriptors that came with it; `None` when
    /// the supervisor closed the connection (the pod has ended).
    pub fn reply(&mut self) -> Result<Option<(Reply, Vec<OwnedFd>)>, ClientError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let reply = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                return Ok(Some((reply, std::mem::take(&mut self.fds))));
            }
            if self.buf.len() > MAX_REQUEST * 16 {
                return Err(ClientError::Decode(
                    "a reply line without an end".to_owned(),
                ));
            }
            let mut chunk = [0u8; 4096];
            let (n, fds) = match wire::receive(self.stream.as_fd(), &mut chunk, MsgFlags::empty()) {
                Ok(got) => got,
                // A supervisor that exits with the connection open resets it.
                Err(Errno::ECONNRESET) => return Ok(None),
                Err(e) => return Err(ClientError::Io(e)),
            };
            self.fds.extend(fds);
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a request and reads its reply; an error reply is an error.
    pub fn call(
        &mut self,
        request: &serde_json::Value,
        fds: &[BorrowedFd],
    ) -> Result<(Reply, Vec<OwnedFd>), CallError> {
        self.send(request, fds)?;
        match self.reply()? {
            Some((reply, fds)) if reply.ok => Ok((reply, fds)),
            Some((reply, _)) => Err(CallError::Refused {
                message: reply.error.unwrap_or_default(),
                exit_code: reply.exit_code,
            }),
            None => Err(CallError::Gone),
        }
    }
}

/// A request that did not get an ok reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The supervisor's error reply (with an exit code for an exec that
    /// could not start).
    #[error("{message}")]
    Refused {
        message: String,
        exit_code: Option<i32>,
    },
    #[error("the pod's supervisor closed the connection")]
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replies_read_together_are_all_kept() {
        // An exec's pid and exit code can leave the supervisor before the
        // client reads either: one read takes both, and the second must
        // not wait for a socket that has nothing more to say.
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs
            .write_all(b"{\"ok\":true,\"pid\":7}\n{\"ok\":true,\"exitCode\":3}\n")
            .unwrap();
        let mut client = Client {
            stream: ours,
            buf: Vec::new(),
            fds: Vec::new(),
        };
        let (first, _) = client.reply().unwrap().unwrap();
        assert_eq!(first.pid, Some(7));
        assert!(client.has_reply());
        let (second, _) = client.reply().unwrap().unwrap();
        assert_eq!(second.exit_code, Some(3));
        assert!(!client.has_reply());
    }
}
