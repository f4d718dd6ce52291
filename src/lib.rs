//! podrun: Kubernetes pods on one Linux machine, without a cluster.
//!
//! Two halves, one way down (docs/architecture.md). podrun's kubelet:
//! [`manifest`] (text → validated pod) → [`plan`] (resources, QoS, cgroup
//! values) and [`pod`] (the compiled pod) → [`lifecycle`] (the pure
//! engine, which owns every deadline) → [`supervisor`] (one pod's loop,
//! carrying the engine's actions out). Under it podrun's runtime,
//! CRI-shaped: [`runtime`] over [`sandbox`], [`container`], [`image`] and
//! [`probe`], over [`sys`]. [`api`] and [`paths`] are shared by all.
//! `manifest`, `plan`, `pod` and `lifecycle` are pure.

pub mod api;
pub mod container;
pub mod image;
pub mod lifecycle;
pub mod manifest;
pub mod memory;
pub mod network;
pub mod paths;
pub mod plan;
pub mod pod;
pub mod probe;
pub mod runtime;
pub mod sandbox;
pub mod supervisor;
pub mod sys;
