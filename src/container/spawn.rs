//! Starting a container's main process: fork, the child's setup, exec. An
//! exec that fails (no such file, not executable) comes back to the parent
//! over a close-on-exec pipe as a start error with its reason; the child is
//! reaped, so nothing hangs and no zombie is left.
//!
//! Everything the child needs (paths, argv and envp pointer arrays) is built
//! before the fork: between fork and exec the child only makes
//! async-signal-safe system calls and allocates nothing.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe2, read};

/// runc's PATH when the container's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the command is empty")]
    EmptyCommand,
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("cannot make the start pipe: {0}")]
    Pipe(Errno),
    #[error("cannot fork: {0}")]
    Fork(Errno),
    #[error("chdir {dir:?}: {}", errno.desc())]
    Chdir { dir: String, errno: Errno },
    #[error("exec {program:?}: {}", errno.desc())]
    Exec { program: String, errno: Errno },
}

/// A process ready to start: every byte the child needs, prepared.
#[derive(Debug)]
pub struct Command {
    program: CString,
    /// Owns the strings the pointer arrays point into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    cwd: Option<CString>,
}

fn cstring(s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul(s.to_owned()))
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Finds `name` the way execvp would, in the PATH of the container's
/// environment, looking under `root` (the container's root as the parent
/// sees it). A name with a `/` is used as it is.
pub fn resolve(name: &str, env: &[(String, String)], root: &Path) -> Result<String, SpawnError> {
    if name.is_empty() {
        return Err(SpawnError::EmptyCommand);
    }
    if name.contains('/') {
        return Ok(name.to_owned());
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        let on_host = root.join(candidate.trim_start_matches('/'));
        let executable = std::fs::metadata(&on_host)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if executable {
            return Ok(candidate);
        }
    }
    Err(SpawnError::NotFound(name.to_owned()))
}

impl Command {
    /// `argv[0]` is resolved in the environment's PATH under `root`.
    pub fn new(
        argv: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
        root: &Path,
    ) -> Result<Command, SpawnError> {
        let first = argv.first().ok_or(SpawnError::EmptyCommand)?;
        let program = cstring(&resolve(first, env, root)?)?;
        let argv: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect::<Result<_, _>>()?;
        let cwd = cwd.map(cstring).transpose()?;
        Ok(Command {
            program,
            argv_ptrs: null_terminated(&argv),
            envp_ptrs: null_terminated(&envp),
            _argv: argv,
            _envp: envp,
            cwd,
        })
    }

    pub fn program(&self) -> &str {
        self.program.to_str().unwrap_or_default()
    }
}

/// What the child reports before it dies: the failing step and its errno.
const STEP_CHDIR: u32 = 1;
const STEP_EXEC: u32 = 2;

/// Starts the process. `Ok` means the exec succeeded.
pub fn spawn(cmd: &Command) -> Result<Pid, SpawnError> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    // SAFETY: the child runs only child_after_fork, which makes
    // async-signal-safe calls on data prepared before the fork.
    match unsafe { fork() }.map_err(SpawnError::Fork)? {
        ForkResult::Child => child_after_fork(cmd, &write_end),
        ForkResult::Parent { child } => {
            drop(write_end);
            parent_wait_for_exec(cmd, child, read_end)
        }
    }
}

/// The child between fork and exec: no allocation, no locks, no return.
fn child_after_fork(cmd: &Command, report: &OwnedFd) -> ! {
    let fail = |step: u32| -> ! {
        let errno = Errno::last_raw();
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&step.to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg lives on
        // the stack.
        unsafe {
            libc::write(report.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    };
    if let Some(dir) = &cmd.cwd {
        // SAFETY: dir is a valid NUL-terminated string made before the fork.
        if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
            fail(STEP_CHDIR);
        }
    }
    // SAFETY: program, argv and envp are NUL-terminated strings and
    // null-terminated pointer arrays built before the fork.
    unsafe {
        libc::execve(
            cmd.program.as_ptr(),
            cmd.argv_ptrs.as_ptr(),
            cmd.envp_ptrs.as_ptr(),
        );
    }
    fail(STEP_EXEC)
}

/// Reads the pipe: end of file means the exec closed it (success); a report
/// means the child failed and is reaped.
fn parent_wait_for_exec(cmd: &Command, child: Pid, report: OwnedFd) -> Result<Pid, SpawnError> {
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        match read(&report, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    if got < msg.len() {
        return Ok(child);
    }
    // The child has exited (or is about to): reap it.
    let _ = waitpid(child, None);
    let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = Errno::from_raw(i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]));
    Err(match step {
        STEP_CHDIR => SpawnError::Chdir {
            dir: cmd
                .cwd
                .as_ref()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
            errno,
        },
        _ => SpawnError::Exec {
            program: cmd.program().to_owned(),
            errno,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::WaitStatus;

    fn command(argv: &[&str], cwd: Option<&str>) -> Result<Command, SpawnError> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let env = vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        Command::new(&argv, &env, cwd, Path::new("/"))
    }

    #[test]
    fn starts_a_process_that_runs() {
        let cmd = command(&["sh", "-c", "exit 7"], Some("/")).unwrap();
        assert!(cmd.program().ends_with("/sh"));
        let pid = spawn(&cmd).unwrap();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 7));
    }

    #[test]
    fn an_exec_failure_is_a_start_error_and_leaves_no_zombie() {
        let missing = command(&["/nonexistent/binary"], None).unwrap();
        let err = spawn(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec \"/nonexistent/binary\": No such file or directory"
        );
        // Not executable: a plain file.
        let dir = std::env::temp_dir().join(format!("podrun-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "data").unwrap();
        let err = spawn(&command(&[plain.to_str().unwrap()], None).unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                SpawnError::Exec {
                    errno: Errno::EACCES,
                    ..
                }
            ),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_working_directory_is_a_start_error() {
        let cmd = command(&["true"], Some("/nonexistent/dir")).unwrap();
        let err = spawn(&cmd).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chdir \"/nonexistent/dir\": No such file or directory"
        );
    }

    #[test]
    fn names_are_resolved_in_path_or_refused() {
        let err = command(&["no-such-command-podrun"], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"no-such-command-podrun\": executable file not found in $PATH"
        );
        assert!(matches!(command(&[], None), Err(SpawnError::EmptyCommand)));
        assert!(matches!(
            command(&["/bin/a\0b"], None),
            Err(SpawnError::Nul(_))
        ));
    }
}
