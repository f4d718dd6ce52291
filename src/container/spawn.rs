//! Starting a container's main process: clone3 into its namespaces and
//! cgroup, the child's setup (namespaces joined, mounts, identity,
//! capabilities, streams), exec. An
//! exec that fails (no such file, not executable) comes back to the parent
//! over a close-on-exec pipe as a start error with its reason; the child is
//! reaped, so nothing hangs and no zombie is left.
//!
//! Everything the child needs (paths, argv and envp pointer arrays) is built
//! before the clone: between clone and exec the child only makes
//! async-signal-safe system calls and allocates nothing.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, pipe2, read};

use super::step::Step;
use crate::sys::process::{Cloned, SigmaskGuard, clone3};

pub use crate::api::runtime::DEFAULT_PATH;

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
    #[error("cannot {what}: {}", errno.desc())]
    Setup { what: String, errno: Errno },
}

impl SpawnError {
    /// The exit code a shell gives a command that could not run: 127 when
    /// it is not there, 126 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_)
            | SpawnError::Exec {
                errno: Errno::ENOENT,
                ..
            } => 127,
            _ => 126,
        }
    }
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
        // Symlinks in the root resolve inside it, as they will for the
        // container after pivot_root.
        let Ok(on_host) = super::rootfs::secure_join(root, &candidate) else {
            continue;
        };
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

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Everything about the child besides its command: namespaces, cgroup,
/// mounts, identity, capabilities and standard streams. The default is a
/// plain child of the caller.
#[derive(Debug, Default)]
pub struct Isolation {
    /// `CLONE_NEW*` flags for the clone itself.
    pub clone_flags: u64,
    /// The cgroup directory the child is born in (`CLONE_INTO_CGROUP`).
    pub cgroup: Option<OwnedFd>,
    /// Namespaces to join (setns), each with its `CLONE_NEW*` type.
    pub join: Vec<(OwnedFd, libc::c_int)>,
    pub steps: Vec<Step>,
    /// The value written to `/proc/self/oom_score_adj`.
    pub oom_score_adj: Option<CString>,
    /// stdin, stdout and stderr.
    pub stdio: Option<[OwnedFd; 3]>,
    pub creds: Option<Creds>,
    /// The capability set (bit N = capability N) and the kernel's last
    /// capability: the bounding set is cut to it and it becomes the
    /// effective and permitted sets (the inheritable set is left empty).
    pub caps: Option<(u64, u8)>,
    pub no_new_privs: bool,
    /// Starts a new session, so a terminal's signals reach the supervisor
    /// and not the container directly.
    pub new_session: bool,
    /// stdin is a terminal that becomes the new session's controlling
    /// terminal (an exec with a tty).
    pub controlling_tty: bool,
    /// The pod's shared PID namespace (shareProcessNamespace), entered
    /// instead of a new one.
    pub pid_namespace: Option<OwnedFd>,
}

/// A started process and the pidfd that watches it.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    pub pidfd: OwnedFd,
}

/// What the child reports before it dies: the failing step and its errno.
const STEP_CHDIR: u32 = 1;
const STEP_EXEC: u32 = 2;
const STEP_SETNS: u32 = 3;
const STEP_OOM: u32 = 4;
const STEP_STDIO: u32 = 5;
const STEP_CAPS: u32 = 6;
const STEP_CREDS: u32 = 7;
const STEP_NO_NEW_PRIVS: u32 = 8;
const STEP_SESSION: u32 = 9;
const STEP_TTY: u32 = 10;
const STEP_MOUNT: u32 = 1000;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Starts the process: one clone3 into its namespaces and cgroup, the
/// child's setup, exec. `Ok` means the exec succeeded.
pub fn spawn(cmd: &Command, iso: &Isolation) -> Result<Child, SpawnError> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let cgroup = iso.cgroup.as_ref().map(AsRawFd::as_raw_fd);
    // A shared PID namespace is entered for the clone only: the supervisor
    // itself stays where it is.
    let back = match &iso.pid_namespace {
        Some(target) => Some(enter_pid_namespace(target)?),
        None => None,
    };
    // Signals wait until the child has put back the default handlers: the
    // supervisor's must never run in it.
    let blocked = SigmaskGuard::block_all();
    let cloned = clone3(iso.clone_flags, cgroup).map_err(SpawnError::Fork);
    if let Ok(Cloned::Child) = cloned {
        child_after_clone(cmd, iso, &write_end)
    }
    drop(blocked);
    if let Some(own) = back {
        // SAFETY: setns(2) back into the namespace this process came from.
        if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            // Every later child would land in the pod's namespace.
            let errno = Errno::last();
            if let Ok(Cloned::Parent { pid, .. }) = &cloned {
                let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(*pid, None);
            }
            return Err(SpawnError::Setup {
                what: "return to podrun's own PID namespace".to_owned(),
                errno,
            });
        }
    }
    match cloned? {
        Cloned::Child => unreachable!("the child has exec'd or exited"),
        Cloned::Parent { pid, pidfd } => {
            drop(write_end);
            parent_wait_for_exec(cmd, iso, pid, read_end).map(|pid| Child { pid, pidfd })
        }
    }
}

/// Makes the next child of this process start in `target`'s PID
/// namespace; returns this process's own, to go back to.
fn enter_pid_namespace(target: &OwnedFd) -> Result<OwnedFd, SpawnError> {
    let own = std::fs::File::open("/proc/self/ns/pid")
        .map(OwnedFd::from)
        .map_err(|e| SpawnError::Setup {
            what: "open this process's PID namespace".to_owned(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    // SAFETY: setns(2) on a namespace file descriptor.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
        return Err(SpawnError::Setup {
            what: "enter the pod's PID namespace".to_owned(),
            errno: Errno::last(),
        });
    }
    Ok(own)
}

/// The child between clone and exec: no allocation, no locks, no return.
/// Every string and array it uses was built before the clone.
fn child_after_clone(cmd: &Command, iso: &Isolation, report: &OwnedFd) -> ! {
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
    // SAFETY: plain system calls on stack data; nothing here allocates.
    unsafe {
        // Only 0, 1 and 2 survive the exec.
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        );
        // The supervisor's handlers, ignored signals and mask are not the
        // container's: defaults first, then unblock (signals were blocked
        // across the clone).
        for sig in 1..=libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if iso.new_session && libc::setsid() < 0 {
            fail(STEP_SESSION);
        }
        for (fd, kind) in &iso.join {
            if libc::setns(fd.as_raw_fd(), *kind) != 0 {
                fail(STEP_SETNS);
            }
        }
        if let Some(value) = &iso.oom_score_adj {
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            let len = value.as_bytes().len();
            if fd < 0 || libc::write(fd, value.as_ptr().cast(), len) != len as isize {
                fail(STEP_OOM);
            }
            libc::close(fd);
        }
    }
    for (i, step) in iso.steps.iter().enumerate() {
        if !run_step(step) {
            fail(STEP_MOUNT + i as u32);
        }
    }
    if let Some(dir) = &cmd.cwd {
        // SAFETY: dir is a valid NUL-terminated string made before the clone.
        if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
            fail(STEP_CHDIR);
        }
    }
    if let Some([stdin, stdout, stderr]) = &iso.stdio {
        for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
            // SAFETY: dup2 onto the standard descriptors.
            if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
                fail(STEP_STDIO);
            }
        }
    }
    // SAFETY: an ioctl on the standard input just set up.
    if iso.controlling_tty && unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        fail(STEP_TTY);
    }
    if let Some((set, last_cap)) = iso.caps {
        // The bounding set is cut while CAP_SETPCAP is still held.
        for cap in 0..=last_cap {
            if set & (1u64 << cap) == 0 {
                // SAFETY: prctl with integer arguments.
                let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) };
                if r != 0 && Errno::last() != Errno::EINVAL {
                    fail(STEP_CAPS);
                }
            }
        }
        // SAFETY: prctl with integer arguments; keeps the permitted set
        // across the change of uid below.
        unsafe {
            libc::prctl(libc::PR_SET_KEEPCAPS, 1);
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
        }
    }
    if let Some(creds) = &iso.creds {
        // SAFETY: groups is a Vec built before the clone; the calls only
        // read it.
        let ok = unsafe {
            libc::setgroups(creds.groups.len(), creds.groups.as_ptr()) == 0
                && libc::setresgid(creds.gid, creds.gid, creds.gid) == 0
                && libc::setresuid(creds.uid, creds.uid, creds.uid) == 0
        };
        if !ok {
            fail(STEP_CREDS);
        }
    }
    if let Some((set, _)) = iso.caps {
        let header = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let word = |shift: u32| (set >> shift) as u32;
        // The inheritable set stays empty (CVE-2022-24769): a process
        // must not gain a file's inheritable capabilities on exec.
        let data = [
            CapData {
                effective: word(0),
                permitted: word(0),
                inheritable: 0,
            },
            CapData {
                effective: word(32),
                permitted: word(32),
                inheritable: 0,
            },
        ];
        // SAFETY: capset(2) with a v3 header and its two data words, all on
        // the stack.
        if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
            fail(STEP_CAPS);
        }
    }
    if iso.no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            fail(STEP_NO_NEW_PRIVS);
        }
    }
    // SAFETY: program, argv and envp are NUL-terminated strings and
    // null-terminated pointer arrays built before the clone.
    unsafe {
        libc::execve(
            cmd.program.as_ptr(),
            cmd.argv_ptrs.as_ptr(),
            cmd.envp_ptrs.as_ptr(),
        );
    }
    fail(STEP_EXEC)
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// One mount step in the child; false (with errno set) when it failed.
fn run_step(step: &Step) -> bool {
    let exists = || Errno::last() == Errno::EEXIST;
    // SAFETY: every pointer is a NUL-terminated string built before the
    // clone, or null where the call allows it.
    unsafe {
        match step {
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                libc::mount(
                    opt_ptr(source),
                    target.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                ) == 0
            }
            Step::Attach { tree, target, .. } => {
                libc::syscall(
                    libc::SYS_move_mount,
                    *tree,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    libc::MOVE_MOUNT_F_EMPTY_PATH,
                ) == 0
            }
            Step::Detach { target } => {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
                true
            }
            Step::Mkdir { path } => libc::mkdir(path.as_ptr(), 0o755) == 0 || exists(),
            Step::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            Step::Symlink { target, link } => {
                libc::symlink(target.as_ptr(), link.as_ptr()) == 0 || exists()
            }
            Step::Pivot { root } => {
                let dot = c".".as_ptr();
                libc::chdir(root.as_ptr()) == 0
                    && libc::syscall(libc::SYS_pivot_root, dot, dot) == 0
                    && libc::umount2(dot, libc::MNT_DETACH) == 0
                    && libc::chdir(c"/".as_ptr()) == 0
            }
            Step::IfExists(step) => run_step(step) || Errno::last() == Errno::ENOENT,
        }
    }
}

/// Reads the pipe: end of file means the exec closed it (success); a report
/// means the child failed and is reaped.
fn parent_wait_for_exec(
    cmd: &Command,
    iso: &Isolation,
    child: Pid,
    report: OwnedFd,
) -> Result<Pid, SpawnError> {
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
    let setup = |what: String| SpawnError::Setup { what, errno };
    Err(match step {
        STEP_CHDIR => SpawnError::Chdir {
            dir: cmd
                .cwd
                .as_ref()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
            errno,
        },
        STEP_EXEC => SpawnError::Exec {
            program: cmd.program().to_owned(),
            errno,
        },
        STEP_SETNS => setup("join the pod's namespaces".to_owned()),
        STEP_OOM => setup("set oom_score_adj".to_owned()),
        STEP_STDIO => setup("set up standard streams".to_owned()),
        STEP_CAPS => setup("set capabilities".to_owned()),
        STEP_CREDS => setup("set user and groups".to_owned()),
        STEP_NO_NEW_PRIVS => setup("set no_new_privs".to_owned()),
        STEP_SESSION => setup("start a session".to_owned()),
        STEP_TTY => setup("take the terminal".to_owned()),
        n => setup(
            n.checked_sub(STEP_MOUNT)
                .and_then(|i| iso.steps.get(i as usize))
                .map_or_else(|| format!("step {n}"), Step::describe),
        ),
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
        let pid = spawn(&cmd, &Isolation::default()).unwrap().pid;
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 7));
    }

    #[test]
    fn an_exec_failure_is_a_start_error_and_leaves_no_zombie() {
        let missing = command(&["/nonexistent/binary"], None).unwrap();
        let err = spawn(&missing, &Isolation::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec \"/nonexistent/binary\": No such file or directory"
        );
        // Not executable: a plain file.
        let dir = std::env::temp_dir().join(format!("podrun-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "data").unwrap();
        let err = spawn(
            &command(&[plain.to_str().unwrap()], None).unwrap(),
            &Isolation::default(),
        )
        .unwrap_err();
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
        let err = spawn(&cmd, &Isolation::default()).unwrap_err();
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
