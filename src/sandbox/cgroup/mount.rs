//! Finding the cgroup v2 hierarchy, wherever the host mounted it: pure v2 at
//! `/sys/fs/cgroup`, or hybrid hosts' `/sys/fs/cgroup/unified` beside the v1
//! controllers.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sandbox::mountinfo;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 file system is mounted (see /proc/self/mountinfo); podrun needs cgroup v2")]
    NoCgroup2,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} cannot name a cgroup: it must be one path component")]
    BadName(String),
}

/// The controllers podrun needs to enforce a pod's limits.
pub const LIMIT_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup2Mount {
    pub mount: PathBuf,
    /// Whether cgroup v1 hierarchies are mounted beside it.
    pub hybrid: bool,
}

/// Picks the cgroup2 mount from mountinfo text: `/sys/fs/cgroup` if it is
/// cgroup2, else `/sys/fs/cgroup/unified`, else the first cgroup2 mount.
pub fn find_cgroup2(mountinfo: &str) -> Result<Cgroup2Mount, CgroupError> {
    let mut v2 = Vec::new();
    let mut hybrid = false;
    for (mount_point, fstype) in mountinfo::entries(mountinfo) {
        match fstype {
            "cgroup2" => v2.push(mount_point),
            "cgroup" => hybrid = true,
            _ => {}
        }
    }
    let preferred = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .find_map(|p| v2.iter().find(|m| m.as_path() == Path::new(p)).cloned());
    let mount = preferred
        .or_else(|| v2.into_iter().next())
        .ok_or(CgroupError::NoCgroup2)?;
    Ok(Cgroup2Mount { mount, hybrid })
}

/// The controllers available at the root of the cgroup2 hierarchy.
pub fn parse_controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Reads the host's cgroup2 mount and its root controllers.
pub fn discover() -> Result<(Cgroup2Mount, Vec<String>), CgroupError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let mount = find_cgroup2(&read(Path::new("/proc/self/mountinfo"))?)?;
    let controllers = parse_controllers(&read(&mount.mount.join("cgroup.controllers"))?);
    Ok((mount, controllers))
}

/// Why pod limits cannot be enforced under `mount`, or `None` when every
/// controller they need is there.
pub fn unenforced_reason(mount: &Cgroup2Mount, controllers: &[String]) -> Option<String> {
    let missing: Vec<&str> = LIMIT_CONTROLLERS
        .into_iter()
        .filter(|c| !controllers.iter().any(|have| have == c))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let bound = if mount.hybrid {
        " (they are bound to cgroup v1 on this hybrid host)"
    } else {
        ""
    };
    Some(format!(
        "the cgroup2 hierarchy at {} has no {} controller{}{bound}: pod limits are not enforced",
        mount.mount.display(),
        missing.join(", "),
        if missing.len() == 1 { "" } else { "s" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,memory
";

    const PURE: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn finds_the_hybrid_unified_mount() {
        let m = find_cgroup2(HYBRID).unwrap();
        assert_eq!(m.mount, Path::new("/sys/fs/cgroup/unified"));
        assert!(m.hybrid);
    }

    #[test]
    fn finds_the_pure_v2_mount() {
        let m = find_cgroup2(PURE).unwrap();
        assert_eq!(m.mount, Path::new("/sys/fs/cgroup"));
        assert!(!m.hybrid);
    }

    #[test]
    fn elsewhere_and_escaped() {
        let text = "1 0 0:1 / /mnt/my\\040cgroup rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2(text).unwrap().mount,
            Path::new("/mnt/my cgroup")
        );
        assert!(matches!(
            find_cgroup2("garbage\n"),
            Err(CgroupError::NoCgroup2)
        ));
    }

    #[test]
    fn controllers() {
        assert_eq!(
            parse_controllers("cpuset cpu io memory pids\n"),
            ["cpuset", "cpu", "io", "memory", "pids"]
        );
        assert!(parse_controllers("\n").is_empty());
    }
}
