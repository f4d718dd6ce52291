//! A terminal for an exec with a tty, made in the container's own devpts
//! instance (each container mounts one), so that inside, the process's
//! terminal has a name (`tty` says `/dev/pts/0`), as runc makes it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use nix::libc;

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot open the container's terminal multiplexer {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a terminal multiplexer")]
    NotPtmx(String),
    #[error("cannot {what} of the container's terminal: {source}")]
    Ioctl {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Both ends of a new terminal: the master for whoever relays it, the
/// slave for the process.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// devpts' `ptmx` is character device 5:2.
const PTMX: (u32, u32) = (5, 2);

/// Opens a terminal in the devpts of the container whose process is `pid`.
pub fn open_in(pid: u32) -> Result<Pty, PtyError> {
    let path = format!("/proc/{pid}/root/dev/pts/ptmx");
    // Non-blocking: the container may have put anything at that path, and
    // opening it must not hang the supervisor.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|source| PtyError::Open {
            path: path.clone(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| PtyError::Open {
        path: path.clone(),
        source,
    })?;
    let rdev = meta.rdev();
    if !meta.file_type().is_char_device() || (libc::major(rdev), libc::minor(rdev)) != PTMX {
        return Err(PtyError::NotPtmx(path));
    }
    let master = OwnedFd::from(file);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads the int it is given.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(PtyError::Ioctl {
            what: "unlock the slave",
            source: std::io::Error::last_os_error(),
        });
    }
    // The slave by the master, not by a path the container controls.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(PtyError::Ioctl {
            what: "open the slave",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the ioctl just returned this new descriptor; nothing else
    // owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok(Pty { master, slave })
}
