//! A container run's root from an image: an overlayfs of the image's
//! unpacked layers (read-only lowers, shared by every container using
//! them) under an upper and work directory of the run's own, mounted in
//! the pod's data directory as containerd's overlay snapshotter does, and
//! removed when the run is over or with the pod.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an image needs at least one layer")]
    NoLayers,
    #[error("layer directory {0} contains a ',' or ':' that overlayfs cannot take")]
    BadPath(PathBuf),
    #[error("the image has too many layers for one overlay mount ({0} bytes of options)")]
    TooManyLayers(usize),
    #[error("cannot mount the overlay root at {path}: {errno}")]
    Mount { path: PathBuf, errno: Errno },
    #[error("cannot unmount {path}: {errno}")]
    Unmount { path: PathBuf, errno: Errno },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OverlayError + '_ {
    move |source| OverlayError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The most the kernel takes as mount options (one page).
const MAX_OPTIONS: usize = 4095;

/// overlayfs' options for `layers` (bottom first) over `upper`/`work`:
/// lowerdir lists the top layer first.
pub fn options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<String, OverlayError> {
    if layers.is_empty() {
        return Err(OverlayError::NoLayers);
    }
    for p in layers.iter().map(PathBuf::as_path).chain([upper, work]) {
        if p.to_string_lossy().contains([',', ':']) {
            return Err(OverlayError::BadPath(p.to_owned()));
        }
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(OverlayError::TooManyLayers(options.len()));
    }
    Ok(options)
}

/// Mounts the run's root in `dir` (`dir/rootfs`, over `dir/upper` and
/// `dir/work`, made fresh); returns the root's path.
pub fn mount_root(layers: &[PathBuf], dir: &Path) -> Result<PathBuf, OverlayError> {
    remove(dir)?;
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &root] {
        fs::create_dir_all(d).map_err(io(d))?;
    }
    let options = options(layers, &upper, &work)?;
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|errno| OverlayError::Mount {
        path: root.clone(),
        errno,
    })?;
    Ok(root)
}

/// Unmounts and removes a run's root directory, if it is there.
pub fn remove(dir: &Path) -> Result<(), OverlayError> {
    let root = dir.join("rootfs");
    // Mounts inside the root (none are made in the host's namespace, but a
    // detach takes whatever is there) go with it.
    match umount2(&root, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(OverlayError::Unmount { path: root, errno }),
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_are_listed_top_first_and_bad_paths_refused() {
        let layers = [PathBuf::from("/l/base"), PathBuf::from("/l/top")];
        assert_eq!(
            options(&layers, Path::new("/r/upper"), Path::new("/r/work")).unwrap(),
            "lowerdir=/l/top:/l/base,upperdir=/r/upper,workdir=/r/work"
        );
        assert!(matches!(
            options(&[], Path::new("/u"), Path::new("/w")),
            Err(OverlayError::NoLayers)
        ));
        assert!(matches!(
            options(&[PathBuf::from("/l/a:b")], Path::new("/u"), Path::new("/w")),
            Err(OverlayError::BadPath(_))
        ));
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/podrun/layers/sha256/{i:064}")))
            .collect();
        assert!(matches!(
            options(&many, Path::new("/u"), Path::new("/w")),
            Err(OverlayError::TooManyLayers(_))
        ));
    }
}
