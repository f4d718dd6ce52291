//! A container run's stdout and stderr: pipes the supervisor holds and
//! drains in its loop, written to the run's CRI log file (and, for `up` in
//! the foreground, echoed with a `name | ` prefix). The pipes outlive the
//! process until they are drained, so a restart loses no line.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::{pipe2, read};

use crate::container::log::{LineSplitter, Record, Stream};

/// One stream of one container run.
pub struct LogPipe {
    pub container: String,
    stream: Stream,
    fd: OwnedFd,
    splitter: LineSplitter,
    file: Rc<fs::File>,
    echo: bool,
}

/// The pipes of a new run: the supervisor's read ends and the child's
/// write ends (stdout, stderr).
pub fn open(
    container: &str,
    log_path: &Path,
    echo: bool,
) -> std::io::Result<(Vec<LogPipe>, [OwnedFd; 2])> {
    if let Some(dir) = log_path.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = Rc::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
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
                echo,
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

    /// Reads what is there; true at end of file (every writer gone).
    pub fn pump(&mut self) -> bool {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match read(&self.fd, &mut buf) {
                Ok(0) => {
                    if let Some(last) = self.splitter.finish() {
                        self.write(&[last]);
                    }
                    return true;
                }
                Ok(n) => {
                    let records = self.splitter.feed(&buf[..n]);
                    self.write(&records);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return false,
                Err(e) => {
                    tracing::warn!(container = %self.container, "reading its output: {e}");
                    return true;
                }
            }
        }
    }

    fn write(&mut self, records: &[Record]) {
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
        if self.echo {
            let mut out = Vec::new();
            for r in records {
                out.extend_from_slice(format!("{} | ", self.container).as_bytes());
                out.extend_from_slice(&r.content);
                out.push(b'\n');
            }
            let _ = std::io::stdout().write_all(&out);
            let _ = std::io::stdout().flush();
        }
    }
}
