//! Volumes on the host side: where an emptyDir or a configMap, secret,
//! downwardAPI or projected volume lives (and its tmpfs, its files), the
//! checks a hostPath `type` asks for, and subPaths that cannot leave their
//! volume. Mounting them into a container is the container's setup; this
//! module decides what is mounted.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

use super::atomic_writer::{self, AtomicWriterError};
use crate::api::runtime::{Volume, VolumeSource};

/// The kubelet's plugin directories under `<pod dir>/volumes/`.
pub const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
/// configMap, secret, downwardAPI and projected volumes alike: the
/// runtime is not told which of them a volume was.
pub const PROJECTED: &str = "kubernetes.io~projected";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {name:?}: hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        name: String,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("volume {name:?}: hostPath {path} does not exist (type {kind})")]
    HostPathMissing {
        name: String,
        path: PathBuf,
        kind: String,
    },
    #[error("subPath {subpath:?} leaves its volume")]
    SubPathEscape { subpath: String },
    #[error("volume {name:?}: cannot mount a tmpfs at {path}: {}", errno.desc())]
    Mount {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("volume {name:?}: {source}")]
    Files {
        name: String,
        source: AtomicWriterError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A tmpfs mounted at a volume's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmpfs {
    /// At most this many bytes (0: the kernel's default, half the RAM).
    pub size: u64,
    /// Its root directory's mode.
    pub mode: u32,
}

impl Tmpfs {
    fn options(&self) -> String {
        match self.size {
            0 => format!("mode={:04o}", self.mode),
            size => format!("mode={:04o},size={size}", self.mode),
        }
    }
}

/// Where a volume's data is on the host, ready to be bind-mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    pub host_path: PathBuf,
    /// Mounted at `host_path` before anything is written there: an
    /// emptyDir with `medium: Memory`, or a volume of secrets.
    pub tmpfs: Option<Tmpfs>,
}

/// The kubelet's layout: `<pod dir>/volumes/kubernetes.io~empty-dir/<name>`.
pub fn empty_dir_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(EMPTY_DIR).join(name)
}

/// `<pod dir>/volumes/kubernetes.io~projected/<name>`.
pub fn projected_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(PROJECTED).join(name)
}

/// Whether `host_path` is the directory of a configMap, secret,
/// downwardAPI or projected volume: containers get it read-only, as the
/// kubelet mounts them, whatever the mount asks.
pub fn is_projected(host_path: &Path) -> bool {
    let parent = host_path.parent();
    parent.and_then(Path::file_name) == Some(PROJECTED.as_ref())
        && parent.and_then(Path::parent).and_then(Path::file_name) == Some("volumes".as_ref())
}

/// A world-writable directory, as the kubelet's emptyDir (and the emptyDir
/// a configMap or secret volume wraps) is made: containers run as any user.
fn make_open_dir(path: &Path) -> Result<(), VolumeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o777)
        .create(path)
        .map_err(io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).map_err(io(path))
}

/// Makes the host side of a volume exist as its type requires (its
/// directory; no mount, no files: `set_up` does all).
pub fn prepare(pod_dir: &Path, volume: &Volume) -> Result<Prepared, VolumeError> {
    let name = volume.name.clone();
    match &volume.source {
        VolumeSource::EmptyDir {
            memory, size_limit, ..
        } => {
            let path = empty_dir_path(pod_dir, &name);
            make_open_dir(&path)?;
            Ok(Prepared {
                name,
                host_path: path,
                tmpfs: memory.then_some(Tmpfs {
                    size: size_limit.unwrap_or(0),
                    mode: 0o777,
                }),
            })
        }
        VolumeSource::HostPath { path, kind } => {
            check_host_path(&name, path, kind, true)?;
            Ok(Prepared {
                name,
                host_path: path.clone(),
                tmpfs: None,
            })
        }
        VolumeSource::Projected { memory, .. } => {
            let path = projected_path(pod_dir, &name);
            make_open_dir(&path)?;
            Ok(Prepared {
                name,
                host_path: path,
                // A tmpfs's own default root mode, as the kubelet's
                // secret volume has it (`drwxrwxrwt`).
                tmpfs: memory.then_some(Tmpfs {
                    size: 0,
                    mode: 0o1777,
                }),
            })
        }
    }
}

/// Makes a volume ready to be bind-mounted: its directory, its tmpfs,
/// then its files. On an error, what was made is left to the pod's
/// teardown (which unmounts everything under the pod's directory).
pub fn set_up(pod_dir: &Path, volume: &Volume) -> Result<Prepared, VolumeError> {
    let prepared = prepare(pod_dir, volume)?;
    if let Some(tmpfs) = &prepared.tmpfs {
        mount(
            Some("tmpfs"),
            &prepared.host_path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(tmpfs.options().as_str()),
        )
        .map_err(|errno| VolumeError::Mount {
            name: prepared.name.clone(),
            path: prepared.host_path.clone(),
            errno,
        })?;
    }
    if let VolumeSource::EmptyDir {
        fs_group: Some(group),
        ..
    } = &volume.source
    {
        // As the kubelet's SetVolumeOwnership leaves a writable volume:
        // the group's, setgid, so that what containers make in it is the
        // group's too (after the tmpfs, whose root this is then).
        own_by_group(&prepared.host_path, *group, 0o2777)?;
    }
    if let VolumeSource::Projected {
        files, fs_group, ..
    } = &volume.source
    {
        atomic_writer::write(&prepared.host_path, files, *fs_group).map_err(|source| {
            VolumeError::Files {
                name: prepared.name.clone(),
                source,
            }
        })?;
    }
    Ok(prepared)
}

/// Gives `path` to group `group` (its owner kept) with `mode`.
fn own_by_group(path: &Path, group: i64, mode: u32) -> Result<(), VolumeError> {
    let gid = u32::try_from(group).map_err(|_| VolumeError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("fsGroup {group} is not a group id"),
        ),
    })?;
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Whether a hostPath volume's `type` check would pass now, making
/// nothing: what `podrun validate` reports (`DirectoryOrCreate` and
/// `FileOrCreate` pass where nothing is, since they would make it).
pub fn host_path_problem(volume: &Volume) -> Option<VolumeError> {
    let VolumeSource::HostPath { path, kind } = &volume.source else {
        return None;
    };
    check_host_path(&volume.name, path, kind, false).err()
}

/// The checks of Kubernetes' hostPath `type`; with `create`, making what
/// an `...OrCreate` type asks for.
fn check_host_path(name: &str, path: &Path, kind: &str, create: bool) -> Result<(), VolumeError> {
    let wrong = |expected| VolumeError::HostPathType {
        name: name.to_owned(),
        path: path.to_owned(),
        expected,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(path)(e)),
    };
    let missing = || VolumeError::HostPathMissing {
        name: name.to_owned(),
        path: path.to_owned(),
        kind: kind.to_owned(),
    };
    match (kind, meta) {
        ("", _) => Ok(()),
        ("DirectoryOrCreate" | "FileOrCreate", None) if !create => Ok(()),
        ("DirectoryOrCreate", None) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(io(path)),
        ("FileOrCreate", None) => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(io(path)),
        (_, None) => Err(missing()),
        ("DirectoryOrCreate" | "Directory", Some(m)) => {
            if m.is_dir() {
                Ok(())
            } else {
                Err(wrong("directory"))
            }
        }
        ("FileOrCreate" | "File", Some(m)) => {
            if m.is_file() {
                Ok(())
            } else {
                Err(wrong("file"))
            }
        }
        ("Socket", Some(m)) => {
            if m.file_type().is_socket() {
                Ok(())
            } else {
                Err(wrong("socket"))
            }
        }
        ("CharDevice", Some(m)) => {
            if m.file_type().is_char_device() {
                Ok(())
            } else {
                Err(wrong("character device"))
            }
        }
        ("BlockDevice", Some(m)) => {
            if m.file_type().is_block_device() {
                Ok(())
            } else {
                Err(wrong("block device"))
            }
        }
        (_, Some(_)) => Err(wrong("known hostPath type")),
    }
}

/// Resolves `subpath` inside `volume_root`, creating missing directories as
/// the kubelet does, and refusing a path that leaves the volume: `..`, an
/// absolute path, or a symlink whose target is outside.
pub fn resolve_subpath(volume_root: &Path, subpath: &str) -> Result<PathBuf, VolumeError> {
    let escape = || VolumeError::SubPathEscape {
        subpath: subpath.to_owned(),
    };
    let root = fs::canonicalize(volume_root).map_err(io(volume_root))?;
    let mut current = root.clone();
    for component in Path::new(subpath).components() {
        match component {
            Component::CurDir => continue,
            Component::Normal(part) => {
                let next = current.join(part);
                match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let target = fs::canonicalize(&next).map_err(io(&next))?;
                        if !target.starts_with(&root) {
                            return Err(escape());
                        }
                        current = target;
                    }
                    Ok(_) => current = next,
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        fs::DirBuilder::new()
                            .mode(0o750)
                            .create(&next)
                            .map_err(io(&next))?;
                        current = next;
                    }
                    Err(e) => return Err(io(&next)(e)),
                }
            }
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape());
            }
        }
    }
    if !current.starts_with(&root) {
        return Err(escape());
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    /// `super::prepare`, with a Memory emptyDir's size given.
    fn prepare(dir: &Path, v: &Volume, size: Option<u64>) -> Result<Prepared, VolumeError> {
        let mut volume = v.clone();
        if let VolumeSource::EmptyDir { size_limit, .. } = &mut volume.source {
            *size_limit = size.or(*size_limit);
        }
        super::prepare(dir, &volume)
    }

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("podrun-vol-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn host_path(name: &str, path: &Path, kind: &str) -> Volume {
        Volume {
            name: name.to_owned(),
            source: VolumeSource::HostPath {
                path: path.to_owned(),
                kind: kind.to_owned(),
            },
        }
    }

    #[test]
    fn empty_dirs_live_under_the_pod() {
        let s = Scratch::new("empty");
        let v = Volume {
            name: "data".to_owned(),
            source: VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
                fs_group: None,
            },
        };
        let p = prepare(&s.0, &v, None).unwrap();
        assert_eq!(
            p.host_path,
            s.0.join("volumes/kubernetes.io~empty-dir/data")
        );
        assert!(p.host_path.is_dir());
        assert_eq!(
            fs::metadata(&p.host_path).unwrap().permissions().mode() & 0o777,
            0o777
        );
        assert_eq!(p.tmpfs, None);
        let memory = Volume {
            source: VolumeSource::EmptyDir {
                memory: true,
                size_limit: None,
                fs_group: None,
            },
            ..v
        };
        assert_eq!(
            prepare(&s.0, &memory, Some(1 << 20)).unwrap().tmpfs,
            Some(Tmpfs {
                size: 1 << 20,
                mode: 0o777
            })
        );
    }

    #[test]
    fn host_path_types() {
        let s = Scratch::new("host");
        let dir = s.0.join("made/dir");
        prepare(&s.0, &host_path("d", &dir, "DirectoryOrCreate"), None).unwrap();
        assert!(dir.is_dir());
        let file = s.0.join("made/file");
        prepare(&s.0, &host_path("f", &file, "FileOrCreate"), None).unwrap();
        assert!(file.is_file());
        prepare(&s.0, &host_path("f", &file, "File"), None).unwrap();
        prepare(&s.0, &host_path("d", &dir, "Directory"), None).unwrap();
        let err = prepare(&s.0, &host_path("d", &file, "Directory"), None).unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
        let err = prepare(&s.0, &host_path("s", &file, "Socket"), None).unwrap_err();
        assert!(err.to_string().ends_with("is not a socket"), "{err}");
        let err = prepare(
            &s.0,
            &host_path("m", &s.0.join("missing"), "Directory"),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, VolumeError::HostPathMissing { .. }), "{err}");
        // No type: no check at all.
        prepare(&s.0, &host_path("any", &s.0.join("missing"), ""), None).unwrap();
        assert!(!s.0.join("missing").exists());
    }

    #[test]
    fn sub_paths_stay_inside_their_volume() {
        let s = Scratch::new("sub");
        let root = s.0.join("vol");
        fs::create_dir_all(root.join("inside")).unwrap();
        let outside = s.0.join("outside");
        fs::create_dir_all(&outside).unwrap();
        // Created when missing, as the kubelet does.
        let made = resolve_subpath(&root, "a/b").unwrap();
        assert!(made.is_dir() && made.ends_with("vol/a/b"));
        assert!(
            resolve_subpath(&root, "./inside")
                .unwrap()
                .ends_with("vol/inside")
        );
        for bad in ["../outside", "a/../../outside", "/etc"] {
            assert!(
                matches!(
                    resolve_subpath(&root, bad),
                    Err(VolumeError::SubPathEscape { .. })
                ),
                "{bad}"
            );
        }
        // A symlink out of the volume is refused; one within it is followed.
        symlink(&outside, root.join("out")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink(root.join("inside"), root.join("in")).unwrap();
        assert!(matches!(
            resolve_subpath(&root, "out"),
            Err(VolumeError::SubPathEscape { .. })
        ));
        assert!(matches!(
            resolve_subpath(&root, "etc/passwd"),
            Err(VolumeError::SubPathEscape { .. })
        ));
        assert!(
            resolve_subpath(&root, "in")
                .unwrap()
                .ends_with("vol/inside")
        );
    }

    fn projected(name: &str, memory: bool) -> Volume {
        let file = |path: &str, data: &str| crate::api::runtime::ProjectedFile {
            path: path.to_owned(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
        };
        Volume {
            name: name.to_owned(),
            source: VolumeSource::Projected {
                files: vec![file("app.conf", "x=1"), file("nested/a/b", "deep")],
                memory,
                fs_group: None,
            },
        }
    }

    #[test]
    fn an_empty_dir_is_the_fs_groups_and_setgid() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "an_empty_dir_is_the_fs_groups_and_setgid: SKIPPED: chown to another group needs root"
            );
            return;
        }
        let s = Scratch::new("empty-group");
        let v = Volume {
            name: "data".to_owned(),
            source: VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
                fs_group: Some(4321),
            },
        };
        let p = set_up(&s.0, &v).unwrap();
        let meta = fs::metadata(&p.host_path).unwrap();
        assert_eq!(meta.gid(), 4321);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o2777);
        // Without fsGroup: root's, not setgid.
        let plain = Volume {
            name: "plain".to_owned(),
            source: VolumeSource::EmptyDir {
                memory: false,
                size_limit: None,
                fs_group: None,
            },
        };
        let p = set_up(&s.0, &plain).unwrap();
        let meta = fs::metadata(&p.host_path).unwrap();
        assert_eq!(meta.gid(), 0);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o777);
    }

    #[test]
    fn projected_volumes_are_written_under_the_pod_and_read_only() {
        let s = Scratch::new("projected");
        let p = set_up(&s.0, &projected("cfg", false)).unwrap();
        assert_eq!(p.host_path, s.0.join("volumes/kubernetes.io~projected/cfg"));
        assert_eq!(p.tmpfs, None);
        assert_eq!(
            fs::metadata(&p.host_path).unwrap().permissions().mode() & 0o7777,
            0o777,
            "as the emptyDir the kubelet wraps"
        );
        assert_eq!(
            fs::read_to_string(p.host_path.join("app.conf")).unwrap(),
            "x=1"
        );
        assert!(
            fs::symlink_metadata(p.host_path.join("..data"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(is_projected(&p.host_path));
        assert!(!is_projected(&empty_dir_path(&s.0, "cfg")));
        assert!(!is_projected(Path::new("/srv/kubernetes.io~projected")));
        // Secrets: a tmpfs, mounted before the files are written.
        let memory = prepare(&s.0, &projected("sec", true), None).unwrap();
        assert_eq!(
            memory.tmpfs,
            Some(Tmpfs {
                size: 0,
                mode: 0o1777
            })
        );
        assert_eq!(memory.tmpfs.unwrap().options(), "mode=1777");
    }

    #[test]
    fn a_sub_path_follows_the_data_links_inside_the_volume() {
        let s = Scratch::new("projected-sub");
        let p = set_up(&s.0, &projected("cfg", false)).unwrap();
        let data = p
            .host_path
            .join(fs::read_link(p.host_path.join("..data")).unwrap());
        let data = fs::canonicalize(data).unwrap();
        assert_eq!(
            resolve_subpath(&p.host_path, "app.conf").unwrap(),
            data.join("app.conf")
        );
        assert_eq!(
            resolve_subpath(&p.host_path, "nested/a").unwrap(),
            data.join("nested/a")
        );
        assert_eq!(
            resolve_subpath(&p.host_path, "..data/nested/a/b").unwrap(),
            data.join("nested/a/b")
        );
    }

    #[test]
    fn a_secret_volume_is_a_tmpfs_before_its_files_are_written() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "a_secret_volume_is_a_tmpfs_before_its_files_are_written: SKIPPED: mounting a tmpfs needs root"
            );
            return;
        }
        let s = Scratch::new("projected-tmpfs");
        let dir = s.0.clone();
        // In a mount namespace of a thread of its own (a slave of the
        // host's, so nothing reaches the host's), gone with the thread.
        let checked = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .unwrap();
            let p = set_up(&dir, &projected("sec", true)).unwrap();
            let fs_type = nix::sys::statfs::statfs(&p.host_path)
                .unwrap()
                .filesystem_type();
            assert_eq!(fs_type, nix::sys::statfs::TMPFS_MAGIC);
            let ts = fs::read_link(p.host_path.join("..data")).unwrap();
            let on = nix::sys::statfs::statfs(&p.host_path.join(ts).join("app.conf")).unwrap();
            assert_eq!(on.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
            assert_eq!(
                fs::metadata(&p.host_path).unwrap().permissions().mode() & 0o7777,
                0o1777
            );
            nix::mount::umount2(&p.host_path, nix::mount::MntFlags::MNT_DETACH).unwrap();
        })
        .join();
        assert!(checked.is_ok());
    }
}
