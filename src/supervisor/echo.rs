//! Container output echoed on stdout for `up` in the foreground, as
//! `name | line`, without ever blocking the loop.

use std::fs;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::container::log::Record;
use crate::runtime::logs::LogSink;

/// Container output echoed on stdout for `up` in the foreground. Written
/// only as far as stdout takes it without blocking: a slow terminal or an
/// unread pipe must not stall the loop (and with it the containers). What
/// cannot wait is dropped with a note; the log files have everything.
#[derive(Debug, Default)]
pub struct Echo {
    enabled: bool,
    /// Before each container's name (`POD/` when pods share stdout).
    prefix: String,
    queue: std::collections::VecDeque<u8>,
    dropped: usize,
    /// stdout opened again without blocking, when it is a pipe or a
    /// terminal (where POLLOUT does not promise room for a whole write).
    nonblocking: Option<fs::File>,
}

/// Lines the supervisor put on the terminal (echo, and what `up` is told):
/// a pull's progress bars, drawn in place, start a fresh block below
/// anything written since they were last drawn.
pub static OUTPUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts output on the terminal (see [`OUTPUT`]).
pub fn wrote() {
    OUTPUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How much echoed output waits for a slow stdout before some is dropped.
const ECHO_BACKLOG: usize = 4 << 20;

impl Echo {
    pub fn new(enabled: bool, prefix: String) -> Echo {
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
            prefix,
            nonblocking,
            ..Echo::default()
        }
    }

    fn push(&mut self, container: &str, records: &[Record]) {
        if !self.enabled {
            return;
        }
        for r in records {
            let len = self.prefix.len() + container.len() + 3 + r.content.len() + 1;
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
            self.queue.extend(self.prefix.as_bytes());
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
                    wrote();
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

impl LogSink for Echo {
    fn lines(&mut self, container: &str, records: &[Record]) {
        self.push(container, records);
    }
}
