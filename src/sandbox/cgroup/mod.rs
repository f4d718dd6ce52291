//! cgroup v2, written to cgroupfs directly: finding the hierarchy
//! (`mount`) and podrun's tree of pod and container cgroups in it (`tree`).

mod mount;
mod tree;

pub use mount::{
    Cgroup2Mount, CgroupError, LIMIT_CONTROLLERS, discover, find_cgroup2, parse_controllers,
    unenforced_reason,
};
pub use tree::{Applied, ContainerCgroup, PodCgroup, PodrunRoot};
