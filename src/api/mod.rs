//! The pod's socket API: a small versioned protocol of JSON lines, one
//! request per line, one reply per request (a watch keeps the connection
//! and sends each new event as a line). Decoding is pure and strict: an
//! unknown operation, field or version is an error reply, never a crash.
//! `docs/api.md` is its reference.

pub mod client;
pub mod events;
pub mod runtime;
pub mod state;
pub mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use events::Record;

/// A pod's status as the API (and `podrun status`) shows it: Kubernetes'
/// own.
pub use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};

/// The protocol version this podrun speaks.
pub const VERSION: u32 = 1;

/// The longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The socket's name in the pod's run directory.
pub const SOCKET: &str = "api.sock";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("request is not valid JSON or not a known request: {0}")]
    Malformed(String),
    #[error("unsupported protocol version {0} (this podrun speaks {VERSION})")]
    Version(u32),
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Request {
    /// The pod's Kubernetes PodStatus.
    Status { version: u32 },
    /// The termination sequence, with this grace instead of the pod's.
    #[serde(rename_all = "camelCase")]
    Stop {
        version: u32,
        grace_seconds: Option<i64>,
    },
    /// The events so far; with `watch`, then each new one.
    Events {
        version: u32,
        #[serde(default)]
        watch: bool,
    },
    /// New images for containers (name → image): each changed one is
    /// restarted with it, as Kubernetes does for a pod update.
    Apply {
        version: u32,
        images: BTreeMap<String, String>,
    },
    /// A container's log file, passed as a descriptor; with `follow`, a
    /// later `ended` reply says that run is over.
    Logs {
        version: u32,
        /// May be left out when the pod has one app container.
        container: Option<String>,
        #[serde(default)]
        previous: bool,
        #[serde(default)]
        follow: bool,
    },
    /// A command in a running container. Without `tty` the request carries
    /// three descriptors (stdin, stdout, stderr) for it; with `tty` it gets
    /// a terminal whose other end is passed back. A `pid` reply says it
    /// started, an `exitCode` reply that it ended; closing the connection
    /// before then kills it.
    Exec {
        version: u32,
        /// The pod's first app container when left out.
        container: Option<String>,
        command: Vec<String>,
        #[serde(default)]
        tty: bool,
    },
}

/// How many descriptors a request may carry (an exec's three).
pub const MAX_FDS: usize = 3;

impl Request {
    fn version(&self) -> u32 {
        match self {
            Request::Status { version }
            | Request::Stop { version, .. }
            | Request::Events { version, .. }
            | Request::Apply { version, .. }
            | Request::Logs { version, .. }
            | Request::Exec { version, .. } => *version,
        }
    }
}

/// Reads one request line.
pub fn decode(line: &[u8]) -> Result<Request, ApiError> {
    if line.len() > MAX_REQUEST {
        return Err(ApiError::TooLong);
    }
    let request: Request =
        serde_json::from_slice(line).map_err(|e| ApiError::Malformed(e.to_string()))?;
    match request.version() {
        VERSION => Ok(request),
        other => Err(ApiError::Version(other)),
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Record>>,
    /// A watched event, sent after the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Record>,
    /// The log whose file descriptor comes with this reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogInfo>,
    /// A followed log's run has ended: nothing more will be written to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<bool>,
    /// An exec's process started (with the terminal's descriptor, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// An exec's process ended: its exit code, or 128 + the signal that
    /// killed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Which log a `logs` reply passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInfo {
    pub container: String,
    /// The run's restart count: the file is `<restartCount>.log`.
    pub restart_count: u32,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            ..Reply::default()
        }
    }

    /// The reply as a line.
    pub fn line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_strictly() {
        assert_eq!(
            decode(br#"{"version":1,"op":"status"}"#).unwrap(),
            Request::Status { version: 1 }
        );
        assert_eq!(
            decode(br#"{"version":1,"op":"stop","graceSeconds":0}"#).unwrap(),
            Request::Stop {
                version: 1,
                grace_seconds: Some(0)
            }
        );
        assert_eq!(
            decode(br#"{"version":1,"op":"apply","images":{"app":"rootfs:/"}}"#).unwrap(),
            Request::Apply {
                version: 1,
                images: [("app".to_owned(), "rootfs:/".to_owned())].into()
            }
        );
        assert_eq!(
            decode(br#"{"version":1,"op":"logs","follow":true}"#).unwrap(),
            Request::Logs {
                version: 1,
                container: None,
                previous: false,
                follow: true
            }
        );
        assert_eq!(
            decode(br#"{"version":1,"op":"exec","container":"app","command":["sh"],"tty":true}"#)
                .unwrap(),
            Request::Exec {
                version: 1,
                container: Some("app".to_owned()),
                command: vec!["sh".to_owned()],
                tty: true
            }
        );
        assert_eq!(
            decode(br#"{"version":2,"op":"status"}"#).unwrap_err(),
            ApiError::Version(2)
        );
        for bad in [
            &b"not json"[..],
            br#"{"version":1,"op":"reboot"}"#,
            br#"{"version":1,"op":"status","extra":1}"#,
            br#"{"op":"status"}"#,
            br#"[]"#,
            br#"{"version":1,"op":"exec"}"#,
            br#"{"version":1,"op":"exec","command":"ls"}"#,
            br#"{"version":1,"op":"logs","tail":3}"#,
        ] {
            assert!(
                matches!(decode(bad), Err(ApiError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode(&vec![b' '; MAX_REQUEST + 1]).unwrap_err(),
            ApiError::TooLong
        );
    }

    #[test]
    fn replies_are_lines() {
        assert_eq!(Reply::ok().line(), b"{\"ok\":true}\n");
        assert_eq!(
            Reply::error("no").line(),
            b"{\"ok\":false,\"error\":\"no\"}\n"
        );
    }
}
