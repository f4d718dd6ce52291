//! A pod's sandbox on the host: its directories, cgroup, pinned namespaces,
//! `/dev/shm` and volumes; and teardown, which needs nothing but the
//! directories and the cgroup path (so it works after a supervisor died).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::cgroup::{Applied, CgroupError, PodCgroup, PodrunRoot};
use super::namespaces::{self, Kind, NamespaceError};
use super::volumes::{self, VolumeError};
use crate::api::runtime::SandboxConfig;
use crate::network;
use crate::paths::{PodDirs, RUN_ROOT};

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(
        "pod {0:?} already exists: stop it with `podrun down {0}` and remove it with `podrun rm {0}`"
    )]
    Exists(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    PidNamespace(#[from] super::pidns::PidNamespaceError),
    #[error(transparent)]
    Etc(#[from] super::etc::EtcError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount {what} at {path}: {}", errno.desc())]
    Mount {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("cannot unmount {path}: {}", errno.desc())]
    Unmount { path: PathBuf, errno: Errno },
    #[error("processes of the pod are still running after cgroup.kill")]
    StillRunning,
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PodError + '_ {
    move |source| PodError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a created sandbox holds.
#[derive(Debug)]
pub struct Sandbox {
    pub cgroup: PodCgroup,
    pub applied: Applied,
    pub namespaces: Vec<Kind>,
    /// Volume name → its data on the host.
    pub volumes: BTreeMap<String, PathBuf>,
    /// The pod's own PID namespace, with shareProcessNamespace.
    pub shared_pid: Option<super::pidns::SharedPidNamespace>,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` for its
    /// containers: the file on the host, the path in a container.
    pub etc_files: Vec<(PathBuf, String)>,
    /// Its addresses on the node's network (the node's own with
    /// hostNetwork).
    pub pod_ips: Vec<IpAddr>,
    /// The node's addresses, as the kubelet picks its node IP.
    pub node_ips: Vec<IpAddr>,
}

/// A claimed pod name: its run directory, made exclusively and locked
/// until the pod's state is saved in it. From then on the state tells
/// whether the pod's supervisor lives; before, only this lock does.
pub struct Claim {
    _lock: Flock<fs::File>,
}

/// Claims the pod's name: its run directory is made exclusively (once
/// more after removing the directory of a supervisor that died before it
/// saved the pod's state there).
pub fn claim(dirs: &PodDirs, name: &str) -> Result<Claim, PodError> {
    let parent = dirs.run.parent().unwrap_or(Path::new(RUN_ROOT));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(io(parent))?;
    let exists = || PodError::Exists(name.to_owned());
    let mut removed_stale = false;
    // Between the mkdir and the lock, another podrun may take the new
    // directory for a dead claim and remove it (and a third make it
    // again): the lock then holds a directory no longer there, so the
    // claim starts over.
    for _ in 0..3 {
        match fs::DirBuilder::new().mode(0o700).create(&dirs.run) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if removed_stale || !remove_stale_claim(&dirs.run)? {
                    return Err(exists());
                }
                removed_stale = true;
                continue;
            }
            Err(e) => return Err(io(&dirs.run)(e)),
        }
        let dir = match fs::File::open(&dirs.run) {
            Ok(dir) => dir,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dirs.run)(e)),
        };
        let lock = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Err(exists()),
            Err((_, errno)) => return Err(io(&dirs.run)(errno.into())),
        };
        let held = lock.metadata().map_err(io(&dirs.run))?;
        match fs::symlink_metadata(&dirs.run) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                return Ok(Claim { _lock: lock });
            }
            Ok(_) => return Err(exists()),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dirs.run)(e)),
        }
    }
    Err(exists())
}

/// Removes the run directory `run` of a pod whose supervisor died between
/// claiming the name and saving the pod's state there (nothing else of
/// the pod exists yet then). Whether it did: not when the directory has a
/// state file, is still claimed, or is not there.
pub fn remove_stale_claim(run: &Path) -> Result<bool, PodError> {
    let has_state = || run.join("state.json").exists();
    if has_state() {
        return Ok(false);
    }
    let dir = match fs::File::open(run) {
        Ok(dir) => dir,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(run)(e)),
    };
    let _lock = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(false),
        Err((_, errno)) => return Err(io(run)(errno.into())),
    };
    // Saved between the first look and the lock: a live pod.
    if has_state() {
        return Ok(false);
    }
    remove_dir_all(run)?;
    Ok(true)
}

fn mkdirs(path: &Path, mode: u32) -> Result<(), PodError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io(path))
}

fn mount_tmpfs(what: &'static str, path: &Path, options: &str) -> Result<(), PodError> {
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(options),
    )
    .map_err(|errno| PodError::Mount {
        what,
        path: path.to_owned(),
        errno,
    })
}

/// Builds the sandbox of a claimed pod, on `network` unless it has the
/// host's. The caller tears down on error.
pub fn create(
    dirs: &PodDirs,
    config: &SandboxConfig,
    cgroup_root: &PodrunRoot,
    network: Option<network::Prepared>,
) -> Result<Sandbox, PodError> {
    mkdirs(&dirs.data, 0o750)?;
    mkdirs(&dirs.logs, 0o750)?;
    cgroup_root.ensure()?;
    let cgroup = cgroup_root.pod(&config.uid)?;
    let applied = cgroup.create(&config.cgroup)?;

    let ns = config.namespaces;
    let kinds = namespaces::wanted(ns.host_network, ns.host_ipc);
    namespaces::create(&dirs.ns(), &kinds, &config.hostname)?;
    // Read once: the network's `dns` capability and `/etc/resolv.conf`.
    let resolv = super::etc::pod_resolv(config);
    let node_ips = super::host::node_ips();
    let pod_ips = match network {
        Some(prepared) => {
            let request = network::Request {
                namespace: &config.namespace,
                name: &config.name,
                uid: &config.uid,
                port_mappings: &config.port_mappings,
                bandwidth: config.bandwidth,
                annotations: &config.annotations,
                cgroup_path: cgroup.dir(),
                dns: (&resolv.nameservers, &resolv.searches, &resolv.options),
            };
            let netns = namespaces::pin_path(&dirs.ns(), Kind::Net);
            network::attach(
                prepared,
                &request,
                &netns,
                &dirs.network(),
                Path::new(RUN_ROOT),
            )?
            .pod_ips()
        }
        // A hostNetwork pod's addresses are the node's, as the kubelet
        // reports them.
        None => node_ips.clone(),
    };

    if !ns.host_ipc {
        // The pod's /dev/shm, shared by its containers (64 MiB, as
        // containerd's sandbox has).
        mkdirs(&dirs.shm(), 0o755)?;
        mount_tmpfs("/dev/shm", &dirs.shm(), "mode=1777,size=65536k")?;
    }

    let mut volumes = BTreeMap::new();
    for v in &config.volumes {
        // A tmpfs made here is unmounted by teardown, as every mount
        // under the pod's data directory is.
        let prepared = volumes::set_up(&dirs.data, v)?;
        volumes.insert(prepared.name, prepared.host_path);
    }
    let etc_files = super::etc::create(&dirs.etc(), config, &resolv, &pod_ips)?;
    let shared_pid = ns
        .share_pid
        .then(|| super::pidns::create(&cgroup))
        .transpose()?;
    Ok(Sandbox {
        cgroup,
        applied,
        namespaces: kinds,
        volumes,
        shared_pid,
        etc_files,
        pod_ips,
        node_ips,
    })
}

/// Mount points under `dirs` in this mount namespace, deepest first.
fn mounts_under(mountinfo: &str, prefixes: &[&Path]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = super::mountinfo::entries(mountinfo)
        .map(|(mount_point, _)| mount_point)
        .filter(|p| prefixes.iter().any(|prefix| p.starts_with(prefix)))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn remove_dir_all(path: &Path) -> Result<(), PodError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Kills what is left in the pod's cgroup and waits until it is empty.
pub fn kill_all(cgroup: &PodCgroup) -> Result<(), PodError> {
    if !cgroup.dir().exists() {
        return Ok(());
    }
    cgroup.kill()?;
    if cgroup.wait_empty(Duration::from_secs(10))? {
        Ok(())
    } else {
        Err(PodError::StillRunning)
    }
}

/// Removes everything of the pod but its state file and logs: processes,
/// mounts, pinned namespaces, container stages, volumes (hostPath data is
/// the host's and stays) and cgroups. Idempotent.
pub fn teardown(dirs: &PodDirs, cgroup: &PodCgroup) -> Result<(), PodError> {
    kill_all(cgroup)?;
    // Off the network while its namespace is still pinned; a DEL that
    // fails leaves the record for the next teardown, and the rest goes on.
    let detached = network::detach(&dirs.network());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io(Path::new("/proc/self/mountinfo")))?;
    // The node's pinned namespace stays while a DEL is still owed there.
    let owed = detached
        .is_err()
        .then(|| network::node_pin(&dirs.network()));
    for path in mounts_under(&mountinfo, &[&dirs.run, &dirs.data]) {
        if owed.as_ref() == Some(&path) {
            continue;
        }
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(PodError::Unmount { path, errno }),
        }
    }
    namespaces::remove(&dirs.ns())?;
    match fs::remove_file(dirs.run.join("api.sock")) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(&dirs.run)(e)),
        _ => {}
    }
    remove_dir_all(&dirs.run.join("containers"))?;
    remove_dir_all(&dirs.shm())?;
    remove_dir_all(&dirs.data)?;
    cgroup.remove()?;
    Ok(detached?)
}

/// Removes what teardown keeps: the state directory and the logs (and so
/// a network record whose DEL kept failing: the node's namespace pinned
/// for it is let go).
pub fn forget(dirs: &PodDirs) -> Result<(), PodError> {
    let _ = umount2(&network::node_pin(&dirs.network()), MntFlags::MNT_DETACH);
    remove_dir_all(&dirs.run)?;
    remove_dir_all(&dirs.logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pods_mounts_deepest_first() {
        let info = "\
27 1 254:0 / / rw - ext4 /dev/vda rw
90 27 0:50 / /run/podrun/web/ns/net rw - nsfs nsfs rw
91 27 0:51 / /run/podrun/web/shm rw - tmpfs tmpfs rw
92 27 0:52 / /var/lib/podrun/pods/u1/volumes/kubernetes.io~empty-dir/m\\040x rw - tmpfs tmpfs rw
93 27 0:53 / /run/podrun/webby/shm rw - tmpfs tmpfs rw
";
        let dirs = PodDirs::new("web", "u1");
        assert_eq!(
            mounts_under(info, &[&dirs.run, &dirs.data]),
            [
                PathBuf::from("/var/lib/podrun/pods/u1/volumes/kubernetes.io~empty-dir/m x"),
                PathBuf::from("/run/podrun/web/ns/net"),
                PathBuf::from("/run/podrun/web/shm"),
            ]
        );
    }

    #[test]
    fn only_an_unclaimed_run_directory_without_state_is_stale() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("web");
        assert!(!remove_stale_claim(&run).unwrap(), "no directory");

        fs::create_dir(&run).unwrap();
        let held = Flock::lock(fs::File::open(&run).unwrap(), FlockArg::LockExclusive).unwrap();
        assert!(!remove_stale_claim(&run).unwrap(), "a supervisor claims it");
        drop(held);

        fs::write(run.join("state.json"), "{}").unwrap();
        assert!(!remove_stale_claim(&run).unwrap(), "a pod with state");
        fs::remove_file(run.join("state.json")).unwrap();

        fs::write(run.join("state.json.tmp"), "{").unwrap();
        assert!(remove_stale_claim(&run).unwrap(), "its claimant died");
        assert!(!run.exists());
    }

    #[test]
    fn a_name_is_claimed_once_until_its_claimant_dies() {
        let root = tempfile::tempdir().unwrap();
        let dirs = PodDirs {
            run: root.path().join("run/web"),
            data: root.path().join("data"),
            logs: root.path().join("logs"),
        };
        let first = claim(&dirs, "web").unwrap();
        assert!(matches!(claim(&dirs, "web"), Err(PodError::Exists(n)) if n == "web"));
        // Its supervisor died before saving any state: the name is free.
        drop(first);
        let second = claim(&dirs, "web").unwrap();
        fs::write(dirs.run.join("state.json"), "{}").unwrap();
        drop(second);
        // A saved pod keeps its name whether its supervisor lives or not.
        assert!(matches!(claim(&dirs, "web"), Err(PodError::Exists(_))));
    }
}
