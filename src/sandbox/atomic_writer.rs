//! The files of a configMap, secret, downwardAPI or projected volume,
//! written as the kubelet's atomic writer writes them
//! (`pkg/volume/util/atomic_writer.go`), because users' tools (config
//! reloaders, inotify watchers) look for exactly this layout:
//!
//! ```text
//! <volume>/..2026_12_07_15_04_05.3141592653/   the payload (0755)
//! <volume>/..data -> ..2026_12_07_15_04_05.3141592653
//! <volume>/key    -> ..data/key                each top-level name
//! ```
//!
//! `..data` is switched atomically (a `..data_tmp` link renamed over it).
//! With the pod's `fsGroup` the volume is given to that group as the
//! kubelet's `SetVolumeOwnership` (`pkg/volume/volume_linux.go`) does for a
//! read-only volume, before `..data` is switched.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{
    DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, lchown, symlink,
};
use std::path::{Path, PathBuf};

use crate::api::runtime::ProjectedFile;

/// The link to the current payload.
pub const DATA_DIR: &str = "..data";
/// The link made beside `..data` and renamed over it.
const NEW_DATA_DIR: &str = "..data_tmp";
/// The timestamped directory and its subdirectories: 0755, so that any
/// user of the container may walk them.
const DIR_MODE: u32 = 0o755;
/// `SetVolumeOwnership`'s masks for a read-only volume: group-readable,
/// and directories group-searchable and setgid.
const READ_ONLY_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SET_GID: u32 = 0o2000;
/// Go's `os.MkdirTemp` gives up after this many names taken.
const TEMP_TRIES: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AtomicWriterError {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("fsGroup {0} is not a group id")]
    InvalidGroup(i64),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AtomicWriterError + '_ {
    move |source| AtomicWriterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `files` into the existing directory `dir`, and gives them to
/// `fs_group`. Writing again replaces the payload (the previous
/// timestamped directory and top-level links that are no longer in it go),
/// though podrun writes each volume once.
pub fn write(
    dir: &Path,
    files: &[ProjectedFile],
    fs_group: Option<i64>,
) -> Result<(), AtomicWriterError> {
    let payload = clean_payload(files)?;
    let group = fs_group
        .map(|g| u32::try_from(g).map_err(|_| AtomicWriterError::InvalidGroup(g)))
        .transpose()?;
    let data_dir = dir.join(DATA_DIR);
    let old_ts = match fs::read_link(&data_dir) {
        Ok(target) => Some(target),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(&data_dir)(e)),
    };

    let ts_dir = new_timestamp_dir(dir)?;
    let ts_name = ts_dir.file_name().map(OsString::from).unwrap_or_default();
    let written = write_payload(&ts_dir, &payload).and_then(|()| match group {
        // The whole volume, not only the new directory: the kubelet's
        // setPerms, before anything links to it.
        Some(g) => set_volume_ownership(dir, g),
        None => Ok(()),
    });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(e);
    }

    let new_data_dir = dir.join(NEW_DATA_DIR);
    // Left by a write that died between the link and the rename.
    match fs::remove_file(&new_data_dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(&new_data_dir)(e)),
        _ => {}
    }
    if let Err(e) = symlink(&ts_name, &new_data_dir) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(io(&new_data_dir)(e));
    }
    if let Err(e) = fs::rename(&new_data_dir, &data_dir) {
        let _ = fs::remove_file(&new_data_dir);
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(io(&data_dir)(e));
    }

    let top: BTreeSet<OsString> = payload.keys().filter_map(|p| top_name(p)).collect();
    for name in &top {
        let link = dir.join(name);
        // A name that is already there (a link from an earlier write, or
        // a directory made as a mount point) stays, as the kubelet leaves it.
        match fs::read_link(&link) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                symlink(Path::new(DATA_DIR).join(name), &link).map_err(io(&link))?;
            }
            _ => {}
        }
    }

    if let Some(old) = old_ts.filter(|old| old.as_os_str() != ts_name) {
        let old_dir = dir.join(&old);
        remove_stale_links(dir, &old_dir, &top)?;
        fs::remove_dir_all(&old_dir).map_err(io(&old_dir))?;
    }
    tracing::debug!(
        dir = %dir.display(),
        files = payload.len(),
        data = ?ts_name,
        "wrote volume payload"
    );
    Ok(())
}

fn top_name(path: &Path) -> Option<OsString> {
    path.components()
        .next()
        .map(|c| c.as_os_str().to_os_string())
}

/// The payload's paths checked as the kubelet's `validatePath` checks
/// them, and cleaned (`a//b/./c` is `a/b/c`); a later file of the same path
/// replaces an earlier one.
fn clean_payload(
    files: &[ProjectedFile],
) -> Result<BTreeMap<PathBuf, &ProjectedFile>, AtomicWriterError> {
    let mut out = BTreeMap::new();
    for f in files {
        out.insert(clean_path(&f.path)?, f);
    }
    Ok(out)
}

/// The path checked and cleaned as the kubelet's atomic writer does.
fn clean_path(path: &str) -> Result<PathBuf, AtomicWriterError> {
    crate::api::runtime::projected_path(path)
        .map(PathBuf::from)
        .map_err(|reason| AtomicWriterError::InvalidPath {
            path: path.to_owned(),
            reason,
        })
}

/// `..` and the UTC time as Go's `2006_01_02_15_04_05.` layout gives it.
fn timestamp_prefix(now: jiff::Timestamp) -> String {
    now.strftime("..%Y_%m_%d_%H_%M_%S.").to_string()
}

/// Not for secrecy, only to pick a free name, as Go's `MkdirTemp` does.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}

/// A new `..<timestamp>.<digits>` directory in `dir`, named as Go's
/// `os.MkdirTemp` names it (the digits a random `uint32`), mode 0755.
fn new_timestamp_dir(dir: &Path) -> Result<PathBuf, AtomicWriterError> {
    let prefix = timestamp_prefix(jiff::Timestamp::now());
    let mut last = None;
    for _ in 0..TEMP_TRIES {
        let path = dir.join(format!("{prefix}{}", random_u32()));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                // Whatever the umask.
                fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io(&path))?;
                return Ok(path);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(path),
            Err(e) => return Err(io(&path)(e)),
        }
    }
    let path = last.unwrap_or_else(|| dir.to_owned());
    Err(io(&path)(ErrorKind::AlreadyExists.into()))
}

/// Makes `rel`'s directories under `base`, each 0755.
fn make_dirs(base: &Path, rel: &Path) -> Result<(), AtomicWriterError> {
    let mut dir = base.to_owned();
    for part in rel.components() {
        dir.push(part);
        match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io(&dir))?
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    Ok(())
}

/// Each file with its mode exactly (not cut by the umask).
fn write_payload(
    ts_dir: &Path,
    payload: &BTreeMap<PathBuf, &ProjectedFile>,
) -> Result<(), AtomicWriterError> {
    for (rel, file) in payload {
        if let Some(parent) = rel.parent() {
            make_dirs(ts_dir, parent)?;
        }
        let path = ts_dir.join(rel);
        let mode = file.mode & 0o777;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io(&path))?;
        out.write_all(&file.data).map_err(io(&path))?;
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// The kubelet's `SetVolumeOwnership` for a read-only volume: every entry
/// under `dir` (and `dir`) lchown'd to group `group` (its owner kept),
/// every file but a symlink given `mode | 0440`, every directory
/// `mode | 0550` and setgid (so that what is made in it later, the links,
/// has the group too). Children before their directory, as its walk goes.
/// As there, a chown or chmod that fails is logged and the walk goes on.
fn set_volume_ownership(dir: &Path, group: u32) -> Result<(), AtomicWriterError> {
    let meta = fs::symlink_metadata(dir).map_err(io(dir))?;
    walk_deep(dir, &meta, &mut |path, meta| {
        if let Err(e) = lchown(path, None, Some(group)) {
            tracing::error!(path = %path.display(), group, "lchown failed: {e}");
        }
        // A symlink's mode means nothing, and chmod would follow it.
        if meta.file_type().is_symlink() {
            return;
        }
        let mut mask = READ_ONLY_MASK;
        if meta.is_dir() {
            mask |= EXEC_MASK | SET_GID;
        }
        let mode = (meta.mode() & 0o7777) | mask;
        if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
            tracing::error!(path = %path.display(), mode = format!("{mode:o}"), "chmod failed: {e}");
        }
    })
}

fn walk_deep(
    path: &Path,
    meta: &fs::Metadata,
    visit: &mut impl FnMut(&Path, &fs::Metadata),
) -> Result<(), AtomicWriterError> {
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io(path))? {
            let child = entry.map_err(io(path))?.path();
            let child_meta = fs::symlink_metadata(&child).map_err(io(&child))?;
            walk_deep(&child, &child_meta, visit)?;
        }
    }
    visit(path, meta);
    Ok(())
}

/// After a rewrite: the top-level links of the previous payload that the
/// new one does not have.
fn remove_stale_links(
    dir: &Path,
    old_dir: &Path,
    keep: &BTreeSet<OsString>,
) -> Result<(), AtomicWriterError> {
    let entries = match fs::read_dir(old_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(old_dir)(e)),
    };
    for entry in entries {
        let name = entry.map_err(io(old_dir))?.file_name();
        if keep.contains(&name) {
            continue;
        }
        let link = dir.join(&name);
        match fs::remove_file(&link) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(&link)(e)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: u32, data: &str) -> ProjectedFile {
        ProjectedFile {
            path: path.to_owned(),
            mode,
            data: data.as_bytes().to_vec(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    /// `..YYYY_MM_DD_HH_MM_SS.<uint32>`
    fn is_timestamp_dir(name: &str) -> bool {
        let Some(rest) = name.strip_prefix("..") else {
            return false;
        };
        let Some((time, digits)) = rest.split_once('.') else {
            return false;
        };
        let parts: Vec<&str> = time.split('_').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [4, 2, 2, 2, 2, 2]
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && !digits.is_empty()
            && digits.parse::<u32>().is_ok()
    }

    #[test]
    fn the_timestamp_is_gos_layout_in_utc() {
        let t: jiff::Timestamp = "2016-02-01T15:04:05.999+01:00".parse().unwrap();
        assert_eq!(timestamp_prefix(t), "..2016_02_01_14_04_05.");
        assert!(is_timestamp_dir("..2016_02_01_14_04_05.12345678"));
        assert!(!is_timestamp_dir("..2016_02_01_14_04_05."));
        assert!(!is_timestamp_dir("..data"));
    }

    #[test]
    fn the_layout_is_the_kubelets() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        let files = [
            file("game.properties", 0o644, "lives=3\n"),
            file("a/b/c", 0o400, "deep"),
            file("a/top", 0o755, "#!/bin/sh\n"),
            file("x//./y", 0o600, "cleaned"),
            // Not cut by the umask.
            file("open", 0o777, ""),
        ];
        write(v, &files, None).unwrap();

        let ts = fs::read_link(v.join("..data")).unwrap();
        let ts = ts.to_str().unwrap();
        assert!(is_timestamp_dir(ts), "{ts}");
        assert!(!ts.contains('/'), "..data is a relative link: {ts}");
        assert_eq!(
            names(v),
            BTreeSet::from([
                "..data".to_owned(),
                ts.to_owned(),
                "a".to_owned(),
                "game.properties".to_owned(),
                "open".to_owned(),
                "x".to_owned(),
            ]),
            "no ..data_tmp left"
        );
        for top in ["a", "game.properties", "open", "x"] {
            assert_eq!(
                fs::read_link(v.join(top)).unwrap(),
                Path::new("..data").join(top)
            );
        }
        assert_eq!(mode(&v.join(ts)), 0o755);
        assert_eq!(mode(&v.join(ts).join("a")), 0o755);
        assert_eq!(mode(&v.join(ts).join("a/b")), 0o755);
        assert_eq!(mode(&v.join(ts).join("a/b/c")), 0o400);
        assert_eq!(mode(&v.join(ts).join("a/top")), 0o755);
        assert_eq!(mode(&v.join(ts).join("game.properties")), 0o644);
        assert_eq!(mode(&v.join(ts).join("x/y")), 0o600);
        assert_eq!(mode(&v.join(ts).join("open")), 0o777);
        // Read through the links, as a container does.
        assert_eq!(fs::read_to_string(v.join("a/b/c")).unwrap(), "deep");
        assert_eq!(
            fs::read_to_string(v.join("game.properties")).unwrap(),
            "lives=3\n"
        );
        assert_eq!(fs::read_to_string(v.join("x/y")).unwrap(), "cleaned");
    }

    #[test]
    fn paths_the_kubelet_refuses_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long = "n".repeat(256);
        for bad in [
            "",
            ".",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "..data",
            "..hidden/x",
            "./..data",
            long.as_str(),
        ] {
            let err = write(dir.path(), &[file(bad, 0o644, "")], None).unwrap_err();
            assert!(
                matches!(err, AtomicWriterError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(
            names(dir.path()).is_empty(),
            "nothing written for an invalid payload"
        );
        assert!(matches!(
            write(dir.path(), &[file("f", 0o644, "")], Some(-1)),
            Err(AtomicWriterError::InvalidGroup(-1))
        ));
    }

    #[test]
    fn a_rewrite_switches_data_and_drops_what_went() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        write(
            v,
            &[file("keep", 0o644, "1"), file("gone/f", 0o644, "1")],
            None,
        )
        .unwrap();
        let first = fs::read_link(v.join("..data")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        write(
            v,
            &[file("keep", 0o644, "2"), file("new", 0o644, "2")],
            None,
        )
        .unwrap();
        let second = fs::read_link(v.join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!v.join(&first).exists(), "the previous payload is removed");
        assert_eq!(
            names(v),
            BTreeSet::from([
                "..data".to_owned(),
                second.to_str().unwrap().to_owned(),
                "keep".to_owned(),
                "new".to_owned(),
            ])
        );
        assert_eq!(fs::read_to_string(v.join("keep")).unwrap(), "2");
    }

    #[test]
    fn fs_group_owns_the_volume_as_setvolumeownership_makes_it() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "fs_group_owns_the_volume_as_setvolumeownership_makes_it: SKIPPED: chown to another group needs root"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        // The volume directory as it is made (an emptyDir's, 0777).
        fs::set_permissions(v, fs::Permissions::from_mode(0o777)).unwrap();
        let files = [
            file("secret", 0o400, "s"),
            file("conf/app.yaml", 0o644, "a: 1"),
            file("run.sh", 0o700, "#!/bin/sh"),
        ];
        write(v, &files, Some(4321)).unwrap();
        let ts = v.join(fs::read_link(v.join("..data")).unwrap());
        let gid = |p: &Path| fs::symlink_metadata(p).unwrap().gid();
        // The root keeps its mode, plus setgid; directories 0755 | 0550.
        assert_eq!(mode(v), 0o2777);
        assert_eq!(mode(&ts), 0o2755);
        assert_eq!(mode(&ts.join("conf")), 0o2755);
        assert_eq!(mode(&ts.join("secret")), 0o440);
        assert_eq!(mode(&ts.join("conf/app.yaml")), 0o644);
        assert_eq!(mode(&ts.join("run.sh")), 0o740);
        for p in [
            v.to_owned(),
            ts.clone(),
            ts.join("conf"),
            ts.join("conf/app.yaml"),
            ts.join("secret"),
            ts.join("run.sh"),
            // Made after, in a setgid directory: its group too.
            v.join("..data"),
            v.join("secret"),
            v.join("conf"),
        ] {
            assert_eq!(gid(&p), 4321, "{}", p.display());
        }
        // Owners are kept.
        assert_eq!(fs::symlink_metadata(ts.join("secret")).unwrap().uid(), 0);
    }
}
