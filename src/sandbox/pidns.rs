//! A pod's shared PID namespace (`shareProcessNamespace: true`). A PID
//! namespace lives only as long as its first process, so this one case
//! needs a process of podrun's own: a minimal init, cloned into a new PID
//! namespace in a leaf of the pod's cgroup, that only reaps what is
//! orphaned to it (the pause process's other job). Containers are then
//! cloned into its namespace; `cgroup.kill` ends it with the pod.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;

use crate::sandbox::cgroup::{CgroupError, PodCgroup};
use crate::sys::process::{Cloned, clone3};

/// The leaf cgroup the init lives in: a name no container can have
/// (container names are DNS labels, without dots).
pub const INIT_CGROUP: &str = "podrun.init";

#[derive(Debug, thiserror::Error)]
pub enum PidNamespaceError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cannot start the pod's PID namespace: {0}")]
    Clone(Errno),
    #[error("cannot open the pod's PID namespace: {0}")]
    Open(std::io::Error),
}

/// The shared PID namespace: its init and a handle to enter it.
#[derive(Debug)]
pub struct SharedPidNamespace {
    pub init: Pid,
    pub ns: OwnedFd,
    _pidfd: OwnedFd,
}

pub fn create(pod: &PodCgroup) -> Result<SharedPidNamespace, PidNamespaceError> {
    let leaf = pod.container(INIT_CGROUP)?;
    leaf.create(&Default::default())?;
    let dir = fs::File::open(leaf.dir()).map_err(PidNamespaceError::Open)?;
    match clone3(libc::CLONE_NEWPID as u64, Some(dir.as_raw_fd()))
        .map_err(PidNamespaceError::Clone)?
    {
        Cloned::Child => init(),
        Cloned::Parent { pid, pidfd } => {
            let ns = fs::File::open(format!("/proc/{pid}/ns/pid"))
                .map(OwnedFd::from)
                .map_err(PidNamespaceError::Open)?;
            Ok(SharedPidNamespace {
                init: pid,
                ns,
                _pidfd: pidfd,
            })
        }
    }
}

/// PID 1 of the pod: reaps orphans until it is killed. No allocation: it
/// runs in a clone of the supervisor without exec.
fn init() -> ! {
    // SAFETY: plain system calls on stack data.
    unsafe {
        // Nothing of the supervisor's stays open here.
        libc::close_range(0, libc::c_uint::MAX, 0);
        libc::setsid();
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            if libc::sigwaitinfo(&chld, std::ptr::null_mut()) < 0 && Errno::last() != Errno::EINTR {
                libc::pause();
            }
        }
    }
}
