//! Walking and removing directory trees by descriptor. The unpacker
//! accepts a layer nested deeper than PATH_MAX (it reaches every entry
//! from a directory fd), so the store must be able to measure and remove
//! one: a walk by full path fails there with ENAMETOOLONG, a recursive one
//! can overflow a thread's stack, and one holding a descriptor per level
//! (std's `remove_dir_all`) runs out of descriptors past the open-file
//! limit. Here the levels are a stack on the heap and only the directory
//! at hand is open: the way up is its `..`, checked against the directory
//! the walk came down from. Symlinks are never followed, and a walk never
//! enters another filesystem (removing would empty a mount).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmodat, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Removes `path`, a directory with everything in it or anything else,
/// without following a symlink; a missing `path` is no error. Directories
/// that keep their owner out are opened up first: a rootless unpack gives
/// them the layer's modes, 0 included.
pub fn remove(path: &Path) -> io::Result<()> {
    remove_at(AT_FDCWD, path.as_os_str())
}

/// [`remove`] for `name` in the open directory `dir`.
pub fn remove_at(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        // Linux's answer for a directory.
        Err(Errno::EISDIR) => walk_at(dir, name, &mut Op::Remove),
        Err(e) => Err(e.into()),
    }
}

/// The bytes under `path`: the sizes of the files and symlinks in it (a
/// file with two links in it counts twice), or its own size if it is no
/// directory. Nothing is changed: a directory this process may not read
/// is an error.
pub fn size(path: &Path) -> io::Result<u64> {
    let bytes = |st: &FileStat| u64::try_from(st.st_size).unwrap_or(0);
    let st = fstatat(AT_FDCWD, path, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if is_dir(&st) {
        let mut total = 0;
        walk_at(
            AT_FDCWD,
            path.as_os_str(),
            &mut Op::Visit {
                visit: &mut |_, st| {
                    if !is_dir(st) {
                        total += bytes(st);
                    }
                },
                open_up: false,
            },
        )?;
        Ok(total)
    } else {
        Ok(bytes(&st))
    }
}

/// Calls `visit` with the path (relative to the directory `top`) and
/// status of every entry under `top`, parents before their content.
/// Directories that keep their owner out are opened up, as [`remove`]
/// does, so that a rootless unpack can be checked whole.
pub fn walk(top: &Path, mut visit: impl FnMut(&Path, &FileStat)) -> io::Result<()> {
    walk_at(
        AT_FDCWD,
        top.as_os_str(),
        &mut Op::Visit {
            visit: &mut visit,
            open_up: true,
        },
    )
}

/// `/proc/self/fd/<dir>/<name>`: a path that reaches `name` in that very
/// directory whatever happens to the path that led to it, and however
/// deep it is.
pub(super) fn proc_path(dir: impl AsFd, name: &[u8]) -> PathBuf {
    let fd = Path::new("/proc/self/fd").join(dir.as_fd().as_raw_fd().to_string());
    if name.is_empty() {
        fd
    } else {
        fd.join(OsStr::from_bytes(name))
    }
}

enum Op<'a> {
    Remove,
    Visit {
        visit: &'a mut dyn FnMut(&Path, &FileStat),
        open_up: bool,
    },
}

impl Op<'_> {
    fn open_up(&self) -> bool {
        match self {
            Op::Remove => true,
            Op::Visit { open_up, .. } => *open_up,
        }
    }
}

/// A directory on the way down from the top.
struct Level {
    /// Its name in its parent.
    name: OsString,
    /// Device and inode, to check the way back up.
    id: (u64, u64),
    /// Its subdirectories not yet walked.
    pending: Vec<OsString>,
}

/// The walk of the directory `top` in `parent`, depth first.
fn walk_at(parent: BorrowedFd, top: &OsStr, op: &mut Op) -> io::Result<()> {
    let open_up = op.open_up();
    let mut rel = PathBuf::new();
    let (mut dir, st) = open_dir(parent, top, open_up)?;
    let dev = st.st_dev;
    let pending = list(&dir, &mut rel, op)?;
    let mut levels = vec![Level {
        name: top.to_owned(),
        id: id(&st),
        pending,
    }];
    while let Some(level) = levels.last_mut() {
        if let Some(name) = level.pending.pop() {
            rel.push(&name);
            let (child, st) =
                open_dir(dir.as_fd(), &name, open_up).map_err(|e| in_tree(&rel, e))?;
            if st.st_dev != dev {
                // Removing would empty a mount (and then fail on it).
                return Err(in_tree(
                    &rel,
                    io::Error::other("a mount point, not walked into"),
                ));
            }
            let pending = list(&child, &mut rel, op)?;
            levels.push(Level {
                name,
                id: id(&st),
                pending,
            });
            dir = child;
            continue;
        }
        let Some(done) = levels.pop() else {
            break;
        };
        let Some(up) = levels.last() else {
            break;
        };
        let parent = open(dir.as_fd(), OsStr::new(".."), OFlag::O_RDONLY)
            .map_err(|e| in_tree(&rel, e.into()))?;
        if id(&fstat(&parent).map_err(|e| in_tree(&rel, e.into()))?) != up.id {
            return Err(in_tree(
                &rel,
                io::Error::other("moved away during the walk"),
            ));
        }
        dir = parent;
        if matches!(op, Op::Remove) {
            unlinkat(&dir, done.name.as_os_str(), UnlinkatFlags::RemoveDir)
                .map_err(|e| in_tree(&rel, e.into()))?;
        }
        rel.pop();
    }
    drop(dir);
    if matches!(op, Op::Remove) {
        unlinkat(parent, top, UnlinkatFlags::RemoveDir)?;
    }
    Ok(())
}

/// Goes through the directory `dir` (at `rel`): removes what is no
/// directory, or visits everything; returns the subdirectories.
fn list(dir: &OwnedFd, rel: &mut PathBuf, op: &mut Op) -> io::Result<Vec<OsString>> {
    // Read whole before anything is removed: a directory read while its
    // entries go may skip some.
    let mut names = Vec::new();
    let mut entries = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| in_tree(rel, e.into()))?;
    for entry in entries.iter() {
        let entry = entry.map_err(|e| in_tree(rel, e.into()))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    drop(entries);
    let mut subdirs = Vec::new();
    for name in names {
        match op {
            Op::Remove => match unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => subdirs.push(name),
                Err(e) => return Err(in_tree(&rel.join(name), e.into())),
            },
            Op::Visit { visit, .. } => {
                rel.push(&name);
                let st = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| in_tree(rel, e.into()))?;
                visit(rel, &st);
                rel.pop();
                if is_dir(&st) {
                    subdirs.push(name);
                }
            }
        }
    }
    Ok(subdirs)
}

/// Opens the directory `name` in `parent`, never through a symlink, with
/// its status. When `open_up`, a directory its owner may not list, enter
/// or write to is given u+rwx first.
fn open_dir(parent: BorrowedFd, name: &OsStr, open_up: bool) -> io::Result<(OwnedFd, FileStat)> {
    if !open_up {
        let dir = open(parent, name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)?;
        let st = fstat(&dir)?;
        return Ok((dir, st));
    }
    // An O_PATH descriptor needs no permission on the directory itself.
    let handle = open(parent, name, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    let st = fstat(&handle)?;
    if st.st_mode & 0o700 != 0o700 {
        // fchmod refuses an O_PATH descriptor; its /proc link is the very
        // directory.
        let mode = Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700);
        fchmodat(
            AT_FDCWD,
            &proc_path(&handle, b""),
            mode,
            FchmodatFlags::FollowSymlink,
        )?;
    }
    let dir = open(handle.as_fd(), OsStr::new("."), OFlag::O_RDONLY)?;
    Ok((dir, st))
}

fn open(dir: BorrowedFd, name: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

fn id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// `e` about the entry at `rel` under the top (which the caller names),
/// its path cut short when long: a deep tree's would run to kilobytes.
fn in_tree(rel: &Path, e: io::Error) -> io::Error {
    const SHOWN: usize = 8;
    if rel.as_os_str().is_empty() {
        return e;
    }
    let parts: Vec<_> = rel.components().collect();
    let shown = if parts.len() > SHOWN {
        let tail: PathBuf = parts[parts.len() - SHOWN..].iter().collect();
        format!(".../{} ({} levels down)", tail.display(), parts.len())
    } else {
        rel.display().to_string()
    };
    io::Error::new(e.kind(), format!("{shown}: {e}"))
}

#[cfg(test)]
pub(super) mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use nix::sys::stat::mkdirat;
    use nix::unistd::symlinkat;

    use super::*;

    /// Makes `top` with `depth` directories `name` nested in it, each
    /// level holding a file `f` of 3 bytes and a symlink `out` to
    /// `outside`; all by descriptor, as the paths outgrow PATH_MAX. Returns
    /// the bytes [`size`] should count.
    pub(in super::super) fn deep_tree(top: &Path, depth: usize, name: &str, outside: &Path) -> u64 {
        fs::create_dir(top).unwrap();
        let mut dir = open(AT_FDCWD, top.as_os_str(), OFlag::O_RDONLY).unwrap();
        for _ in 0..depth {
            let file = openat(
                &dir,
                "f",
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .unwrap();
            fs::File::from(file).write_all(b"abc").unwrap();
            symlinkat(outside, &dir, "out").unwrap();
            mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).unwrap();
            dir = open(dir.as_fd(), OsStr::new(name), OFlag::O_RDONLY).unwrap();
        }
        depth as u64 * (3 + outside.as_os_str().len() as u64)
    }

    /// A temp dir on tmpfs when there is one: thousands of mkdirs on a
    /// disk filesystem can take seconds.
    pub(in super::super) fn fast_tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap()
    }

    fn open_fds() -> usize {
        fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[test]
    fn measures_and_removes_a_tree_deeper_than_path_max() {
        // Deeper than the open-file limit (1024 by default) too.
        const DEPTH: usize = 3000;
        let tmp = fast_tempdir();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        let top = tmp.path().join("top");
        let expected = deep_tree(&top, DEPTH, "d", &outside);
        assert_eq!(size(&top).unwrap(), expected);
        let (mut entries, mut fds_there) = (0, None);
        walk(&top, |rel, _| {
            entries += 1;
            if fds_there.is_none() && rel.components().count() == DEPTH {
                fds_there = Some(open_fds());
            }
        })
        .unwrap();
        assert_eq!(entries, 3 * DEPTH);
        let fds_there = fds_there.expect("the walk reached the bottom");
        // Other tests run meanwhile and hold a few: nowhere near a
        // descriptor per level.
        assert!(fds_there < DEPTH / 3, "{fds_there} descriptors open");

        remove(&top).unwrap();
        assert!(fs::symlink_metadata(&top).is_err());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
        remove(&top).unwrap();
    }

    #[test]
    fn removes_what_is_no_directory_and_locked_directories() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(remove(&tmp.path().join("missing")).is_ok());

        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert_eq!(size(&link).unwrap(), outside.as_os_str().len() as u64);
        remove(&link).unwrap();
        assert!(fs::symlink_metadata(&link).is_err());
        assert!(outside.join("keep").exists());

        let file = tmp.path().join("file");
        fs::write(&file, b"12345").unwrap();
        assert_eq!(size(&file).unwrap(), 5);
        remove(&file).unwrap();
        assert!(!file.exists());

        // As a rootless unpack leaves them: modes that keep the owner out.
        let top = tmp.path().join("top");
        fs::create_dir_all(top.join("ro/none")).unwrap();
        fs::write(top.join("ro/none/f"), b"x").unwrap();
        fs::write(top.join("ro/g"), b"yy").unwrap();
        fs::set_permissions(top.join("ro/none"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(top.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let mut seen = Vec::new();
        walk(&top, |rel, _| seen.push(rel.to_owned())).unwrap();
        seen.sort();
        assert_eq!(
            seen,
            ["ro", "ro/g", "ro/none", "ro/none/f"].map(PathBuf::from)
        );
        assert_eq!(size(&top).unwrap(), 3);
        fs::set_permissions(top.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        remove(&top).unwrap();
        assert!(!top.exists());

        let e = walk(&tmp.path().join("missing"), |_, _| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn long_paths_in_errors_are_cut_short() {
        let rel: PathBuf = std::iter::repeat_n("d", 20).collect();
        let e = in_tree(&rel, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(
            e.to_string()
                .starts_with(".../d/d/d/d/d/d/d/d (20 levels down): "),
            "{e}"
        );
    }
}
