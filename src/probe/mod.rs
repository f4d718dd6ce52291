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
pub mod tls;
pub mod verdict;
mod wording;

pub use crate::api::runtime::Handler;

/// What the checks' tests share: a check's future run to its end, as the
/// forked check runs it.
#[cfg(test)]
mod test_support {
    use std::time::Duration;

    use super::http_get::{self, HttpGet};
    use super::verdict::Verdict;

    pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    pub fn http_get(get: &HttpGet, timeout: Duration) -> Verdict {
        block_on(http_get::probe(get, timeout))
    }

    pub fn http_hook(get: &HttpGet, timeout: Duration) -> Verdict {
        block_on(http_get::hook(get, timeout))
    }
}
