//! Container processes: what runs in a container and how its output is kept.
//! (Spawning lands here next; for now the parts that need no privileges:
//! Kubernetes' `$(VAR)` expansion and the CRI log format.)

pub mod caps;
pub mod config;
pub mod expand;
pub mod log;
pub mod rootfs;
pub mod spawn;
