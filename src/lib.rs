//! podrun: Kubernetes pods on one Linux machine, without a cluster.
//!
//! Data flows one way: [`manifest`] (text → validated pod) → [`plan`]
//! (resources, QoS, cgroup values, start order) → [`sandbox`] (the kernel
//! objects) and [`container`] (processes) ⇄ [`supervisor`] ⇄ [`lifecycle`]
//! (the kubelet's decisions). `manifest`, `plan` and `lifecycle` are pure.

pub mod api;
pub mod container;
pub mod image;
pub mod lifecycle;
pub mod manifest;
pub mod memory;
pub mod paths;
pub mod plan;
pub mod pod;
pub mod probe;
pub mod runtime;
pub mod sandbox;
pub mod supervisor;
pub mod sys;
