//! A container's filesystem view: its root (`rootfs:DIR` or the host's own
//! `rootfs:/`) bound at a staging directory, a fresh `/proc`, a read-only
//! `/sys`, a small `/dev`, the pod's `/dev/shm`, the volume mounts, then
//! pivot_root. The parent prepares mount points and builds the steps; the
//! child only runs them.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::libc::{self, c_ulong};

use super::step::Step;
use crate::api::runtime::{RootfsFormError, is_rootfs, rootfs_dir};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Form(#[from] RootfsFormError),
    #[error("rootfs {0}: not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "mountPath {0:?}: rootfs:/ mounts only on paths the host already has (podrun does not create them in the host's root)"
    )]
    MissingOnHost(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("{0:?}: too many levels of symbolic links")]
    Loop(String),
    #[error("rootfs {0}: inside podrun's own directory {1}, which no container may see")]
    OwnDirectory(PathBuf, PathBuf),
    #[error("subPath {0}: changed while it was being mounted")]
    SubPathChanged(PathBuf),
    #[error(
        "{target}: the read-only volume mounted at {volume} has no such path, and podrun does not write into a read-only volume"
    )]
    InReadOnlyVolume { target: String, volume: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `rootfs:/`: the host's own root, seen through the container's
    /// private mount namespace.
    Host,
    /// `rootfs:DIR`: that directory as `/`.
    Dir(PathBuf),
}

impl Root {
    /// `rootfs:...`: a root podrun takes as it is, not an image of the
    /// store.
    pub fn is_rootfs(image: &str) -> bool {
        is_rootfs(image)
    }

    /// The root a `rootfs:` image names; one inside podrun's own
    /// directories (`OWN_DIRS`) is refused.
    pub fn from_image(image: &str) -> Result<Root, RootfsError> {
        let own = crate::paths::own_dirs();
        Root::from_image_outside(image, &own)
    }

    fn from_image_outside(image: &str, own: &[PathBuf]) -> Result<Root, RootfsError> {
        match rootfs_dir(image)? {
            "/" => Ok(Root::Host),
            dir => {
                let real = real_path(Path::new(dir));
                match own.iter().find(|o| real.starts_with(real_path(o))) {
                    Some(o) => Err(RootfsError::OwnDirectory(real, o.clone())),
                    None => Ok(Root::Dir(PathBuf::from(dir))),
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Root::Host => Path::new("/"),
            Root::Dir(dir) => dir,
        }
    }
}

/// How a volume mount follows mounts made later on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Kubernetes' `None`: private.
    Private,
    /// `HostToContainer`: a slave of the host's mount.
    Slave,
    /// `Bidirectional`: shared both ways (privileged containers only).
    Shared,
}

/// One volume mount: a host path bound at a path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
    /// Mount points for volumes mounted under it may be made in `source`
    /// though it is read-only: the directory of a configMap, secret,
    /// downwardAPI or projected volume, podrun's own on the host (where
    /// the kubelet's MakeNestedMountpoints makes them too).
    pub mount_points: bool,
    pub propagation: Propagation,
    /// Left out, rather than an error, where the host's root has no such
    /// path (the pod's `/etc` files on `rootfs:/`).
    pub optional: bool,
    /// `source` is a subPath resolved inside a volume that containers
    /// write: it is mounted from a tree cloned of it (`pin_sub_paths`).
    pub sub_path: bool,
    /// That clone, a detached mount held open by `pin_sub_paths`' caller.
    pub tree: Option<i32>,
}

/// What the container's view is made of.
#[derive(Debug, Clone)]
pub struct View {
    pub root: Root,
    /// Host directories hidden (under an empty read-only tmpfs) where they
    /// are inside the root: podrun's own, for a root that is the host's.
    pub hidden: Vec<PathBuf>,
    /// An empty directory the root is bound at before pivot_root.
    pub stage: PathBuf,
    /// The pod's shared `/dev/shm` (the host's with hostIPC).
    pub shm: PathBuf,
    pub mounts: Vec<BindMount>,
    pub read_only_root: bool,
    pub privileged: bool,
}

/// Resolves `path` inside `root` as the container would see it: symlinks
/// are followed relative to `root` and `..` stops at it, so the result is
/// always under `root` (filepath-securejoin's rule).
pub fn secure_join(root: &Path, path: &str) -> Result<PathBuf, RootfsError> {
    Ok(root.join(resolve(path, |inside| root.join(inside))?))
}

/// Resolves `path` by that rule in a tree `on_host` maps (a path inside,
/// relative, to where it is on the host) and returns it relative: where
/// it does not exist, its names are taken as they are.
fn resolve(path: &str, on_host: impl Fn(&Path) -> PathBuf) -> Result<PathBuf, RootfsError> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        let host = on_host(&next);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(RootfsError::Loop(path.to_owned()));
                }
                let target = fs::read_link(&host).map_err(io(&host))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(p) => pending.push(p.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = next,
        }
    }
    Ok(resolved)
}

/// A volume mounted so far, as the child will have it.
struct Layer {
    /// Its mount point inside, relative and resolved.
    inside: PathBuf,
    source: PathBuf,
    /// No mount point may be made in it.
    read_only: bool,
}

/// The container's tree as the child will have built it when it reaches
/// a mount: the root with each directory volume mounted so far on top. A
/// mount point under a volume must be made in that volume (where runc,
/// making it after the mounts before it, makes it too), not in the root
/// where the volume hides it.
struct Layers<'a> {
    root: &'a Path,
    volumes: Vec<Layer>,
}

impl Layers<'_> {
    /// The volume `inside` is on, if any (the deepest one).
    fn owner(&self, inside: &Path) -> Option<&Layer> {
        self.volumes
            .iter()
            .filter(|v| inside.starts_with(&v.inside))
            .max_by_key(|v| v.inside.components().count())
    }

    /// The host directory `inside` is under, and its path from there.
    fn locate<'p>(&self, inside: &'p Path) -> (&Path, &'p Path) {
        match self.owner(inside) {
            Some(v) => (&v.source, inside.strip_prefix(&v.inside).unwrap_or(inside)),
            None => (self.root, inside),
        }
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, RootfsError> {
        resolve(path, |inside| {
            let (base, rel) = self.locate(inside);
            base.join(rel)
        })
    }
}

fn cstr(path: &Path) -> Result<CString, RootfsError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| RootfsError::Nul(path.display().to_string()))
}

/// Makes a mount point at `rel` under the directory `base` (a directory,
/// or a file for a file source) where there is none. Each name is reached
/// without following a symlink, so a container that shares a volume and
/// swaps a directory for a symlink cannot have one made outside it.
fn make_mount_point(base: &Path, rel: &Path, source_is_dir: bool) -> Result<(), RootfsError> {
    use nix::errno::Errno;
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let fail = |e: Errno| io(&base.join(rel))(std::io::Error::from(e));
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = names.split_last() else {
        return Ok(());
    };
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::open(
        base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    for name in parents {
        match mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(fail(e)),
        }
        dir = openat(&dir, *name, dir_flags, Mode::empty()).map_err(fail)?;
    }
    let made = if source_is_dir {
        mkdirat(&dir, *last, Mode::from_bits_truncate(0o755))
    } else {
        openat(
            &dir,
            *last,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    };
    match made {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
const PROC_READ_ONLY: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];
/// containerd's masked paths: files are covered by /dev/null, directories
/// by an empty read-only tmpfs.
const MASKED: [&str; 11] = [
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

fn propagation_flags(p: Propagation) -> c_ulong {
    match p {
        Propagation::Private => libc::MS_PRIVATE,
        Propagation::Slave => libc::MS_SLAVE,
        Propagation::Shared => libc::MS_SHARED,
    }
}

/// Clones each subPath source as a detached mount tree before the clone,
/// which the child attaches rather than binding the path by name: a
/// container sharing the volume could swap a directory on the path for a
/// symlink between the subPath's resolution and a mount by name. The
/// trees must stay open until the child has attached them.
pub fn pin_sub_paths(mounts: &mut [BindMount]) -> Result<Vec<OwnedFd>, RootfsError> {
    let mut trees = Vec::new();
    for m in mounts.iter_mut().filter(|m| m.sub_path) {
        let fd = open_resolved(&m.source)?;
        let flags = libc::OPEN_TREE_CLONE
            | libc::OPEN_TREE_CLOEXEC
            | libc::AT_EMPTY_PATH as libc::c_uint
            | libc::AT_RECURSIVE as libc::c_uint;
        // SAFETY: open_tree(2) on a descriptor we own, with an empty path.
        let tree =
            unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
        if tree < 0 {
            return Err(io(&m.source)(std::io::Error::last_os_error()));
        }
        // SAFETY: open_tree returned a new descriptor, ours alone.
        let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
        m.tree = Some(tree.as_raw_fd());
        trees.push(tree);
    }
    Ok(trees)
}

/// Opens `path` (`O_PATH`), which must still be that path once open: a
/// directory on it swapped for a symlink since it was resolved is
/// refused.
fn open_resolved(path: &Path) -> Result<OwnedFd, RootfsError> {
    let fd: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .map_err(io(path))?
        .into();
    let link = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if fs::read_link(&link).map_err(io(&link))? != path {
        return Err(RootfsError::SubPathChanged(path.to_owned()));
    }
    Ok(fd)
}

/// The path with every symlink resolved where it exists, by name only
/// where it does not.
fn real_path(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| lexical(&path.to_string_lossy()))
}

/// Where each of `hidden` is under `root` (relative paths); those not
/// there (or not on this host) are left out.
fn hidden_under(root: &Path, hidden: &[PathBuf]) -> Vec<PathBuf> {
    let root = real_path(root);
    hidden
        .iter()
        .filter_map(|h| fs::canonicalize(h).ok())
        .filter_map(|h| h.strip_prefix(&root).ok().map(Path::to_owned))
        .filter(|rel| !rel.as_os_str().is_empty())
        .collect()
}

/// An absolute path with `.` and `..` resolved by their names only.
fn lexical(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The per-mount flags of the mount `path` is on, which a bind remount
/// must repeat. Paths only the child will see (its fresh /proc) are
/// nosuid, nodev and noexec, as that /proc is.
fn locked_flags(path: &Path) -> c_ulong {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(stat) = statvfs(path) else {
        return libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    };
    let f = stat.flags();
    [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| f.contains(*st))
    .fold(0, |acc, (_, ms)| acc | ms)
}

struct Steps {
    steps: Vec<Step>,
}

impl Steps {
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: c_ulong,
        data: Option<&str>,
    ) -> Result<(), RootfsError> {
        let text = |s: &str| CString::new(s).map_err(|_| RootfsError::Nul(s.to_owned()));
        self.steps.push(Step::Mount {
            source: source.map(cstr).transpose()?,
            target: cstr(target)?,
            fstype: fstype.map(text).transpose()?,
            flags,
            data: data.map(text).transpose()?,
        });
        Ok(())
    }

    fn flags(&mut self, target: &Path, flags: c_ulong) -> Result<(), RootfsError> {
        self.mount(None, target, None, flags, None)
    }

    /// Binds `source` at `target`; read-only keeps the flags the source's
    /// mount has (a read-only remount replaces them all: without this a
    /// nosuid, nodev mount would lose both).
    fn bind(&mut self, source: &Path, target: &Path, read_only: bool) -> Result<(), RootfsError> {
        self.mount(
            Some(source),
            target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        if read_only {
            self.read_only(source, target)?;
        }
        Ok(())
    }

    fn read_only(&mut self, source: &Path, target: &Path) -> Result<(), RootfsError> {
        let keep = locked_flags(source);
        self.flags(
            target,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
        )
    }

    /// A volume mount: the tree pinned for it attached, or its source
    /// bound.
    fn volume(&mut self, m: &BindMount, target: &Path) -> Result<(), RootfsError> {
        let Some(tree) = m.tree else {
            return self.bind(&m.source, target, m.read_only);
        };
        self.steps.push(Step::Attach {
            tree,
            source: cstr(&m.source)?,
            target: cstr(target)?,
        });
        if m.read_only {
            self.read_only(&m.source, target)?;
        }
        Ok(())
    }

    /// Makes the steps added since `from` ones that a missing path skips
    /// (not every kernel has every file of /proc and /sys).
    fn optional_since(&mut self, from: usize) {
        let optional: Vec<Step> = self.steps.drain(from..).collect();
        self.steps.extend(
            optional
                .into_iter()
                .map(|step| Step::IfExists(Box::new(step))),
        );
    }

    fn push(
        &mut self,
        step: impl FnOnce() -> Result<Step, RootfsError>,
    ) -> Result<(), RootfsError> {
        self.steps.push(step()?);
        Ok(())
    }
}

/// Prepares the mount points (in the parent) and returns the child's steps.
pub fn build(view: &View) -> Result<Vec<Step>, RootfsError> {
    let root = view.root.path();
    if !root.is_dir() {
        return Err(RootfsError::NotADirectory(root.to_owned()));
    }
    let stage = &view.stage;
    let at = |inside: &str| stage.join(inside);
    let mut layers = Layers {
        root,
        volumes: Vec::new(),
    };
    if let Root::Dir(dir) = &view.root {
        for d in ["proc", "sys", "dev"] {
            make_mount_point(dir, &layers.resolve(d)?, true)?;
        }
    }
    let mut s = Steps { steps: Vec::new() };
    // Mounts the host makes later reach the container, never the reverse.
    s.flags(Path::new("/"), libc::MS_REC | libc::MS_SLAVE)?;
    s.bind(root, stage, false)?;
    // A root that holds podrun's own directories (the host's) gets them
    // empty: a container must not reach its pod's API socket, nor other
    // pods' state, volumes and logs. Volumes come after, on top.
    for rel in hidden_under(root, &view.hidden) {
        s.mount(
            Some(Path::new("tmpfs")),
            &stage.join(rel),
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=0755,size=4k"),
        )?;
    }

    // A fresh /proc for the container's PID namespace, its kernel knobs
    // read-only and its leaky files masked (as runc does).
    s.push(|| {
        Ok(Step::Detach {
            target: cstr(&at("proc"))?,
        })
    })?;
    s.mount(
        Some(Path::new("proc")),
        &at("proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    if !view.privileged {
        // Not every kernel has every one of these files.
        let from = s.steps.len();
        for name in PROC_READ_ONLY {
            let path = at("proc").join(name);
            s.bind(&path, &path, true)?;
        }
        s.optional_since(from);
    }
    // A fresh /sys, read-only unless privileged.
    s.push(|| {
        Ok(Step::Detach {
            target: cstr(&at("sys"))?,
        })
    })?;
    let ro = if view.privileged { 0 } else { libc::MS_RDONLY };
    s.mount(
        Some(Path::new("sysfs")),
        &at("sys"),
        Some("sysfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | ro,
        None,
    )?;
    if !view.privileged {
        // The kernel's files: the host's /proc and /sys say which are
        // directories (the container runs on the same kernel).
        let from = s.steps.len();
        for name in MASKED {
            let target = stage.join(name);
            if Path::new("/").join(name).is_dir() {
                s.mount(
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )?;
            } else {
                s.mount(
                    Some(Path::new("/dev/null")),
                    &target,
                    None,
                    libc::MS_BIND,
                    None,
                )?;
            }
        }
        s.optional_since(from);
    }
    // /dev: the host's for a privileged container, else a small tmpfs with
    // the usual devices, its own ptys and the pod's /dev/shm.
    s.push(|| {
        Ok(Step::Detach {
            target: cstr(&at("dev"))?,
        })
    })?;
    if view.privileged {
        s.bind(Path::new("/dev"), &at("dev"), false)?;
    } else {
        s.mount(
            Some(Path::new("tmpfs")),
            &at("dev"),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        for dev in DEVICES {
            let target = at("dev").join(dev);
            s.push(|| {
                Ok(Step::Touch {
                    path: cstr(&target)?,
                })
            })?;
            s.mount(
                Some(&Path::new("/dev").join(dev)),
                &target,
                None,
                libc::MS_BIND,
                None,
            )?;
        }
        s.push(|| {
            Ok(Step::Mkdir {
                path: cstr(&at("dev/pts"))?,
            })
        })?;
        s.mount(
            Some(Path::new("devpts")),
            &at("dev/pts"),
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
        for (target, link) in [
            ("pts/ptmx", "ptmx"),
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ] {
            let link = at("dev").join(link);
            s.push(|| {
                Ok(Step::Symlink {
                    target: cstr(Path::new(target))?,
                    link: cstr(&link)?,
                })
            })?;
        }
        s.push(|| {
            Ok(Step::Mkdir {
                path: cstr(&at("dev/shm"))?,
            })
        })?;
    }
    s.bind(&view.shm, &at("dev/shm"), false)?;

    // Volumes, parents before children.
    let mut mounts = view.mounts.clone();
    mounts.sort_by_key(|m| Path::new(&m.target).components().count());
    for m in &mounts {
        let lexical = lexical(&m.target);
        // /dev, /proc and /sys are the container's own fresh mounts: a
        // target there is not looked for in the root. In the tmpfs /dev the
        // child makes it; /proc and /sys have what the kernel gives.
        let fresh = ["/dev", "/proc", "/sys"]
            .into_iter()
            .find(|top| lexical.starts_with(top) && lexical != Path::new(top));
        if let Some(top) = fresh {
            let target = stage.join(lexical.strip_prefix("/").unwrap_or(&lexical));
            if top == "/dev" && !view.privileged {
                let mut dir = at("dev");
                let parts: Vec<_> = lexical.components().skip(2).collect();
                for part in &parts[..parts.len().saturating_sub(1)] {
                    dir.push(part);
                    let path = cstr(&dir)?;
                    s.push(|| Ok(Step::Mkdir { path }))?;
                }
                let path = cstr(&target)?;
                s.push(|| {
                    Ok(if m.source.is_dir() {
                        Step::Mkdir { path }
                    } else {
                        Step::Touch { path }
                    })
                })?;
            }
            s.volume(m, &target)?;
            s.flags(&target, propagation_flags(m.propagation) | libc::MS_REC)?;
            continue;
        }
        let inside = layers.resolve(&m.target)?;
        let (base, rel) = layers.locate(&inside);
        if fs::symlink_metadata(base.join(rel)).is_err() {
            match layers.owner(&inside) {
                None if view.root == Root::Host => match m.optional {
                    true => continue,
                    false => return Err(RootfsError::MissingOnHost(m.target.clone())),
                },
                Some(v) if v.read_only => {
                    return Err(RootfsError::InReadOnlyVolume {
                        target: m.target.clone(),
                        volume: Path::new("/").join(&v.inside),
                    });
                }
                _ => make_mount_point(base, rel, m.source.is_dir())?,
            }
        }
        let target = stage.join(&inside);
        s.volume(m, &target)?;
        s.flags(&target, propagation_flags(m.propagation) | libc::MS_REC)?;
        if m.source.is_dir() {
            layers.volumes.push(Layer {
                inside,
                source: m.source.clone(),
                read_only: m.read_only && !m.mount_points,
            });
        }
    }
    if view.read_only_root {
        s.flags(
            stage,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked_flags(root),
        )?;
    }
    s.push(|| Ok(Step::Pivot { root: cstr(stage)? }))?;
    Ok(s.steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn volume_at(source: &Path, target: &str, read_only: bool) -> BindMount {
        BindMount {
            source: source.to_owned(),
            target: target.to_owned(),
            read_only,
            mount_points: false,
            propagation: Propagation::Private,
            optional: false,
            sub_path: false,
            tree: None,
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("podrun-rootfs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rootfs_images_are_the_host_or_an_absolute_dir() {
        assert_eq!(Root::from_image("rootfs:/").unwrap(), Root::Host);
        assert_eq!(
            Root::from_image("rootfs:/srv/root").unwrap(),
            Root::Dir(PathBuf::from("/srv/root"))
        );
        assert!(Root::is_rootfs("rootfs:/") && !Root::is_rootfs("busybox:1.36"));
        let err = Root::from_image("rootfs:relative").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image \"rootfs:relative\": a rootfs image is rootfs:/ or rootfs:/ABSOLUTE/DIR"
        );
    }

    #[test]
    fn a_mount_under_dev_is_made_in_the_containers_own_dev() {
        let volume = tempdir("dev-vol");
        let view = View {
            root: Root::Host,
            hidden: Vec::new(),
            stage: PathBuf::from("/stage"),
            shm: PathBuf::from("/dev/shm"),
            mounts: vec![volume_at(
                &volume.join("file"),
                "/dev/net/../net/tun",
                false,
            )],
            read_only_root: false,
            privileged: false,
        };
        fs::write(volume.join("file"), "").unwrap();
        let described: Vec<String> = build(&view).unwrap().iter().map(Step::describe).collect();
        let at = |s: &str| described.iter().position(|d| d == s).unwrap_or(usize::MAX);
        assert!(at("mkdir /stage/dev/net") < at("create /stage/dev/net/tun"));
        assert!(at("create /stage/dev/net/tun") < usize::MAX);
        assert!(described.contains(&format!(
            "mount {} on /stage/dev/net/tun",
            volume.join("file").display()
        )));
        fs::remove_dir_all(&volume).unwrap();
    }

    #[test]
    fn podruns_own_directories_are_hidden_where_the_root_has_them() {
        let host = tempdir("hidden");
        let volume = tempdir("hidden-vol");
        fs::create_dir_all(host.join("run/podrun/web")).unwrap();
        fs::create_dir_all(host.join("var/lib/podrun")).unwrap();
        fs::create_dir_all(host.join("srv")).unwrap();
        // The same root by another name, and a directory that is not there.
        symlink(&host, volume.join("alias")).unwrap();
        let hidden = vec![
            host.join("run/podrun"),
            host.join("var/lib/podrun"),
            host.join("var/log/podrun"),
        ];
        let view = |root: PathBuf| View {
            root: Root::Dir(root),
            hidden: hidden.clone(),
            stage: PathBuf::from("/stage"),
            shm: PathBuf::from("/dev/shm"),
            mounts: vec![volume_at(&volume, "/srv", false)],
            read_only_root: false,
            privileged: false,
        };
        for root in [host.clone(), volume.join("alias/run/..")] {
            let described: Vec<String> = build(&view(root))
                .unwrap()
                .iter()
                .map(Step::describe)
                .collect();
            let at = |s: &str| described.iter().position(|d| d == s);
            let run = at("mount tmpfs on /stage/run/podrun").unwrap();
            let lib = at("mount tmpfs on /stage/var/lib/podrun").unwrap();
            assert!(!described.iter().any(|d| d.contains("var/log")));
            // Right after the root, before anything mounted on top.
            assert_eq!((run, lib), (2, 3), "{described:?}");
            assert!(at(&format!("mount {} on /stage/srv", volume.display())).unwrap() > lib);
        }
        // A root elsewhere has none of them.
        let elsewhere: Vec<String> = build(&view(host.join("srv")))
            .unwrap()
            .iter()
            .map(Step::describe)
            .collect();
        assert!(
            !elsewhere
                .iter()
                .any(|d| d.ends_with("/run/podrun") || d.ends_with("/lib/podrun")),
            "{elsewhere:?}"
        );
        fs::remove_dir_all(&host).unwrap();
        fs::remove_dir_all(&volume).unwrap();
    }

    #[test]
    fn a_sub_path_is_opened_only_where_it_was_resolved() {
        let dir = tempdir("pin");
        fs::create_dir_all(dir.join("vol/a/b")).unwrap();
        fs::create_dir_all(dir.join("outside/b")).unwrap();
        let resolved = crate::sandbox::volumes::resolve_subpath(&dir.join("vol"), "a/b").unwrap();
        let fd = open_resolved(&resolved).unwrap();
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(fs::read_link(link).unwrap(), resolved);
        // A directory on the path swapped for a symlink out of the volume
        // after the resolution: refused.
        fs::rename(dir.join("vol/a"), dir.join("vol/old")).unwrap();
        symlink(dir.join("outside"), dir.join("vol/a")).unwrap();
        let err = open_resolved(&resolved).unwrap_err();
        assert!(matches!(err, RootfsError::SubPathChanged(_)), "{err}");
        let mut mounts = vec![BindMount {
            source: resolved.clone(),
            target: "/mnt".to_owned(),
            read_only: false,
            mount_points: false,
            propagation: Propagation::Private,
            optional: false,
            sub_path: true,
            tree: None,
        }];
        assert!(pin_sub_paths(&mut mounts).is_err());
        assert_eq!(mounts[0].tree, None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pinned_tree_is_attached_and_a_plain_volume_bound() {
        let volume = tempdir("attach");
        let root = tempdir("attach-root");
        let mount = |tree: Option<i32>| BindMount {
            source: volume.clone(),
            target: "/data".to_owned(),
            read_only: true,
            mount_points: false,
            propagation: Propagation::Private,
            optional: false,
            sub_path: tree.is_some(),
            tree,
        };
        let view = |mounts| View {
            root: Root::Dir(root.clone()),
            hidden: Vec::new(),
            stage: PathBuf::from("/stage"),
            shm: PathBuf::from("/dev/shm"),
            mounts,
            read_only_root: false,
            privileged: false,
        };
        for tree in [None, Some(42)] {
            let steps = build(&view(vec![mount(tree)])).unwrap();
            let at = steps
                .iter()
                .position(|s| s.describe() == format!("mount {} on /stage/data", volume.display()))
                .unwrap();
            match (&steps[at], tree) {
                (Step::Attach { tree: 42, .. }, Some(42)) => {}
                (Step::Mount { flags, .. }, None) => assert!(flags & libc::MS_BIND != 0),
                (other, _) => panic!("{other:?}"),
            }
            // Read-only either way, then private.
            assert!(
                matches!(&steps[at + 1], Step::Mount { flags, .. } if flags & libc::MS_RDONLY != 0)
            );
        }
        fs::remove_dir_all(&volume).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_rootfs_inside_podruns_own_directories_is_refused() {
        let own = tempdir("own");
        fs::create_dir_all(own.join("podrun/pods/u/rootfs")).unwrap();
        symlink(own.join("podrun/pods"), own.join("link")).unwrap();
        let dirs = [own.join("podrun")];
        for inside in [
            "podrun",
            "podrun/pods/u/rootfs",
            "link/u",
            "elsewhere/../podrun/x",
        ] {
            let image = format!("rootfs:{}", own.join(inside).display());
            let err = Root::from_image_outside(&image, &dirs).unwrap_err();
            assert!(
                matches!(err, RootfsError::OwnDirectory(..)),
                "{inside}: {err}"
            );
            assert!(
                err.to_string().ends_with("which no container may see"),
                "{err}"
            );
        }
        let beside = format!("rootfs:{}", own.display());
        assert_eq!(
            Root::from_image_outside(&beside, &dirs).unwrap(),
            Root::Dir(own.clone())
        );
        fs::remove_dir_all(&own).unwrap();
    }

    #[test]
    fn secure_join_stays_inside_the_root() {
        let root = tempdir("join");
        fs::create_dir_all(root.join("real")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../..", root.join("real/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(secure_join(&root, "/abs/x").unwrap(), root.join("etc/x"));
        assert_eq!(secure_join(&root, "real/up/y").unwrap(), root.join("y"));
        assert_eq!(secure_join(&root, "../../z").unwrap(), root.join("z"));
        assert!(matches!(
            secure_join(&root, "/loop"),
            Err(RootfsError::Loop(_))
        ));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mount_points_are_made_in_a_rootfs_dir_and_never_on_the_host() {
        let root = tempdir("points");
        let volume = tempdir("points-vol");
        let view = View {
            root: Root::Dir(root.clone()),
            hidden: Vec::new(),
            stage: PathBuf::from("/stage"),
            shm: PathBuf::from("/dev/shm"),
            mounts: vec![volume_at(&volume, "/data/deep", true)],
            read_only_root: true,
            privileged: false,
        };
        let steps = build(&view).unwrap();
        assert!(root.join("data/deep").is_dir());
        assert!(root.join("proc").is_dir());
        let described: Vec<String> = steps.iter().map(Step::describe).collect();
        assert!(described.contains(&format!("mount {} on /stage/data/deep", volume.display())));
        assert_eq!(described.last().unwrap(), "pivot_root into /stage");

        let host = View {
            root: Root::Host,
            mounts: vec![BindMount {
                target: "/no/such/podrun/dir".to_owned(),
                ..view.mounts[0].clone()
            }],
            ..view
        };
        assert!(matches!(build(&host), Err(RootfsError::MissingOnHost(_))));
        assert!(!Path::new("/no/such/podrun").exists());
        // An optional mount (a pod's /etc file) is left out instead.
        let optional = View {
            mounts: vec![BindMount {
                optional: true,
                ..host.mounts[0].clone()
            }],
            ..host.clone()
        };
        let without = View {
            mounts: Vec::new(),
            ..host.clone()
        };
        assert_eq!(
            build(&optional).unwrap().len(),
            build(&without).unwrap().len()
        );
        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&volume).unwrap();
    }
    #[test]
    fn a_mount_point_under_a_volume_is_made_in_that_volume() {
        let root = tempdir("layered");
        let etc = tempdir("layered-etc");
        let data = tempdir("layered-data");
        let hosts = root.join("hosts-source");
        fs::write(&hosts, "").unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        // A symlink in a volume resolves inside the container, here back
        // into the root.
        symlink("/srv", etc.join("srv")).unwrap();
        let view = View {
            root: Root::Dir(root.clone()),
            hidden: Vec::new(),
            stage: PathBuf::from("/stage"),
            shm: PathBuf::from("/dev/shm"),
            mounts: vec![
                volume_at(&hosts, "/etc/hosts", false),
                volume_at(&etc, "/etc", false),
                volume_at(&data, "/etc/srv/data", false),
                volume_at(&hosts, "/etc/deep/er/file", false),
            ],
            read_only_root: false,
            privileged: false,
        };
        let steps = build(&view).unwrap();
        assert!(etc.join("hosts").is_file(), "made in the volume at /etc");
        assert!(!root.join("etc/hosts").exists(), "not in the root it hides");
        assert!(etc.join("deep/er/file").is_file());
        assert!(
            root.join("srv/data").is_dir(),
            "through the volume's symlink"
        );
        let described: Vec<String> = steps.iter().map(Step::describe).collect();
        for (source, target) in [
            (&etc, "/stage/etc"),
            (&hosts, "/stage/etc/hosts"),
            (&data, "/stage/srv/data"),
        ] {
            assert!(
                described.contains(&format!("mount {} on {target}", source.display())),
                "{described:?}"
            );
        }

        // A read-only volume is never written: a missing mount point in it
        // is an error that names both.
        fs::remove_file(etc.join("hosts")).unwrap();
        let read_only = View {
            mounts: vec![
                volume_at(&etc, "/etc", true),
                volume_at(&hosts, "/etc/hosts", false),
            ],
            ..view.clone()
        };
        let err = build(&read_only).unwrap_err();
        assert!(matches!(err, RootfsError::InReadOnlyVolume { .. }), "{err}");
        assert!(err.to_string().contains("/etc/hosts"), "{err}");
        assert!(!etc.join("hosts").exists());
        // A configMap-like volume, read-only to the container but
        // podrun's on the host, gets the mount point made in it.
        let projected = View {
            mounts: vec![
                BindMount {
                    mount_points: true,
                    ..volume_at(&etc, "/etc", true)
                },
                volume_at(&data, "/etc/nested", false),
            ],
            ..view.clone()
        };
        build(&projected).unwrap();
        assert!(etc.join("nested").is_dir());
        // One it already has is mounted on.
        fs::write(etc.join("hosts"), "").unwrap();
        build(&read_only).unwrap();
        for dir in [&root, &etc, &data] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_mount_point_is_never_made_through_a_symlink() {
        let base = tempdir("nofollow");
        let elsewhere = tempdir("nofollow-elsewhere");
        symlink(&elsewhere, base.join("swapped")).unwrap();
        let err = make_mount_point(&base, Path::new("swapped/x"), true).unwrap_err();
        assert!(err.to_string().contains("swapped/x"), "{err}");
        assert!(!elsewhere.join("x").exists());
        make_mount_point(&base, Path::new("a/b/file"), false).unwrap();
        make_mount_point(&base, Path::new("a/b/file"), false).unwrap();
        assert!(base.join("a/b/file").is_file());
        fs::remove_dir_all(&base).unwrap();
        fs::remove_dir_all(&elsewhere).unwrap();
    }
}
