//! The kubelet's TCP check (a connection that opens), and the dial the
//! HTTP and gRPC checks share: each address of the host in turn, the first
//! failure reported, as Go's dialer does.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, lookup_host};

use super::verdict::Verdict;
use super::wording::{self, DialError};

/// `host:port`, an IPv6 host in brackets (Go's net.JoinHostPort).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A connection to `host:port`.
pub async fn dial(host: &str, port: u16) -> Result<TcpStream, DialError> {
    let lookup = |reason: String| DialError::Lookup {
        host: host.to_owned(),
        reason,
    };
    let addrs = lookup_host((host, port))
        .await
        .map_err(|e| lookup(e.to_string()))?;
    let mut first = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => {
                first.get_or_insert(DialError::Connect {
                    addr: addr.to_string(),
                    reason: wording::syscall(&e),
                });
            }
        }
    }
    Err(first.unwrap_or_else(|| lookup("no such host".to_owned())))
}

/// The kubelet's TCP check: the connection opens within `timeout`.
pub async fn check(host: &str, port: u16, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, dial(host, port)).await {
        Ok(Ok(_)) => Verdict::Success(String::new()),
        Ok(Err(e)) => Verdict::Failure(e.to_string()),
        Err(_) => Verdict::Failure(
            DialError::Timeout {
                addr: join_host_port(host, port),
            }
            .to_string(),
        ),
    }
}

/// The first bytes a peer sent on a `Peeked` stream, readable while the
/// stream is someone else's (a TLS session's, an HTTP/2 connection's): how
/// Go tells a server that answered in plain HTTP, or one that has begun
/// speaking HTTP/2.
#[derive(Debug, Clone, Default)]
pub struct Head(Arc<Mutex<Vec<u8>>>);

impl Head {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// A TCP stream that keeps the first `want` bytes it reads in a `Head`.
#[derive(Debug)]
pub struct Peeked {
    tcp: TcpStream,
    head: Head,
    want: usize,
}

impl Peeked {
    /// `tcp`, keeping its first `want` bytes in `head`.
    pub fn new(tcp: TcpStream, want: usize, head: &Head) -> Peeked {
        Peeked {
            tcp,
            head: head.clone(),
            want,
        }
    }
}

impl AsyncRead for Peeked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Ok(mut head) = this.head.0.lock()
            && head.len() < this.want
        {
            let new = &buf.filled()[before..];
            let take = (this.want - head.len()).min(new.len());
            head.extend_from_slice(&new[..take]);
        }
        polled
    }
}

impl AsyncWrite for Peeked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::block_on;
    use std::net::TcpListener;

    #[test]
    fn a_listener_passes_and_nothing_listening_fails_as_go_says() {
        let t = Duration::from_secs(1);
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        assert_eq!(
            block_on(check("127.0.0.1", port, t)),
            Verdict::Success(String::new())
        );
        drop(open);
        assert_eq!(
            block_on(check("127.0.0.1", port, t)),
            Verdict::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn addresses_are_joined_as_go_joins_them() {
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("example.test", 443), "example.test:443");
    }
}
