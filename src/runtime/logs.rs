//! A container run's stdout and stderr: pipes the runtime holds and the
//! supervisor's loop drains, written to the run's CRI log file and handed
//! to a sink (`up` in the foreground echoes them). The pipes outlive the
//! process until they are drained, so a restart loses no line.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::{pipe2, read};

use crate::container::log::{LineSplitter, Record, Stream};

/// Where a container's lines go besides its log file.
pub trait LogSink {
    fn lines(&mut self, container: &str, records: &[Record]);
}

/// One stream of one container run.
pub struct LogPipe {
    pub container: String,
    stream: Stream,
    fd: OwnedFd,
    splitter: LineSplitter,
    file: Rc<fs::File>,
}

/// What one wake-up of the loop reads from one pipe at most.
pub const PUMP_BUDGET: usize = 1 << 20;
/// What is read from an ended run's pipes before its exit is reported (its
/// processes are gone, so this only bounds a writer outside its PID
/// namespace, with hostPID).
pub const DRAIN_BUDGET: usize = 64 << 20;

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

    /// Reads what is there, up to `budget` bytes (so that one chatty
    /// container cannot hold the loop: poll comes back for the rest); true
    /// at end of file (every writer gone).
    pub fn pump(&mut self, sink: &mut dyn LogSink, budget: usize) -> bool {
        let mut buf = [0u8; 64 * 1024];
        let mut taken = 0;
        while taken < budget {
            match read(&self.fd, &mut buf) {
                Ok(0) => {
                    if let Some(last) = self.splitter.finish() {
                        self.write(&[last], sink);
                    }
                    return true;
                }
                Ok(n) => {
                    taken += n;
                    let records = self.splitter.feed(&buf[..n]);
                    self.write(&records, sink);
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

    fn write(&mut self, records: &[Record], sink: &mut dyn LogSink) {
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
        sink.lines(&self.container, records);
    }
}
