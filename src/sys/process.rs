//! Making processes: clone3 with a pidfd (optionally born in a cgroup),
//! and the signal mask held across it.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;

/// clone3's flag (libc's constant is an `int` that cannot hold it).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Blocks every signal until dropped (then restores the mask before).
pub struct SigmaskGuard(libc::sigset_t);

impl SigmaskGuard {
    pub fn block_all() -> SigmaskGuard {
        // SAFETY: sigset_t is plain data; pthread_sigmask only reads and
        // writes the two sets.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SigmaskGuard(old)
        }
    }
}

impl Drop for SigmaskGuard {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by block_all.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Which side of a clone this is.
#[derive(Debug)]
pub enum Cloned {
    Child,
    Parent { pid: Pid, pidfd: OwnedFd },
}

/// clone3 with a pidfd, the child optionally born in the cgroup `cgroup`.
pub fn clone3(flags: u64, cgroup: Option<i32>) -> Result<Cloned, Errno> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: an all-zero clone_args is its valid "no options" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 without a new stack behaves as fork; the caller's
    // child branch makes only async-signal-safe calls and never returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(args),
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: Pid::from_raw(pid as libc::pid_t),
            // SAFETY: the kernel gave the parent this new descriptor
            // (CLONE_PIDFD).
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}
