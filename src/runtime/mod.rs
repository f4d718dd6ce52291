//! podrun's runtime: the half of the node under the kubelet half, shaped
//! as the CRI's RuntimeService and ImageService so that a CRI server can
//! be a thin adapter over it. It makes a pod's sandbox (cgroup, pinned
//! namespaces, `/dev/shm`, volumes, `/etc` files) and its containers,
//! starts, signals and reaps them, keeps their output in CRI log files,
//! execs into them and runs probe and hook checks in their namespaces. It
//! knows nothing of init containers, sidecars, ordering or restarts: the
//! kubelet half (the supervisor over the lifecycle engine) decides what
//! happens when, exactly as containerd knows nothing of sidecars.
//!
//! | CRI                         | here                                     |
//! |-----------------------------|------------------------------------------|
//! | RunPodSandbox               | [`Runtime::run_pod_sandbox`]             |
//! | StopPodSandbox              | [`PodSandbox::stop`]                     |
//! | RemovePodSandbox            | [`remove_pod_sandbox`]                   |
//! | CreateContainer             | [`PodSandbox::create_container`]         |
//! | StartContainer              | [`PodSandbox::start_container`]          |
//! | StopContainer's signals     | [`PodSandbox::kill_container`]           |
//! | RemoveContainer             | [`PodSandbox::remove_container`]         |
//! | ContainerStatus             | [`PodSandbox::container_status`]         |
//! | ExecSync, the prober        | [`PodSandbox::check`]                    |
//! | Exec                        | [`PodSandbox::exec`]                     |
//! | ImageStatus                 | [`images::ImageService::image_status`]   |
//! | PullImage                   | [`images::ImageService::pull_image`]     |

pub mod checks;
mod container;
pub mod images;
pub mod logs;
mod sandbox;

use std::path::{Path, PathBuf};

use crate::api::runtime::SandboxConfig;
use crate::container::caps::{self, Holding};
use crate::network;
use crate::paths::PodDirs;
use crate::sandbox::cgroup::{self, CgroupError, PodCgroup, PodrunRoot};
use crate::sandbox::pod::{self as sandbox_pod, PodError};

pub use checks::{CheckError, CheckId, Verdict};
pub use container::{ContainerState, ContainerStatus, CreateError, RemoveError, StartError};
pub use sandbox::{ExecFailure, ExecStreams, PodSandbox, RuntimeEvent};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Sandbox(#[from] PodError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

/// The runtime of this machine: where pods' cgroups go, and what podrun
/// may give containers.
#[derive(Debug)]
pub struct Runtime {
    cgroup_root: PodrunRoot,
    /// Why pod limits are not enforced here, if they are not.
    unenforced: Option<String>,
    holding: Holding,
    /// The lowest oom_score_adj this process may give a child.
    oom_floor: i64,
    /// Where the node's CNI network and plugins are.
    network: network::conf::Settings,
}

/// The lowest oom_score_adj this process may give a child: without
/// CAP_SYS_RESOURCE it cannot go below its own.
fn oom_floor(holding: &Holding) -> i64 {
    if holding.effective & ::caps::Capability::CAP_SYS_RESOURCE.bitmask() != 0 {
        return -1000;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Runtime {
    /// Finds the cgroup2 hierarchy and what this process holds.
    pub fn new() -> Result<Runtime, RuntimeError> {
        let (mount, controllers) = cgroup::discover()?;
        let holding = caps::this_process();
        Ok(Runtime {
            cgroup_root: PodrunRoot::at(&mount.mount),
            unenforced: cgroup::unenforced_reason(&mount, &controllers),
            oom_floor: oom_floor(&holding),
            holding,
            network: network::conf::Settings::from_env(),
        })
    }

    /// Why pod limits cannot be enforced on this host, if they cannot.
    pub fn unenforced(&self) -> Option<&str> {
        self.unenforced.as_deref()
    }

    /// Where the sandbox of pod `uid` has its cgroup (known before it is
    /// made, so that what is left of a failed start can be found).
    pub fn pod_cgroup(&self, uid: &str) -> Result<PathBuf, RuntimeError> {
        Ok(self.cgroup_root.pod(uid)?.dir().to_owned())
    }

    /// Makes the pod's sandbox; on failure, nothing of it is left. The
    /// network and its plugins are found before anything is made.
    pub fn run_pod_sandbox(
        &self,
        config: &SandboxConfig,
        dirs: &PodDirs,
    ) -> Result<PodSandbox, RuntimeError> {
        let network = if config.namespaces.host_network {
            None
        } else {
            Some(network::prepare(
                &self.network,
                &config.port_mappings,
                config.bandwidth.is_some(),
            )?)
        };
        match sandbox_pod::create(dirs, config, &self.cgroup_root, network) {
            Ok(made) => Ok(PodSandbox::new(
                config.clone(),
                dirs.clone(),
                made,
                self.holding,
                self.oom_floor,
            )),
            Err(e) => {
                if let Ok(cgroup) = self.cgroup_root.pod(&config.uid) {
                    let _ = sandbox_pod::teardown(dirs, &cgroup);
                }
                Err(e.into())
            }
        }
    }
}

/// Removes everything of a pod's sandbox but its state file and logs, from
/// its directories and cgroup alone: it works after a supervisor died.
/// Idempotent.
pub fn remove_pod_sandbox(dirs: &PodDirs, cgroup: &Path) -> Result<(), RuntimeError> {
    Ok(sandbox_pod::teardown(dirs, &PodCgroup::at(cgroup))?)
}
