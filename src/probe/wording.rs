//! The kubelet's words for what its checks found, kept in one place so
//! that podrun's results read as a kubelet's: its User-Agents, the results
//! of pkg/probe/http and pkg/probe/tcp, the event of pkg/kubelet/lifecycle's
//! HTTP fallback, and the Go errors (net, net/http) that reach them.

use std::io;

use nix::errno::Errno;

use super::tls::TlsError;

/// The kubelet version podrun's checks give in their User-Agent.
pub const KUBE_VERSION: &str = "1.37";

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

#[cfg(test)]
mod tests {
    use super::*;

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
