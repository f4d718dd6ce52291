//! The OS half of podrun: what the host offers (cgroup v2, memory, cpus,
//! huge pages), and each pod's cgroup, pinned namespaces, `/dev/shm` and
//! volumes, with the teardown that removes them.

pub mod cgroup;
pub mod host;
pub mod mountinfo;
pub mod namespaces;
pub mod pidns;
pub mod pod;
pub mod volumes;
