//! Process descriptors: a handle on a process that no later process
//! reusing its pid can be mistaken for.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A pidfd of process `pid`, if it is there (and the kernel has pidfds).
pub fn open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) with integer arguments; a descriptor it returns
    // is this process's own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor from the kernel, owned from here on.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Signals the process of `pidfd`, which cannot be another one that has
/// taken its pid since; `pid` only without a pidfd.
pub fn signal(pidfd: Option<&OwnedFd>, pid: Pid, sig: Signal) {
    match pidfd {
        Some(fd) => {
            // SAFETY: pidfd_send_signal(2) with a descriptor this process
            // owns, a signal number and no siginfo.
            let _ = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig as libc::c_int,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        None => {
            let _ = kill(pid, sig);
        }
    }
}
