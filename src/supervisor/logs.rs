//! A container run's stdout and stderr: pipes the supervisor holds and
//! drains in its loop, written to the run's CRI log file (and, for `up` in
//! the foreground, echoed with a `name | ` prefix). The pipes outlive the
//! process until they are drained, so a restart loses no line.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{pipe2, read};

use crate::container::log::{LineSplitter, Record, Stream};

/// One stream of one container run.
pub struct LogPipe {
    pub container: String,
    stream: Stream,
    fd: OwnedFd,
    splitter: LineSplitter,
    file: Rc<fs::File>,
}

/// Container output echoed on stdout for `up` in the foreground. Written
/// only as far as stdout takes it without blocking: a slow terminal or an
/// unread pipe must not stall the loop (and with it the containers). What
/// cannot wait is dropped with a note; the log files have everything.
#[derive(Debug, Default)]
pub struct Echo {
    enabled: bool,
    queue: std::collections::VecDeque<u8>,
    dropped: usize,
    /// stdout opened again without blocking, when it is a pipe or a
    /// terminal (where POLLOUT does not promise room for a whole write).
    nonblocking: Option<fs::File>,
}

/// What one wake-up of the loop reads from one pipe at most.
pub const PUMP_BUDGET: usize = 1 << 20;
/// What is read from an ended run's pipes before its exit is reported (its
/// processes are gone, so this only bounds a writer outside its PID
/// namespace, with hostPID).
pub const DRAIN_BUDGET: usize = 64 << 20;

/// How much echoed output waits for a slow stdout before some is dropped.
const ECHO_BACKLOG: usize = 4 << 20;

impl Echo {
    pub fn new(enabled: bool) -> Echo {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let stream = fs::metadata("/proc/self/fd/1")
            .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_char_device());
        // A new open file description: O_NONBLOCK on it leaves the shared
        // one (the user's terminal) as it was.
        let nonblocking = stream
            .then(|| {
                fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open("/proc/self/fd/1")
                    .ok()
            })
            .flatten();
        Echo {
            enabled,
            nonblocking,
            ..Echo::default()
        }
    }

    fn push(&mut self, container: &str, records: &[Record]) {
        if !self.enabled {
            return;
        }
        for r in records {
            let len = container.len() + 3 + r.content.len() + 1;
            if self.queue.len() + len > ECHO_BACKLOG {
                self.dropped += r.content.len();
                continue;
            }
            if self.dropped > 0 {
                let note = format!(
                    "podrun | ({} bytes of output not shown here; `podrun logs` has them)\n",
                    self.dropped
                );
                self.queue.extend(note.as_bytes());
                self.dropped = 0;
            }
            self.queue.extend(container.as_bytes());
            self.queue.extend(b" | ");
            self.queue.extend(&r.content);
            self.queue.push_back(b'\n');
        }
        self.flush();
    }

    /// Whether output waits for stdout to take it.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// At the end: gives stdout a few seconds to take the rest.
    pub fn flush_all(&mut self) {
        let stdout = std::io::stdout();
        for _ in 0..50 {
            self.flush();
            if !self.pending() {
                return;
            }
            let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
            let _ = poll(&mut fds, PollTimeout::from(100u8));
        }
    }

    /// Writes what stdout takes now, a pipe buffer's atomic size at a time.
    pub fn flush(&mut self) {
        let stdout = std::io::stdout();
        while !self.queue.is_empty() {
            let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
            let writable = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
                && fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLOUT));
            if !writable {
                return;
            }
            let (front, _) = self.queue.as_slices();
            let chunk = &front[..front.len().min(PIPE_BUF)];
            let written = match &self.nonblocking {
                Some(out) => nix::unistd::write(out, chunk),
                None => nix::unistd::write(&stdout, chunk),
            };
            match written {
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => return,
                Err(_) => {
                    // Nobody reads stdout any more.
                    self.queue.clear();
                    self.enabled = false;
                    return;
                }
            }
        }
    }
}

/// Writes to a pipe of at most this size are atomic, and fit once poll
/// says it is writable.
const PIPE_BUF: usize = 4096;

/// The pipes of a new run: the supervisor's read ends and the child's
/// write ends (stdout, stderr).
pub fn open(container: &str, log_path: &Path) -> std::io::Result<(Vec<LogPipe>, [OwnedFd; 2])> {
    // Not every local user's to read, as containerd keeps container logs
    // (0640): a container's output may hold its secrets.
    if let Some(dir) = log_path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    let file = Rc::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(log_path)?,
    );
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC)?;
    let pipes = [(out_r, Stream::Stdout), (err_r, Stream::Stderr)]
        .into_iter()
        .map(|(fd, stream)| {
            fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            Ok(LogPipe {
                container: container.to_owned(),
                stream,
                fd,
                splitter: LineSplitter::default(),
                file: Rc::clone(&file),
            })
        })
        .collect::<Result<Vec<_>, Errno>>()?;
    Ok((pipes, [out_w, err_w]))
}

impl LogPipe {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Reads what is there, up to `budget` bytes (so that one chatty
    /// container cannot hold the loop: poll comes back for the rest); true
    /// at end of file (every writer gone).
    pub fn pump(&mut self, echo: &mut Echo, budget: usize) -> bool {
        let mut buf = [0u8; 64 * 1024];
        let mut taken = 0;
        while taken < budget {
            match read(&self.fd, &mut buf) {
                Ok(0) => {
                    if let Some(last) = self.splitter.finish() {
                        self.write(&[last], echo);
                    }
                    return true;
                }
                Ok(n) => {
                    taken += n;
                    let records = self.splitter.feed(&buf[..n]);
                    self.write(&records, echo);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return false,
                Err(e) => {
                    tracing::warn!(container = %self.container, "reading its output: {e}");
                    return true;
                }
            }
        }
        false
    }

    fn write(&mut self, records: &[Record], echo: &mut Echo) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).ok())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend_from_slice(&r.encode(&now, self.stream));
        }
        if let Err(e) = (&*self.file).write_all(&bytes) {
            tracing::warn!(container = %self.container, "writing its log: {e}");
        }
        echo.push(&self.container, records);
    }
}
