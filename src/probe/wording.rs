//! The kubelet's words for what its checks found, kept in one place so
//! that podrun's results read as a kubelet's: its User-Agents, the results
//! of pkg/probe/http, pkg/probe/tcp and pkg/probe/grpc, the event of
//! pkg/kubelet/lifecycle's HTTP fallback, and the Go errors (net, net/http,
//! grpc-go) that reach them.

use std::fmt;
use std::io;
use std::time::Duration;

use http::StatusCode;
use nix::errno::Errno;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// The kubelet version podrun's checks give in their User-Agent.
pub const KUBE_VERSION: &str = "1.37";

/// Why a TLS session could not be had (probe/tls.rs makes them).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Config(rustls::Error),
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// The server answered the ClientHello in plain HTTP.
    #[error("the server answered in plain HTTP")]
    PlainHttp,
    #[error("{0}")]
    Handshake(io::Error),
}

/// What a check is for, as its User-Agent says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Probe,
    Hook,
}

/// `kube-probe/<version>` or `kube-lifecycle/<version>`.
pub fn user_agent(purpose: Purpose) -> String {
    let what = match purpose {
        Purpose::Probe => "probe",
        Purpose::Hook => "lifecycle",
    };
    format!("kube-{what}/{KUBE_VERSION}")
}

/// A GET answered with `code`. The kubelet's result is the body; podrun
/// says what was judged.
pub fn http_succeeded(code: u16) -> String {
    format!("HTTP probe succeeded with statuscode: {code}")
}

pub fn http_failed(code: u16) -> String {
    format!("HTTP probe failed with statuscode: {code}")
}

/// A redirect not followed (to another host): the kubelet's warning.
pub fn redirects_terminated(body: &str) -> String {
    format!("Probe terminated redirects, Response body: {body}")
}

/// A hook's HTTPS request answered in plain HTTP and made again over
/// HTTP (the kubelet's LifecycleHTTPFallback event); `host` is host:port.
pub fn hook_fell_back(host: &str) -> String {
    format!("request to HTTPS lifecycle hook {host} got HTTP response, retry with HTTP succeeded")
}

/// A system call's error as Go prints it: the lower-case strerror.
pub fn syscall(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = Errno::from_raw(code).desc();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
        None => e.to_string(),
    }
}

/// A TCP connection that did not open, as Go's net package says it.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("dial tcp: lookup {host}: {reason}")]
    Lookup { host: String, reason: String },
    #[error("dial tcp {addr}: connect: {reason}")]
    Connect { addr: String, reason: String },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
}

/// Why a GET got no answer, or no whole one, as Go's net/http says it.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("http: server gave HTTP response to HTTPS client")]
    PlainHttp,
    #[error(transparent)]
    Tls(TlsError),
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    HeadersTimeout,
    #[error(
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    )]
    BodyTimeout,
    #[error("stopped after 10 redirects")]
    TooManyRedirects,
    #[error("failed to parse Location header {location:?}: {reason}")]
    BadLocation { location: String, reason: String },
    #[error("unsupported protocol scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("net/http: invalid header field name {0:?}")]
    HeaderName(String),
    #[error("net/http: invalid header field value for {0:?}")]
    HeaderValue(String),
    #[error("{}", hyper_text(.0))]
    Http(hyper::Error),
}

/// hyper's error in Go's words where they differ: a connection closed
/// before the answer is Go's EOF.
fn hyper_text(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "EOF".to_owned()
    } else {
        e.to_string()
    }
}

/// Go's url.Error: the request's method and URL before what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("Get {url:?}: {error}")]
pub struct UrlError {
    pub url: String,
    #[source]
    pub error: GetError,
}

/// The gRPC probe's success.
pub const SERVICE_HEALTHY: &str = "service healthy";

/// A failed gRPC probe, in pkg/probe/grpc's words.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
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
    #[error("error: health rpc probe failed: rpc error: code = {} desc = {message}", code_name(*.code))]
    Rpc { code: i32, message: String },
    #[error("service unhealthy (responded with {:?})", serving_name(*.0))]
    Unhealthy(i32),
}

impl GrpcError {
    /// A call that ended with a gRPC status, as pkg/probe/grpc words it.
    pub fn of_status(code: Code, message: String, timeout: Duration) -> GrpcError {
        match code {
            Code::Unimplemented => GrpcError::Unimplemented(message),
            Code::DeadlineExceeded => GrpcError::RpcTimeout(timeout),
            _ => GrpcError::Rpc {
                code: code as i32,
                message,
            },
        }
    }
}

/// A code's name as grpc-go prints it.
fn code_name(code: i32) -> String {
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
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// A serving status's name as the generated Go code prints it.
fn serving_name(status: i32) -> String {
    ServingStatus::try_from(status)
        .map_or_else(|_| status.to_string(), |s| s.as_str_name().to_owned())
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

/// An answer that is not gRPC, judged as grpc-go's transport judges it:
/// by its HTTP status, then its content-type; None for a gRPC answer.
pub fn not_grpc(status: StatusCode, content_type: Option<&str>) -> Option<(Code, String)> {
    let is_grpc = content_type.is_some_and(|ct| {
        ct == "application/grpc"
            || ct.starts_with("application/grpc+")
            || ct.starts_with("application/grpc;")
    });
    if status == StatusCode::OK && is_grpc {
        return None;
    }
    let mut errors = Vec::new();
    let code = if status == StatusCode::OK {
        Code::Unknown
    } else {
        errors.push(format!(
            "unexpected HTTP status code received from server: {} ({})",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        ));
        match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502..=504 => Code::Unavailable,
            _ => Code::Unknown,
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
    Some((code, errors.join("; ")))
}

/// A stream the server reset, as grpc-go reports it: a code by its
/// HTTP/2 error code.
pub fn reset(reason: h2::Reason) -> (Code, String) {
    let code = match reason {
        h2::Reason::FLOW_CONTROL_ERROR | h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::CANCEL => Code::Cancelled,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    };
    (
        code,
        format!("stream terminated by RST_STREAM with error code: {reason:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_codes_are_written_as_go_writes_them() {
        let go = |d: Duration| GoDuration(d).to_string();
        assert_eq!(go(Duration::from_secs(1)), "1s");
        assert_eq!(go(Duration::from_secs(90)), "1m30s");
        assert_eq!(go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go(Duration::from_millis(500)), "500ms");
        assert_eq!(go(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go(Duration::ZERO), "0s");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(17), "Code(17)");
        assert_eq!(code_name(Code::Cancelled as i32), "Canceled");
        assert_eq!(serving_name(2), "NOT_SERVING");
        assert_eq!(serving_name(7), "7");
    }

    #[test]
    fn system_errors_are_go_s_lower_case_strerror() {
        let refused = io::Error::from_raw_os_error(Errno::ECONNREFUSED as i32);
        assert_eq!(syscall(&refused), "connection refused");
        let unreachable = io::Error::from_raw_os_error(Errno::EHOSTUNREACH as i32);
        assert_eq!(syscall(&unreachable), "no route to host");
        assert_eq!(syscall(&io::Error::other("odd")), "odd");
    }

    #[test]
    fn user_agents_name_the_purpose_and_version() {
        assert_eq!(user_agent(Purpose::Probe), "kube-probe/1.37");
        assert_eq!(user_agent(Purpose::Hook), "kube-lifecycle/1.37");
    }
}
