//! The pod's socket API: a small versioned protocol of JSON lines, one
//! request per line, one reply per request (a watch keeps the connection
//! and sends each new event as a line). Decoding is pure and strict: an
//! unknown operation, field or version is an error reply, never a crash.
//! `docs/api.md` is its reference.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodStatus;
use serde::{Deserialize, Serialize};

use crate::supervisor::events::Record;

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
}

impl Request {
    fn version(&self) -> u32 {
        match self {
            Request::Status { version }
            | Request::Stop { version, .. }
            | Request::Events { version, .. }
            | Request::Apply { version, .. } => *version,
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
            decode(br#"{"version":2,"op":"status"}"#).unwrap_err(),
            ApiError::Version(2)
        );
        for bad in [
            &b"not json"[..],
            br#"{"version":1,"op":"reboot"}"#,
            br#"{"version":1,"op":"status","extra":1}"#,
            br#"{"op":"status"}"#,
            br#"[]"#,
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
