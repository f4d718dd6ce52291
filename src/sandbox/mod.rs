//! The OS half of podrun: what the host offers (cgroup v2, memory, cpus,
//! huge pages) and, later, the pod's cgroup, namespaces and volumes.

pub mod cgroup;
pub mod host;
pub mod namespaces;
pub mod volumes;
