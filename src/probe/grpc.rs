//! The kubelet's gRPC probe: a grpc.health.v1.Health/Check call over
//! plaintext HTTP/2 (prior knowledge), a success only when the answer is
//! SERVING, and its failures worded as the kubelet words them.
//!
//! It runs in a check process of its own (`check::network`), which may
//! block: a current-thread tokio runtime drives the h2 client there and is
//! gone with the process. The two protobuf messages are one field each, so
//! they are written and read here by hand.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wording::KUBE_VERSION;

const PATH: &str = "/grpc.health.v1.Health/Check";

/// The largest answer read; a health answer is a few bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// HealthCheckResponse.ServingStatus.SERVING.
const SERVING: i32 = 1;

/// A gRPC status: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    code: u32,
    message: String,
}

impl Status {
    fn new(code: u32, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }
}

const CANCELED: u32 = 1;
const UNKNOWN: u32 = 2;
const DEADLINE_EXCEEDED: u32 = 4;
const PERMISSION_DENIED: u32 = 7;
const RESOURCE_EXHAUSTED: u32 = 8;
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;
const UNAUTHENTICATED: u32 = 16;

/// A code's name as grpc-go prints it.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// A serving status's name as the generated Go code prints it.
fn serving_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".to_owned(),
        1 => "SERVING".to_owned(),
        2 => "NOT_SERVING".to_owned(),
        3 => "SERVICE_UNKNOWN".to_owned(),
        other => other.to_string(),
    }
}

/// A duration as Go's `%v` prints it ("1s", "1m30s", "1.5s", "500ms").
struct GoDuration(Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A whole number and its fraction, the fraction's zeros trimmed.
        let number = |f: &mut fmt::Formatter<'_>, whole: u128, frac: u128, width: usize| {
            let frac = format!("{frac:0width$}");
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                write!(f, "{whole}")
            } else {
                write!(f, "{whole}.{frac}")
            }
        };
        let n = self.0.as_nanos();
        match n {
            0 => f.write_str("0s"),
            1..1_000 => write!(f, "{n}ns"),
            1_000..1_000_000 => {
                number(f, n / 1_000, n % 1_000, 3)?;
                f.write_str("µs")
            }
            1_000_000..1_000_000_000 => {
                number(f, n / 1_000_000, n % 1_000_000, 6)?;
                f.write_str("ms")
            }
            _ => {
                let secs = n / 1_000_000_000;
                let (h, m) = (secs / 3600, secs / 60 % 60);
                if h > 0 {
                    write!(f, "{h}h")?;
                }
                if h > 0 || m > 0 {
                    write!(f, "{m}m")?;
                }
                number(f, secs % 60, n % 1_000_000_000, 9)?;
                f.write_str("s")
            }
        }
    }
}

/// A failed gRPC probe, in the kubelet's words.
#[derive(Debug, thiserror::Error)]
enum GrpcError {
    #[error(
        "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
        GoDuration(*.timeout)
    )]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("error: failed to connect service at {addr:?}: {reason}")]
    Connect { addr: String, reason: String },
    #[error(
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {0}"
    )]
    Unimplemented(String),
    #[error("timeout: health rpc did not complete within {}", GoDuration(*.0))]
    RpcTimeout(Duration),
    #[error("error: health rpc probe failed: rpc error: code = {} desc = {}", code_name(.0.code), .0.message)]
    Rpc(Status),
    #[error("service unhealthy (responded with {:?})", serving_name(*.0))]
    Unhealthy(i32),
}

impl GrpcError {
    fn of_status(s: Status, timeout: Duration) -> GrpcError {
        match s.code {
            UNIMPLEMENTED => GrpcError::Unimplemented(s.message),
            DEADLINE_EXCEEDED => GrpcError::RpcTimeout(timeout),
            _ => GrpcError::Rpc(s),
        }
    }
}

/// The kubelet's gRPC check of `service` ("" for the whole server) at
/// `host:port`, within `timeout`.
pub fn health(host: &str, port: u16, service: &str, timeout: Duration) -> Result<String, String> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let connect_error = |reason: String| GrpcError::Connect {
        addr: addr.clone(),
        reason,
    };
    let result = (host, port)
        .to_socket_addrs()
        .map_err(|e| connect_error(e.to_string()))
        .and_then(|addrs| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| connect_error(e.to_string()))?;
            let call = Call {
                addrs: addrs.collect(),
                authority: addr.clone(),
                service,
                timeout,
            };
            runtime.block_on(call.run())
        });
    result
        .map(|()| "service healthy".to_owned())
        .map_err(|e| e.to_string())
}

struct Call<'a> {
    addrs: Vec<SocketAddr>,
    authority: String,
    service: &'a str,
    timeout: Duration,
}

/// How one connection's attempt ended short of an answer.
enum Failure {
    /// The server never spoke HTTP/2 (grpc-go's connection is not READY
    /// until the server's SETTINGS): try again.
    NotReady,
    Status(Status),
}

impl Call<'_> {
    /// As grpc-go's blocking dial: connect, and connect again after a
    /// backoff (1 s, then 1.6 times longer each time) until the server
    /// speaks HTTP/2 or the time is up; then the call.
    async fn run(&self) -> Result<(), GrpcError> {
        let deadline = Instant::now() + self.timeout;
        let connect_timeout = || GrpcError::ConnectTimeout {
            addr: self.authority.clone(),
            timeout: self.timeout,
        };
        let mut backoff = Duration::from_secs(1);
        loop {
            let ready = Arc::new(AtomicBool::new(false));
            let attempt =
                tokio::time::timeout_at(deadline, self.attempt(deadline, ready.clone())).await;
            match attempt {
                Err(_) if ready.load(Ordering::Relaxed) => {
                    return Err(GrpcError::RpcTimeout(self.timeout));
                }
                Err(_) => return Err(connect_timeout()),
                Ok(Ok(SERVING)) => return Ok(()),
                Ok(Ok(status)) => return Err(GrpcError::Unhealthy(status)),
                Ok(Err(Failure::Status(s))) => return Err(GrpcError::of_status(s, self.timeout)),
                Ok(Err(Failure::NotReady)) => {}
            }
            let next = Instant::now() + backoff;
            if next >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(connect_timeout());
            }
            tokio::time::sleep_until(next).await;
            backoff = backoff.mul_f64(1.6).min(Duration::from_secs(120));
        }
    }

    /// One connection and, once it is up, the call: the serving status
    /// answered.
    async fn attempt(&self, deadline: Instant, ready: Arc<AtomicBool>) -> Result<i32, Failure> {
        let mut tcp = None;
        for addr in &self.addrs {
            if let Ok(s) = TcpStream::connect(addr).await {
                tcp = Some(s);
                break;
            }
        }
        let tcp = tcp.ok_or(Failure::NotReady)?;
        let _ = tcp.set_nodelay(true);
        let io = Watched {
            tcp,
            head: Vec::new(),
            ready: ready.clone(),
        };
        let (client, connection) = h2::client::handshake(io)
            .await
            .map_err(|_| Failure::NotReady)?;
        // The connection's own task reads and writes frames; it ends with
        // the runtime.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let lost = |e: h2::Error| {
            if ready.load(Ordering::Relaxed) {
                Failure::Status(status_of_h2(&e))
            } else {
                Failure::NotReady
            }
        };
        let mut client = client.ready().await.map_err(lost)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let request = Request::post(format!("http://{}{PATH}", self.authority))
            .header("content-type", "application/grpc")
            .header("user-agent", format!("kube-probe/{KUBE_VERSION}"))
            .header("te", "trailers")
            .header("grpc-timeout", grpc_timeout(left))
            .body(())
            .map_err(|e| Failure::Status(Status::new(INTERNAL, e.to_string())))?;
        let (response, mut send) = client.send_request(request, false).map_err(lost)?;
        send.send_data(request_frame(self.service), true)
            .map_err(lost)?;
        let response = response.await.map_err(lost)?;
        let (head, mut body) = response.into_parts();
        check_head(head.status, &head.headers).map_err(Failure::Status)?;
        // A trailers-only answer: the status is in the headers.
        if let Some(status) = grpc_status(&head.headers) {
            return Err(Failure::Status(if status.code == 0 {
                no_message()
            } else {
                status
            }));
        }
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(lost)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
            if data.len() > MAX_MESSAGE + 5 {
                return Err(Failure::Status(Status::new(
                    RESOURCE_EXHAUSTED,
                    format!(
                        "grpc: received message larger than max ({} vs. {MAX_MESSAGE})",
                        data.len() - 5
                    ),
                )));
            }
        }
        let trailers = body.trailers().await.map_err(lost)?;
        let status = trailers.as_ref().and_then(grpc_status).unwrap_or_else(|| {
            Status::new(
                INTERNAL,
                "server closed the stream without sending trailers",
            )
        });
        if status.code != 0 {
            return Err(Failure::Status(status));
        }
        let message = only_message(&data).map_err(Failure::Status)?;
        serving_status(message).map_err(|e| {
            Failure::Status(Status::new(
                INTERNAL,
                format!("grpc: failed to unmarshal the received message: {e}"),
            ))
        })
    }
}

/// The TCP stream under the HTTP/2 connection, noting when the server's
/// first frame, its SETTINGS, begins to arrive: from then on the
/// connection is up, as grpc-go's READY.
struct Watched {
    tcp: TcpStream,
    head: Vec<u8>,
    ready: Arc<AtomicBool>,
}

/// The type of an HTTP/2 SETTINGS frame, the fourth byte of its header.
const SETTINGS: u8 = 0x4;

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if this.head.len() < 4 {
            let new = &buf.filled()[before..];
            let take = (4 - this.head.len()).min(new.len());
            this.head.extend_from_slice(&new[..take]);
            if this.head.len() == 4 && this.head[3] == SETTINGS {
                this.ready.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
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

/// The `grpc-timeout` header for the time left: at most 8 digits and a
/// unit, as the gRPC protocol asks.
fn grpc_timeout(left: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let micros = left.as_micros();
    if micros <= MAX {
        format!("{micros}u")
    } else if left.as_millis() <= MAX {
        format!("{}m", left.as_millis())
    } else {
        format!("{}S", u128::from(left.as_secs()).min(MAX))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(rest: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, tail) = rest.split_first().ok_or("unexpected EOF")?;
        *rest = tail;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("variable length integer overflow")
}

/// A HealthCheckRequest{service} (field 1, a string) in a gRPC frame: an
/// uncompressed flag, its length, the message.
fn request_frame(service: &str) -> Bytes {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(1 << 3 | 2);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

/// The status of a HealthCheckResponse (field 1, an enum; unknown fields
/// skipped; UNKNOWN when absent).
fn serving_status(mut rest: &[u8]) -> Result<i32, &'static str> {
    let mut status = 0;
    while !rest.is_empty() {
        let key = take_varint(&mut rest)?;
        let skip = match (key >> 3, key & 7) {
            (0, _) => return Err("invalid field number"),
            (1, 0) => {
                // An int32 enum: a negative value comes as ten bytes.
                status = take_varint(&mut rest)? as i32;
                0
            }
            (_, 0) => {
                take_varint(&mut rest)?;
                0
            }
            (_, 1) => 8,
            (_, 2) => usize::try_from(take_varint(&mut rest)?).map_err(|_| "bad length")?,
            (_, 5) => 4,
            _ => return Err("invalid wire type"),
        };
        rest = rest.get(skip..).ok_or("unexpected EOF")?;
    }
    Ok(status)
}

fn no_message() -> Status {
    Status::new(
        INTERNAL,
        "cardinality violation: received no response message from non-streaming RPC",
    )
}

/// The one message of a unary answer's body.
fn only_message(data: &[u8]) -> Result<&[u8], Status> {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return Err(if data.is_empty() {
            no_message()
        } else {
            Status::new(INTERNAL, "grpc: received a truncated message")
        });
    };
    if head[0] != 0 {
        return Err(Status::new(
            INTERNAL,
            "grpc: compressed flag set with identity or empty encoding",
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => {
            Err(Status::new(INTERNAL, "grpc: received a truncated message"))
        }
        std::cmp::Ordering::Greater => Err(Status::new(
            INTERNAL,
            "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message",
        )),
        std::cmp::Ordering::Equal => Ok(rest),
    }
}

/// An answer that is not gRPC, judged as grpc-go judges it: by its HTTP
/// status, then its content-type.
fn check_head(status: StatusCode, headers: &HeaderMap) -> Result<(), Status> {
    let content_type = headers
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_grpc = content_type.as_deref().is_some_and(|ct| {
        ct == "application/grpc"
            || ct.starts_with("application/grpc+")
            || ct.starts_with("application/grpc;")
    });
    if status == StatusCode::OK && is_grpc {
        return Ok(());
    }
    let mut errors = Vec::new();
    let code = if status == StatusCode::OK {
        UNKNOWN
    } else {
        errors.push(format!(
            "unexpected HTTP status code received from server: {} ({})",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        ));
        match status.as_u16() {
            400 => INTERNAL,
            401 => UNAUTHENTICATED,
            403 => PERMISSION_DENIED,
            404 => UNIMPLEMENTED,
            429 | 502..=504 => UNAVAILABLE,
            _ => UNKNOWN,
        }
    };
    match content_type {
        None => errors.push("malformed header: missing HTTP content-type".to_owned()),
        Some(ct) if !is_grpc => {
            errors.push(format!(
                "transport: received unexpected content-type {ct:?}"
            ));
        }
        Some(_) => {}
    }
    Err(Status::new(code, errors.join("; ")))
}

/// `grpc-status` and `grpc-message` (percent-encoded) of a header block.
fn grpc_status(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?;
    let code = std::str::from_utf8(code.as_bytes())
        .ok()
        .and_then(|c| c.parse().ok());
    let Some(code) = code else {
        return Some(Status::new(INTERNAL, "transport: malformed grpc-status"));
    };
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(code, message))
}

fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A broken stream or connection as grpc-go reports it: a reset by its
/// HTTP/2 code, anything else as Unavailable.
fn status_of_h2(e: &h2::Error) -> Status {
    match e.reason() {
        Some(reason) if e.is_reset() && e.is_remote() => {
            let code = match reason {
                h2::Reason::FLOW_CONTROL_ERROR | h2::Reason::ENHANCE_YOUR_CALM => {
                    RESOURCE_EXHAUSTED
                }
                h2::Reason::REFUSED_STREAM => UNAVAILABLE,
                h2::Reason::CANCEL => CANCELED,
                h2::Reason::INADEQUATE_SECURITY => PERMISSION_DENIED,
                _ => INTERNAL,
            };
            Status::new(
                code,
                format!("stream terminated by RST_STREAM with error code: {reason:?}"),
            )
        }
        _ => Status::new(UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// How the test server answers a call.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        /// A HealthCheckResponse with this status, then grpc-status 0.
        Status(i32),
        /// A trailers-only answer: grpc-status and grpc-message.
        TrailersOnly(u32, &'static str),
        /// A plain HTTP answer, not gRPC.
        Http(u16),
        /// The stream reset with this HTTP/2 error code.
        Reset(h2::Reason),
        /// HTTP/2 is up, the call is never answered.
        Never,
        /// The TCP connection is accepted, nothing is ever said.
        Mute,
    }

    /// The request the server saw: its head and body.
    type Seen = (http::request::Parts, Vec<u8>);

    /// A server answering every call on one connection with `answer`.
    fn serve(answer: Answer) -> (u16, mpsc::Receiver<Seen>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                if let Answer::Mute = answer {
                    let _held = tcp;
                    return std::future::pending().await;
                }
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(answer_call(answer, request, respond, tx.clone()));
                }
            });
        });
        (port, rx)
    }

    async fn answer_call(
        answer: Answer,
        request: Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        seen: mpsc::Sender<Seen>,
    ) {
        let (head, mut body) = request.into_parts();
        let mut data = Vec::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let _ = seen.send((head, data));
        let grpc = http::Response::builder().header("content-type", "application/grpc");
        match answer {
            Answer::Status(status) => {
                let mut send = respond
                    .send_response(grpc.body(()).unwrap(), false)
                    .unwrap();
                let message = [1 << 3, status as u8];
                let mut frame = vec![0, 0, 0, 0, message.len() as u8];
                frame.extend_from_slice(&message);
                send.send_data(Bytes::from(frame), false).unwrap();
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                send.send_trailers(trailers).unwrap();
            }
            Answer::TrailersOnly(code, message) => {
                let response = grpc
                    .header("grpc-status", code.to_string())
                    .header("grpc-message", message)
                    .body(())
                    .unwrap();
                respond.send_response(response, true).unwrap();
            }
            Answer::Http(status) => {
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain")
                    .body(())
                    .unwrap();
                respond.send_response(response, true).unwrap();
            }
            Answer::Reset(reason) => respond.send_reset(reason),
            Answer::Never => {
                let _held = respond;
                std::future::pending::<()>().await;
            }
            Answer::Mute => unreachable!("a mute server takes no call"),
        }
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn serving_is_healthy_and_the_call_is_the_kubelets() {
        let (port, seen) = serve(Answer::Status(SERVING));
        assert_eq!(health("127.0.0.1", port, "", T).unwrap(), "service healthy");
        let (head, body) = seen.recv().unwrap();
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(head.uri.path(), "/grpc.health.v1.Health/Check");
        assert_eq!(
            head.uri.authority().unwrap().as_str(),
            format!("127.0.0.1:{port}")
        );
        assert_eq!(head.headers["content-type"], "application/grpc");
        assert_eq!(head.headers["te"], "trailers");
        assert_eq!(head.headers["user-agent"], "kube-probe/1.37");
        let timeout = head.headers["grpc-timeout"].to_str().unwrap();
        let micros: u64 = timeout.strip_suffix('u').unwrap().parse().unwrap();
        assert!(micros > 0 && micros <= 1_000_000, "{timeout}");
        // An empty HealthCheckRequest: the service "" is left out.
        assert_eq!(body, [0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_service_is_asked_for_by_name() {
        let (port, seen) = serve(Answer::Status(SERVING));
        health("127.0.0.1", port, "db", T).unwrap();
        let (_, body) = seen.recv().unwrap();
        assert_eq!(body, [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
    }

    #[test]
    fn any_other_status_is_unhealthy() {
        let (port, _) = serve(Answer::Status(2));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        let (port, _) = serve(Answer::Status(3));
        assert_eq!(
            health("127.0.0.1", port, "x", T).unwrap_err(),
            "service unhealthy (responded with \"SERVICE_UNKNOWN\")"
        );
    }

    #[test]
    fn an_error_status_is_the_rpc_error() {
        let (port, _) = serve(Answer::TrailersOnly(
            12,
            "unknown service grpc.health.v1.Health",
        ));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
        );
        let (port, _) = serve(Answer::TrailersOnly(5, "no service caf%C3%A9"));
        assert_eq!(
            health("127.0.0.1", port, "café", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = NotFound desc = no service café"
        );
        let (port, _) = serve(Answer::TrailersOnly(4, "too slow"));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "timeout: health rpc did not complete within 1s"
        );
    }

    #[test]
    fn a_plain_http_answer_is_judged_by_its_status() {
        let (port, _) = serve(Answer::Http(404));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unexpected HTTP status code received from server: 404 (Not Found); transport: received unexpected content-type \"text/plain\""
        );
        let (port, _) = serve(Answer::Http(503));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = Unavailable desc = unexpected HTTP status code received from server: 503 (Service Unavailable); transport: received unexpected content-type \"text/plain\""
        );
    }

    #[test]
    fn a_reset_stream_is_an_rpc_error_by_its_http2_code() {
        let (port, _) = serve(Answer::Reset(h2::Reason::REFUSED_STREAM));
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "error: health rpc probe failed: rpc error: code = Unavailable desc = stream terminated by RST_STREAM with error code: REFUSED_STREAM"
        );
    }

    #[test]
    fn an_unanswered_call_times_out() {
        let (port, seen) = serve(Answer::Never);
        let began = std::time::Instant::now();
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            "timeout: health rpc did not complete within 1s"
        );
        assert!(began.elapsed() >= T);
        assert!(seen.recv().is_ok(), "the call reached the server");
    }

    #[test]
    fn a_server_that_never_speaks_http2_is_a_connect_timeout() {
        let (port, _) = serve(Answer::Mute);
        assert_eq!(
            health("127.0.0.1", port, "", T).unwrap_err(),
            format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
            )
        );
    }

    #[test]
    fn nothing_listening_is_retried_until_the_timeout() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let began = std::time::Instant::now();
        assert_eq!(
            health("127.0.0.1", port, "", Duration::from_secs(2)).unwrap_err(),
            format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 2s: context deadline exceeded"
            )
        );
        assert!(began.elapsed() >= Duration::from_secs(2));
    }

    #[test]
    fn a_server_that_starts_late_is_reached_on_a_retry() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            // Serve one call on the listener at the fixed port.
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_nonblocking(true).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                let (tx, _rx) = mpsc::channel();
                if let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(answer_call(Answer::Status(SERVING), request, respond, tx));
                }
                // Drive the connection until the client is done with it.
                while conn.accept().await.is_some() {}
            });
        });
        assert_eq!(
            health("127.0.0.1", port, "", Duration::from_secs(3)).unwrap(),
            "service healthy"
        );
        late.join().unwrap();
    }

    #[test]
    fn the_response_message_is_read_by_hand() {
        assert_eq!(serving_status(&[]), Ok(0));
        assert_eq!(serving_status(&[0x08, 0x01]), Ok(1));
        // Unknown fields of every wire type are skipped.
        let mut msg = vec![0x10, 0x96, 0x01, 0x19];
        msg.extend_from_slice(&[0; 8]);
        msg.extend_from_slice(&[0x22, 2, b'h', b'i', 0x2d, 0, 0, 0, 0, 0x08, 0x02]);
        assert_eq!(serving_status(&msg), Ok(2));
        let mut negative = vec![0x08];
        negative.extend_from_slice(&[0xff; 9]);
        negative.push(0x01);
        assert_eq!(serving_status(&negative), Ok(-1));
        assert_eq!(serving_status(&[0x08]), Err("unexpected EOF"));
        assert_eq!(serving_status(&[0x0b]), Err("invalid wire type"));
        assert_eq!(serving_status(&[0x22, 5, b'h']), Err("unexpected EOF"));
        assert_eq!(&request_frame("")[..], [0, 0, 0, 0, 0]);
        let long = "s".repeat(200);
        let frame = request_frame(&long);
        assert_eq!(frame[..7], [0, 0, 0, 0, 203, 0x0a, 0xc8]);
        assert_eq!(frame[7], 0x01);
        assert_eq!(
            only_message(&[0, 0, 0, 0, 2, 0x08, 0x01]),
            Ok(&[0x08, 0x01][..])
        );
        assert_eq!(only_message(&[]).unwrap_err(), no_message());
        assert_eq!(only_message(&[1, 0, 0, 0, 0]).unwrap_err().code, INTERNAL);
        assert_eq!(
            only_message(&[0, 0, 0, 0, 3, 1]).unwrap_err().code,
            INTERNAL
        );
    }

    #[test]
    fn durations_and_timeouts_are_written_as_go_and_grpc_write_them() {
        let go = |d: Duration| GoDuration(d).to_string();
        assert_eq!(go(Duration::from_secs(1)), "1s");
        assert_eq!(go(Duration::from_secs(90)), "1m30s");
        assert_eq!(go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go(Duration::from_millis(500)), "500ms");
        assert_eq!(go(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go(Duration::ZERO), "0s");
        assert_eq!(grpc_timeout(Duration::from_secs(1)), "1000000u");
        assert_eq!(grpc_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(grpc_timeout(Duration::from_secs(10_000_000)), "10000000S");
        assert_eq!(percent_decode(b"a%20b%zz%4"), "a b%zz%4");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(17), "Code(17)");
    }
}
