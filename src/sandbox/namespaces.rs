//! The pod's shared network, IPC and UTS namespaces, without a pause
//! process: a short-lived child unshares them, sets the hostname and brings
//! the loopback up, and the parent pins each one by bind-mounting the
//! child's `/proc/<pid>/ns/<kind>` onto a file under the pod's run
//! directory (the CRI-O `pinns` approach). Containers join the pins.

use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe2, read, write};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the namespace holder: {0}")]
    Holder(Errno),
    #[error("the namespace holder failed to {step}: {}", errno.desc())]
    Setup { step: &'static str, errno: Errno },
    #[error("cannot pin {kind} namespace at {path}: {}", errno.desc())]
    Pin {
        kind: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("cannot unpin {path}: {}", errno.desc())]
    Unpin { path: PathBuf, errno: Errno },
}

/// A namespace the pod can have of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Net, Kind::Ipc, Kind::Uts];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }

    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }
}

/// Which namespaces the pod gets of its own (the others are the host's):
/// `hostNetwork` shares the network and, as in Kubernetes, the hostname;
/// `hostIPC` shares IPC.
pub fn wanted(host_network: bool, host_ipc: bool) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| match k {
            Kind::Net | Kind::Uts => !host_network,
            Kind::Ipc => !host_ipc,
        })
        .collect()
}

pub fn pin_path(ns_dir: &Path, kind: Kind) -> PathBuf {
    ns_dir.join(kind.name())
}

/// Steps of the holder child, reported back as a byte.
const STEP_NAMES: [&str; 4] = [
    "unshare namespaces",
    "set the hostname",
    "bring up the loopback interface",
    "report",
];

/// Creates and pins the namespaces in `kinds` under `ns_dir`. On failure
/// whatever was pinned is unpinned again.
pub fn create(ns_dir: &Path, kinds: &[Kind], hostname: &str) -> Result<(), NamespaceError> {
    if kinds.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(ns_dir).map_err(|source| NamespaceError::Io {
        path: ns_dir.to_owned(),
        source,
    })?;
    let flags = kinds
        .iter()
        .fold(CloneFlags::empty(), |f, k| f | k.clone_flag());
    let set_hostname = kinds.contains(&Kind::Uts);
    let lo_up = kinds.contains(&Kind::Net);
    let host = std::ffi::CString::new(hostname).unwrap_or_default();

    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(NamespaceError::Holder)?;
    let (done_r, done_w) = pipe2(OFlag::O_CLOEXEC).map_err(NamespaceError::Holder)?;
    // SAFETY: the child only makes system calls on data prepared before
    // the fork, and ends with _exit.
    let child = match unsafe { fork() }.map_err(NamespaceError::Holder)? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            holder(
                flags,
                set_hostname.then_some(&host),
                lo_up,
                &ready_w,
                &done_r,
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop(ready_w);
    drop(done_r);
    let mut byte = [0u8; 2];
    let got = read(&ready_r, &mut byte).unwrap_or(0);
    let result = if got == 2 && byte[0] == 0 {
        pin_all(ns_dir, kinds, child.as_raw())
    } else if got == 2 {
        Err(NamespaceError::Setup {
            step: STEP_NAMES[usize::from(byte[0] - 1).min(STEP_NAMES.len() - 1)],
            errno: Errno::from_raw(i32::from(byte[1])),
        })
    } else {
        Err(NamespaceError::Setup {
            step: "report",
            errno: Errno::EPIPE,
        })
    };
    // Closing the pipe lets the holder exit; its namespaces live on in the
    // pins.
    drop(done_w);
    let _ = waitpid(child, None);
    if result.is_err() {
        let _ = remove(ns_dir);
    }
    result
}

fn pin_all(ns_dir: &Path, kinds: &[Kind], pid: i32) -> Result<(), NamespaceError> {
    for kind in kinds {
        let target = pin_path(ns_dir, *kind);
        fs::File::create(&target).map_err(|source| NamespaceError::Io {
            path: target.clone(),
            source,
        })?;
        let source = format!("/proc/{pid}/ns/{}", kind.name());
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|errno| NamespaceError::Pin {
            kind: kind.name(),
            path: target.clone(),
            errno,
        })?;
    }
    Ok(())
}

/// The holder child: unshare, hostname, loopback, report, wait. No
/// allocation between fork and _exit.
fn holder(
    flags: CloneFlags,
    hostname: Option<&std::ffi::CString>,
    lo_up: bool,
    ready: &OwnedFd,
    done: &OwnedFd,
) -> ! {
    let report = |step: u8| -> ! {
        let msg = [step, Errno::last_raw() as u8];
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg is on the
        // stack.
        unsafe {
            libc::write(ready.as_raw_fd(), msg.as_ptr().cast(), 2);
            libc::_exit(1)
        }
    };
    // SAFETY: unshare(2) with namespace flags only.
    if unsafe { libc::unshare(flags.bits()) } != 0 {
        report(1);
    }
    if let Some(name) = hostname {
        // SAFETY: name is a NUL-terminated string made before the fork.
        if unsafe { libc::sethostname(name.as_ptr(), name.as_bytes().len()) } != 0 {
            report(2);
        }
    }
    if lo_up && !loopback_up() {
        report(3);
    }
    let _ = write(ready, &[0u8, 0]);
    let mut byte = [0u8; 1];
    // Returns at end of file, when the parent has pinned the namespaces.
    let _ = read(done, &mut byte);
    // SAFETY: _exit(2) is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// `ip link set lo up`, through SIOCSIFFLAGS on a datagram socket.
fn loopback_up() -> bool {
    // SAFETY: plain system calls on a stack-allocated ifreq; the socket is
    // closed before returning.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0;
        if ok {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ok = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0;
        }
        libc::close(sock);
        ok
    }
}

/// Opens the pinned namespaces for joining, in `kinds` order.
pub fn open(ns_dir: &Path, kinds: &[Kind]) -> Result<Vec<(Kind, OwnedFd)>, NamespaceError> {
    kinds
        .iter()
        .map(|kind| {
            let path = pin_path(ns_dir, *kind);
            fs::File::open(&path)
                .map(|f| (*kind, OwnedFd::from(f)))
                .map_err(|source| NamespaceError::Io { path, source })
        })
        .collect()
}

/// Unpins every namespace under `ns_dir` and removes the directory.
/// Idempotent: what is already gone is fine.
pub fn remove(ns_dir: &Path) -> Result<(), NamespaceError> {
    for kind in Kind::ALL {
        let path = pin_path(ns_dir, kind);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(NamespaceError::Unpin { path, errno }),
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(NamespaceError::Io { path, source: e });
            }
            _ => {}
        }
    }
    match fs::remove_dir(ns_dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(NamespaceError::Io {
            path: ns_dir.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_network_shares_the_hostname_too() {
        assert_eq!(wanted(false, false), Kind::ALL.to_vec());
        assert_eq!(wanted(true, false), vec![Kind::Ipc]);
        assert_eq!(wanted(false, true), vec![Kind::Net, Kind::Uts]);
        assert!(wanted(true, true).is_empty());
    }
}
