//! The OS half of podrun: what the host offers (cgroup v2, memory, cpus,
//! huge pages), and each pod's cgroup, pinned namespaces, `/dev/shm`,
//! volumes, `/etc` files and containers' overlay roots, with the teardown
//! that removes them.

pub mod atomic_writer;
pub mod cgroup;
pub mod etc;
pub mod host;
pub mod mountinfo;
pub mod namespaces;
pub mod overlay;
pub mod pidns;
pub mod pod;
pub mod volumes;
