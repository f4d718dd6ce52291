//! podrun's own directories on the host: where pods keep their state,
//! data and logs (the kubelet's layout), which no container may see.

use std::path::{Path, PathBuf};

/// Where podrun keeps its pods' state, data and logs.
pub const RUN_ROOT: &str = "/run/podrun";
pub const DATA_ROOT: &str = "/var/lib/podrun/pods";
pub const LOG_ROOT: &str = "/var/log/podrun";

/// podrun's own directories (every pod's state and API socket, data,
/// images and logs): no container may see them, not even one whose root
/// is the host's.
pub const OWN_DIRS: [&str; 3] = [RUN_ROOT, "/var/lib/podrun", LOG_ROOT];

/// `OWN_DIRS` as paths.
pub fn own_dirs() -> Vec<PathBuf> {
    OWN_DIRS.iter().map(PathBuf::from).collect()
}

/// A pod's directories: run state (pins, shm, container stages, state
/// file), data (volumes) and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodDirs {
    pub run: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
}

impl PodDirs {
    /// `name` and `uid` are validated names: one path component each.
    pub fn new(name: &str, uid: &str) -> PodDirs {
        PodDirs {
            run: Self::run_of(name),
            data: Path::new(DATA_ROOT).join(uid),
            logs: Path::new(LOG_ROOT).join(format!("{name}_{uid}")),
        }
    }

    /// The run directory of pod `name` (a validated name).
    pub fn run_of(name: &str) -> PathBuf {
        Path::new(RUN_ROOT).join(name)
    }

    pub fn state_file(name: &str) -> PathBuf {
        Self::run_of(name).join("state.json")
    }

    pub fn ns(&self) -> PathBuf {
        self.run.join("ns")
    }

    /// The pod's network record and the node's pinned namespace.
    pub fn network(&self) -> PathBuf {
        self.run.join("network")
    }

    pub fn shm(&self) -> PathBuf {
        self.run.join("shm")
    }

    pub fn stage(&self, container: &str) -> PathBuf {
        self.run.join("containers").join(container).join("root")
    }

    /// The pod's `/etc` files for its containers.
    pub fn etc(&self) -> PathBuf {
        self.data.join("etc")
    }

    /// Where a container run's overlay root from an image is mounted.
    pub fn image_root(&self, container: &str, restart_count: u32) -> PathBuf {
        self.data
            .join("containers")
            .join(container)
            .join(restart_count.to_string())
    }

    pub fn log_file(&self, container: &str, restart_count: u32) -> PathBuf {
        self.logs
            .join(container)
            .join(format!("{restart_count}.log"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_follow_the_kubelet_layout() {
        let dirs = PodDirs::new("web", "u1");
        assert_eq!(dirs.logs, Path::new("/var/log/podrun/web_u1"));
        assert_eq!(
            dirs.log_file("app", 2),
            Path::new("/var/log/podrun/web_u1/app/2.log")
        );
        assert_eq!(
            dirs.stage("app"),
            Path::new("/run/podrun/web/containers/app/root")
        );
        assert_eq!(
            PodDirs::state_file("web"),
            Path::new("/run/podrun/web/state.json")
        );
    }
}
