//! Container processes: what a container runs as (`config`, `caps`), the
//! filesystem it sees (`rootfs`, built as `step`s its child runs), how it
//! is started (`spawn`), the terminal of an exec (`pty`) and the format
//! its output is kept in (`log`).

pub mod caps;
pub mod config;
pub mod log;
pub mod pty;
pub mod rootfs;
pub mod spawn;
pub mod step;
