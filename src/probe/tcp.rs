//! The kubelet's TCP check (a connection that opens), and the dial the
//! HTTP and gRPC checks share: each address of the host in turn, the first
//! failure reported, as Go's dialer does.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

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
