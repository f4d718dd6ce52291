//! The kubelet's image pulls for one pod, each in a child process of its
//! own (`podrun internal-pull`, this same binary): the supervisor stays
//! one thread (its network checks fork, which threads would make unsafe),
//! a pull that fails or takes long holds up no other container, a stopping
//! pod kills what it no longer needs, and the pull's memory is not the
//! supervisor's. The child reads what to pull on stdin and tells how it
//! goes on stdout, a JSON line at a time; the supervisor polls those pipes.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use serde::{Deserialize, Serialize};

use crate::image::registry::auth::{Keyring, Origin};
use crate::image::{ImageError, Progress};
use crate::pod::PullSecret;
use crate::runtime::images::ImageService;

/// The hidden verb the child runs.
pub const VERB: &str = "internal-pull";

/// How a pull asked for by a container's start ended.
pub struct Done {
    pub container: String,
    pub run: u64,
    pub image: String,
    pub took: Duration,
    /// The image's size in bytes, or why it could not be had.
    pub result: Result<u64, String>,
}

/// How the user who started the pod sees a pull's progress.
pub type ShowProgress = Arc<dyn Progress>;

/// What the supervisor asks of a pull child, on its stdin.
#[derive(Serialize, Deserialize)]
struct Request {
    image: String,
    secrets: Vec<Secret>,
}

#[derive(Serialize, Deserialize)]
struct Secret {
    name: String,
    legacy: bool,
    data: Vec<u8>,
}

/// A line of the child's stdout.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Resolved {
        reference: String,
        source: String,
        digest: String,
    },
    Layer {
        digest: String,
        done: u64,
        total: u64,
        cached: bool,
    },
    Storing,
    Pulled {
        size: u64,
    },
    Failed {
        message: String,
    },
}

struct Running {
    container: String,
    run: u64,
    image: String,
    started: Instant,
    child: Child,
    out: ChildStdout,
    buf: Vec<u8>,
    result: Option<Result<u64, String>>,
}

pub struct Pulls {
    running: Vec<Running>,
    secrets: Vec<PullSecret>,
    progress: Option<ShowProgress>,
}

impl Pulls {
    pub fn new(secrets: Vec<PullSecret>, progress: Option<ShowProgress>) -> Pulls {
        Pulls {
            running: Vec::new(),
            secrets,
            progress,
        }
    }

    /// What the supervisor polls: each pull's stdout.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.running.iter().map(|r| r.out.as_fd()).collect()
    }

    /// Starts pulling `image` for a container's run; one that cannot
    /// start ends at once, failed.
    pub fn start(&mut self, container: &str, run: u64, image: &str) -> Result<(), String> {
        let request = Request {
            image: image.to_owned(),
            secrets: self
                .secrets
                .iter()
                .map(|s| Secret {
                    name: s.name.clone(),
                    legacy: s.legacy,
                    data: s.data.clone(),
                })
                .collect(),
        };
        let spawn = || -> std::io::Result<(Child, ChildStdout)> {
            let mut child = Command::new("/proc/self/exe")
                .arg(VERB)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let out = child.stdout.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
            fcntl(&out, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            // Small (a few secrets): it fits the pipe, the child reads it.
            let mut stdin = child.stdin.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
            let bytes = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
            if let Err(e) = stdin.write_all(&bytes) {
                let _ = child.kill();
                return Err(e);
            }
            Ok((child, out))
        };
        let (child, out) = spawn().map_err(|e| format!("starting the pull: {e}"))?;
        self.running.push(Running {
            container: container.to_owned(),
            run,
            image: image.to_owned(),
            started: Instant::now(),
            child,
            out,
            buf: Vec::new(),
            result: None,
        });
        Ok(())
    }

    /// The pulls that ended since last asked; what the others said so far
    /// goes to the progress display.
    pub fn ended(&mut self) -> Vec<Done> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let finished = self.read(i);
            if !finished {
                i += 1;
                continue;
            }
            let mut r = self.running.swap_remove(i);
            // Its output is read to the end: it has exited or is about to;
            // the supervisor's reaping collects it.
            drop(r.child.stdin.take());
            done.push(Done {
                container: r.container,
                run: r.run,
                image: r.image.clone(),
                took: r.started.elapsed(),
                result: r.result.take().unwrap_or_else(|| {
                    Err(format!("the pull of {:?} ended without a result", r.image))
                }),
            });
        }
        done
    }

    /// Reads what pull `i` wrote; whether its output has ended.
    fn read(&mut self, i: usize) -> bool {
        let r = &mut self.running[i];
        let mut chunk = [0u8; 8192];
        let ended = loop {
            match r.out.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => r.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        while let Some(end) = r.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = r.buf.drain(..=end).collect();
            match serde_json::from_slice::<Line>(&line) {
                Ok(Line::Pulled { size }) => r.result = Some(Ok(size)),
                Ok(Line::Failed { message }) => r.result = Some(Err(message)),
                Ok(line) => {
                    if let Some(p) = &self.progress {
                        show(p.as_ref(), line);
                    }
                }
                Err(e) => tracing::warn!("a pull said something unreadable: {e}"),
            }
        }
        ended
    }
}

impl Drop for Pulls {
    /// A pod that ends needs none of its pulls: what they staged is
    /// removed by the store's next import, pull or prune.
    fn drop(&mut self) {
        for r in &mut self.running {
            let _ = r.child.kill();
        }
    }
}

fn show(progress: &dyn Progress, line: Line) {
    match line {
        Line::Resolved {
            reference,
            source,
            digest,
        } => progress.resolved(&reference, &source, &digest),
        Line::Layer {
            digest,
            done,
            total,
            cached,
        } => progress.layer(&digest, done, total, cached),
        Line::Storing => progress.storing(),
        Line::Pulled { .. } | Line::Failed { .. } => {}
    }
}

/// `podrun internal-pull`: the child's side. Reads the request on stdin,
/// pulls, and says how it goes on stdout; the last line is the result.
pub fn child_main() -> std::io::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().lock().read_to_end(&mut input)?;
    let line = match serde_json::from_slice::<Request>(&input) {
        Ok(request) => match pull(request) {
            Ok(size) => Line::Pulled { size },
            Err(e) => Line::Failed {
                message: e.to_string(),
            },
        },
        Err(e) => Line::Failed {
            message: format!("the pull's request is not readable: {e}"),
        },
    };
    say(&line);
    Ok(())
}

fn pull(request: Request) -> Result<u64, ImageError> {
    let mut keyring = Keyring::default();
    for s in &request.secrets {
        let origin = Origin::PullSecret(s.name.clone());
        let parsed = if s.legacy {
            Keyring::from_dockercfg(&s.data, origin)
        } else {
            Keyring::from_docker_config_json(&s.data, origin)
        };
        keyring.add(parsed.map_err(|e| ImageError::Credentials(e.to_string()))?);
    }
    let progress = Lines::default();
    ImageService::default()
        .pull_image(&request.image, keyring, &progress)
        .map(|p| p.size)
}

fn say(line: &Line) {
    if let Ok(mut bytes) = serde_json::to_vec(line) {
        bytes.push(b'\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&bytes);
        let _ = out.flush();
    }
}

/// Progress as lines on stdout, a layer's at most ten times a second.
#[derive(Default)]
struct Lines {
    last: Mutex<Vec<(String, Instant)>>,
}

impl Progress for Lines {
    fn resolved(&self, reference: &str, source: &str, digest: &str) {
        say(&Line::Resolved {
            reference: reference.to_owned(),
            source: source.to_owned(),
            digest: digest.to_owned(),
        });
    }

    fn layer(&self, digest: &str, done: u64, total: u64, cached: bool) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let due = match last.iter_mut().find(|(d, _)| d == digest) {
            Some((_, at))
                if done != total && done != 0 && now - *at < Duration::from_millis(100) =>
            {
                false
            }
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                last.push((digest.to_owned(), now));
                true
            }
        };
        if due {
            say(&Line::Layer {
                digest: digest.to_owned(),
                done,
                total,
                cached,
            });
        }
    }

    fn storing(&self) {
        say(&Line::Storing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for line in [
            Line::Layer {
                digest: "sha256:ab".to_owned(),
                done: 1,
                total: 2,
                cached: false,
            },
            Line::Storing,
            Line::Pulled { size: 7 },
            Line::Failed {
                message: "no".to_owned(),
            },
        ] {
            let bytes = serde_json::to_vec(&line).unwrap();
            let back: Line = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(serde_json::to_vec(&back).unwrap(), bytes);
        }
    }
}
