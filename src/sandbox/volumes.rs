//! Volumes on the host side: where an emptyDir lives, the checks a hostPath
//! `type` asks for, and subPaths that cannot leave their volume. Mounting
//! them into a container is the container's setup; this module decides
//! what is mounted.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::api::runtime::{Volume, VolumeSource};

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

/// Where a volume's data is on the host, ready to be bind-mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    pub host_path: PathBuf,
    /// An emptyDir with `medium: Memory`: a tmpfs of at most this many
    /// bytes (0 = the kernel's default) is mounted at `host_path`.
    pub tmpfs: Option<u64>,
}

/// The kubelet's layout: `<pod dir>/volumes/kubernetes.io~empty-dir/<name>`.
pub fn empty_dir_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir
        .join("volumes")
        .join("kubernetes.io~empty-dir")
        .join(name)
}

/// Makes the host side of a volume exist as its type requires.
pub fn prepare(pod_dir: &Path, volume: &Volume) -> Result<Prepared, VolumeError> {
    let name = volume.name.clone();
    match &volume.source {
        VolumeSource::EmptyDir { memory, size_limit } => {
            let path = empty_dir_path(pod_dir, &name);
            // emptyDir is world-writable, as the kubelet makes it:
            // containers run as any user.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o777)
                .create(&path)
                .map_err(io(&path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).map_err(io(&path))?;
            Ok(Prepared {
                name,
                host_path: path,
                tmpfs: memory.then_some(size_limit.unwrap_or(0)),
            })
        }
        VolumeSource::HostPath { path, kind } => {
            check_host_path(&name, path, kind)?;
            Ok(Prepared {
                name,
                host_path: path.clone(),
                tmpfs: None,
            })
        }
    }
}

/// The checks of Kubernetes' hostPath `type`.
fn check_host_path(name: &str, path: &Path, kind: &str) -> Result<(), VolumeError> {
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
    use std::os::unix::fs::symlink;

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
            },
            ..v
        };
        assert_eq!(
            prepare(&s.0, &memory, Some(1 << 20)).unwrap().tmpfs,
            Some(1 << 20)
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
}
