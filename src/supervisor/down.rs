//! `podrun down` and `rm`: a pod stopped through its supervisor, or torn
//! down from its state on disk when the supervisor is gone.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal as NixSignal;
use nix::unistd::Pid;

use super::{STOP_GRACE_FILE, SupervisorError};
use crate::api::state::State;
use crate::runtime;
use crate::sys::pidfd;

/// Tears a pod down from its state alone: asks a live supervisor to stop
/// (with `grace`), waits for it, then removes whatever is left.
pub fn down(
    name: &str,
    grace: Option<i64>,
    wait: std::time::Duration,
) -> Result<State, SupervisorError> {
    let mut state = State::load(name)?;
    let pid = state.supervisor_pid;
    let running = |s: &State| s.supervisor_alive();
    if !state.finished && running(&state) {
        if let Some(g) = grace {
            let _ = fs::write(state.dirs.run.join(STOP_GRACE_FILE), g.to_string());
        }
        let target = Pid::from_raw(pid as i32);
        // Its exit is awaited on a pidfd, opened before the signal and
        // known to be this supervisor's (not a reused pid) once its start
        // time still matches.
        let pidfd = pidfd::open(pid).filter(|_| running(&state));
        pidfd::signal(pidfd.as_ref(), target, NixSignal::SIGTERM);
        let deadline = std::time::Instant::now() + wait;
        wait_exit(pidfd.as_ref(), deadline, || running(&state));
        if running(&state) {
            pidfd::signal(pidfd.as_ref(), target, NixSignal::SIGKILL);
            let forever = std::time::Instant::now() + std::time::Duration::from_secs(3600);
            wait_exit(pidfd.as_ref(), forever, || running(&state));
        }
        state = State::load(name)?;
    }
    runtime::remove_pod_sandbox(&state.dirs, &state.cgroup)?;
    if !state.torn_down || !state.finished {
        state.finished = true;
        state.torn_down = true;
        for c in state.containers.values_mut() {
            c.pid = None;
        }
        state.save()?;
    }
    Ok(state)
}

/// Waits until the process of `pidfd` exits or `deadline` passes; without
/// a pidfd, polls `alive` instead.
fn wait_exit(pidfd: Option<&OwnedFd>, deadline: std::time::Instant, alive: impl Fn() -> bool) {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match pidfd {
            Some(fd) => {
                let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                match poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                ) {
                    Err(Errno::EINTR) => continue,
                    _ => return,
                }
            }
            None if alive() => std::thread::sleep(std::time::Duration::from_millis(5)),
            None => return,
        }
    }
}

/// Removes a pod's state and logs (after `down`).
pub fn forget(state: &State) -> Result<(), SupervisorError> {
    Ok(crate::sandbox::pod::forget(&state.dirs)?)
}
