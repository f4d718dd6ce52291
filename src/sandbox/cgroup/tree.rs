//! podrun's cgroups: `<mount>/podrun/<pod-uid>/` for a pod and
//! `<pod-uid>/<container>/` for each container; processes live only in the
//! leaves. Values come from the plan; a value whose controller this host
//! does not offer in the cgroup2 tree is not written but reported, so the
//! caller can say once that it is not enforced.

use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::mount::CgroupError;
use crate::plan::CgroupFiles;

/// The controllers podrun delegates down its tree when the host offers them.
const WANTED: [&str; 5] = ["cpu", "memory", "pids", "hugetlb", "io"];

/// What writing a set of cgroup files did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: Vec<String>,
    /// Controllers whose files could not be written because the cgroup does
    /// not have them (on hybrid hosts: cpu, memory, pids).
    pub unenforced: BTreeSet<String>,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes an existing cgroup file (never creates one).
fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let result = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(CgroupError::Create {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes an empty cgroup; gone already is fine.
fn rmdir(path: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(CgroupError::Remove {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The controllers available in a cgroup (its `cgroup.controllers`).
fn controllers(dir: &Path) -> Result<BTreeSet<String>, CgroupError> {
    let path = dir.join("cgroup.controllers");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.split_whitespace().map(str::to_owned).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Lets the children of `dir` use every wanted controller `dir` has.
fn delegate(dir: &Path) -> Result<(), CgroupError> {
    let have = controllers(dir)?;
    let enable: Vec<String> = WANTED
        .iter()
        .filter(|c| have.contains(**c))
        .map(|c| format!("+{c}"))
        .collect();
    if enable.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &enable.join(" "))
}

/// Writes the plan's files into `dir`, skipping (and reporting) those whose
/// controller the cgroup does not have.
fn apply(dir: &Path, files: &CgroupFiles) -> Result<Applied, CgroupError> {
    let have = controllers(dir)?;
    let mut applied = Applied::default();
    for (name, value) in files {
        let controller = name.split('.').next().unwrap_or_default();
        if have.contains(controller) {
            write(&dir.join(name), value)?;
            applied.written.push(name.clone());
        } else {
            applied.unenforced.insert(controller.to_owned());
        }
    }
    Ok(applied)
}

/// One path component that names a cgroup: no `/`, not `.` or `..`.
fn component(name: &str) -> Result<&str, CgroupError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CgroupError::BadName(name.to_owned()));
    }
    Ok(name)
}

/// `<mount>/podrun`, the parent of every pod's cgroup.
#[derive(Debug, Clone)]
pub struct PodrunRoot {
    dir: PathBuf,
}

impl PodrunRoot {
    pub fn at(mount: &Path) -> PodrunRoot {
        PodrunRoot {
            dir: mount.join("podrun"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `podrun/` and delegates the controllers down to it and from it.
    pub fn ensure(&self) -> Result<(), CgroupError> {
        if let Some(mount) = self.dir.parent() {
            delegate(mount)?;
        }
        mkdir(&self.dir)?;
        delegate(&self.dir)
    }

    pub fn pod(&self, uid: &str) -> Result<PodCgroup, CgroupError> {
        Ok(PodCgroup {
            dir: self.dir.join(component(uid)?),
        })
    }

    /// The pods that have a cgroup, for cleaning up after dead supervisors.
    pub fn pods(&self) -> Result<Vec<String>, CgroupError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut pods: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        pods.sort();
        Ok(pods)
    }
}

/// A pod's cgroup.
#[derive(Debug, Clone)]
pub struct PodCgroup {
    dir: PathBuf,
}

impl PodCgroup {
    /// The pod cgroup at `dir`, as recorded in a pod's state.
    pub fn at(dir: &Path) -> PodCgroup {
        PodCgroup {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the pod cgroup with the plan's values and delegates the
    /// controllers to its containers.
    pub fn create(&self, files: &CgroupFiles) -> Result<Applied, CgroupError> {
        mkdir(&self.dir)?;
        let applied = apply(&self.dir, files)?;
        delegate(&self.dir)?;
        Ok(applied)
    }

    pub fn container(&self, name: &str) -> Result<ContainerCgroup, CgroupError> {
        Ok(ContainerCgroup {
            dir: self.dir.join(component(name)?),
        })
    }

    /// Kills every process in the pod's cgroups at once (`cgroup.kill`).
    pub fn kill(&self) -> Result<(), CgroupError> {
        write(&self.dir.join("cgroup.kill"), "1")
    }

    /// Waits until no process is left, for at most `timeout`; whether none
    /// is. The kernel wakes a poller of `cgroup.events` (POLLPRI) when
    /// `populated` changes, so this returns as soon as the last one goes.
    pub fn wait_empty(&self, timeout: Duration) -> Result<bool, CgroupError> {
        let path = self.dir.join("cgroup.events");
        let failed = |source| CgroupError::Read {
            path: path.clone(),
            source,
        };
        let file = fs::File::open(&path).map_err(failed)?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut buf = [0u8; 128];
            let n = file.read_at(&mut buf, 0).map_err(failed)?;
            if !is_populated(&String::from_utf8_lossy(&buf[..n])) {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            // Capped: a change between the read and the poll is seen at
            // the next look at most 50 ms later.
            let ms = left.min(Duration::from_millis(50)).as_millis() as u16;
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(failed(e.into())),
            }
        }
    }

    /// Removes the container cgroups, then the pod's. Idempotent; fails
    /// while processes remain (kill first).
    pub fn remove(&self) -> Result<(), CgroupError> {
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.filter_map(Result::ok) {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        rmdir(&entry.path())?;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(CgroupError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        rmdir(&self.dir)
    }
}

fn populated(dir: &Path) -> Result<bool, CgroupError> {
    Ok(is_populated(&read(&dir.join("cgroup.events"))?))
}

fn is_populated(events: &str) -> bool {
    events
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["populated", "1"])
}

/// A container's cgroup, a leaf of its pod's.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    dir: PathBuf,
}

impl ContainerCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn create(&self, files: &CgroupFiles) -> Result<Applied, CgroupError> {
        mkdir(&self.dir)?;
        apply(&self.dir, files)
    }

    /// Where a process is placed (written by the parent before the child
    /// runs, when CLONE_INTO_CGROUP is not available).
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// How many times the kernel's OOM killer has killed in this cgroup
    /// (`memory.events` oom_kill); 0 without the memory controller.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let path = self.dir.join("memory.events");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(CgroupError::Read { path, source }),
        };
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    pub fn populated(&self) -> Result<bool, CgroupError> {
        populated(&self.dir)
    }

    pub fn remove(&self) -> Result<(), CgroupError> {
        rmdir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory standing in for cgroupfs: the kernel makes a cgroup's
    /// files itself, so the tests lay out the ones they need.
    struct FakeFs(PathBuf);

    impl FakeFs {
        fn new(tag: &str) -> FakeFs {
            let dir =
                std::env::temp_dir().join(format!("podrun-cgroup-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            FakeFs(dir)
        }

        fn cgroup(&self, rel: &str, controllers: &str, files: &[&str]) -> PathBuf {
            let dir = self.0.join(rel);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
            for f in ["cgroup.subtree_control", "cgroup.kill", "cgroup.procs"]
                .iter()
                .chain(files)
            {
                fs::write(dir.join(f), "").unwrap();
            }
            dir
        }
    }

    impl Drop for FakeFs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn files(pairs: &[(&str, &str)]) -> CgroupFiles {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn writes_the_plan_and_delegates_controllers() {
        let fs_ = FakeFs::new("write");
        fs_.cgroup("", "cpuset cpu io memory hugetlb pids rdma", &[]);
        fs_.cgroup("podrun", "cpu io memory hugetlb pids", &[]);
        let pod_dir = fs_.cgroup(
            "podrun/uid1",
            "cpu memory pids",
            &["cpu.max", "cpu.weight", "memory.max", "pids.max"],
        );
        let root = PodrunRoot::at(&fs_.0);
        root.ensure().unwrap();
        assert_eq!(
            fs::read_to_string(fs_.0.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids +hugetlb +io"
        );
        let pod = root.pod("uid1").unwrap();
        let applied = pod
            .create(&files(&[
                ("cpu.max", "120000 100000"),
                ("cpu.weight", "67"),
                ("memory.max", "max"),
                ("pids.max", "max"),
            ]))
            .unwrap();
        assert!(applied.unenforced.is_empty());
        assert_eq!(
            fs::read_to_string(pod_dir.join("cpu.max")).unwrap(),
            "120000 100000"
        );
        assert_eq!(
            fs::read_to_string(pod_dir.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        assert_eq!(root.pods().unwrap(), ["uid1"]);
    }

    #[test]
    fn reports_what_a_hybrid_host_cannot_enforce() {
        let fs_ = FakeFs::new("hybrid");
        fs_.cgroup("podrun/uid2", "hugetlb", &["hugetlb.2MB.max"]);
        let pod = PodrunRoot::at(&fs_.0).pod("uid2").unwrap();
        let applied = pod
            .create(&files(&[
                ("cpu.max", "max 100000"),
                ("memory.max", "1024"),
                ("pids.max", "max"),
                ("hugetlb.2MB.max", "0"),
            ]))
            .unwrap();
        assert_eq!(applied.written, ["hugetlb.2MB.max"]);
        assert_eq!(
            applied.unenforced.into_iter().collect::<Vec<_>>(),
            ["cpu", "memory", "pids"]
        );
    }

    #[test]
    fn names_must_be_one_component() {
        let root = PodrunRoot::at(Path::new("/nonexistent"));
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(
                matches!(root.pod(bad), Err(CgroupError::BadName(_))),
                "{bad:?}"
            );
        }
        let pod = root.pod("uid").unwrap();
        assert!(matches!(
            pod.container("../etc"),
            Err(CgroupError::BadName(_))
        ));
    }

    #[test]
    fn events_and_oom_kills() {
        let fs_ = FakeFs::new("events");
        let dir = fs_.cgroup("podrun/uid3/web", "memory", &[]);
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        let c = PodrunRoot::at(&fs_.0)
            .pod("uid3")
            .unwrap()
            .container("web")
            .unwrap();
        assert!(c.populated().unwrap());
        assert_eq!(c.oom_kills().unwrap(), 1);
        fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(!c.populated().unwrap());
    }

    #[test]
    fn waits_for_an_empty_pod_cgroup_until_its_timeout() {
        let fs_ = FakeFs::new("wait");
        let dir = fs_.cgroup("podrun/uid5", "memory", &[]);
        let pod = PodrunRoot::at(&fs_.0).pod("uid5").unwrap();
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(!pod.wait_empty(Duration::from_millis(20)).unwrap());
        fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(pod.wait_empty(Duration::ZERO).unwrap());
        fs::remove_file(dir.join("cgroup.events")).unwrap();
        assert!(matches!(
            pod.wait_empty(Duration::ZERO),
            Err(CgroupError::Read { .. })
        ));
    }

    #[test]
    fn remove_is_bottom_up_and_idempotent() {
        let fs_ = FakeFs::new("remove");
        let pod = PodrunRoot::at(&fs_.0).pod("uid4").unwrap();
        // Plain directories here (cgroupfs has no removable files in them).
        fs::create_dir_all(fs_.0.join("podrun/uid4/web")).unwrap();
        fs::create_dir_all(fs_.0.join("podrun/uid4/proxy")).unwrap();
        pod.remove().unwrap();
        assert!(!pod.dir().exists());
        pod.remove().unwrap();
    }
}
