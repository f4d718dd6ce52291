//! Probe and hook checks, each in a process of its own so that nothing
//! slow holds the supervisor's loop: an exec inside the container
//! (`check::exec_in`), or an HTTP(S) GET, TCP connect or gRPC health check
//! from the pod's network namespace (`check::network`). What a check does
//! is a `Handler` of the runtime API, compiled from the manifest by
//! the pod compiler.

pub mod check;
mod grpc;
mod http_get;
mod tcp;
mod tls;
pub mod verdict;
mod wording;

pub use crate::api::runtime::Handler;
