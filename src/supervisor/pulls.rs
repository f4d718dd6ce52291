//! The kubelet's image pulls for one pod: each in a thread of its own (a
//! pull that fails, or takes long, holds up no other container's), each
//! ending with a byte on a pipe the supervisor's loop polls.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, write};

use crate::image::registry::auth::{Keyring, Origin};
use crate::image::{Progress, Pulled};
use crate::pod::PullSecret;
use crate::runtime::images::ImageService;

/// A pull asked for by a container's start, and how it ended.
pub struct Done {
    pub container: String,
    pub run: u64,
    pub restart_count: u32,
    pub image: String,
    pub started: Instant,
    pub result: Result<Pulled, String>,
}

/// How the user who started the pod sees a pull's progress.
pub type ShowProgress = Arc<dyn Progress>;

pub struct Pulls {
    done: Arc<Mutex<Vec<Done>>>,
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
    secrets: Vec<PullSecret>,
    progress: Option<ShowProgress>,
}

impl Pulls {
    pub fn new(secrets: Vec<PullSecret>, progress: Option<ShowProgress>) -> std::io::Result<Pulls> {
        let (r, w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Pulls {
            done: Arc::default(),
            wake_read: r,
            wake_write: Arc::new(w),
            secrets,
            progress,
        })
    }

    /// What the supervisor polls: readable when a pull has ended.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_read.as_fd()
    }

    /// Starts pulling `image` for a container's run.
    pub fn start(&self, container: &str, run: u64, restart_count: u32, image: &str) {
        let done = self.done.clone();
        let wake = self.wake_write.clone();
        let keyring = self.keyring();
        let progress = self.progress.clone();
        let mut record = Done {
            container: container.to_owned(),
            run,
            restart_count,
            image: image.to_owned(),
            started: Instant::now(),
            result: Err(String::new()),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("pull {container}"))
            .spawn(move || {
                record.result = pull(&record.image, keyring, progress.as_deref());
                done.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                let _ = write(wake.as_fd(), b"x");
            });
        if let Err(e) = spawned {
            self.done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Done {
                    container: container.to_owned(),
                    run,
                    restart_count,
                    image: image.to_owned(),
                    started: Instant::now(),
                    result: Err(format!("starting the pull: {e}")),
                });
            let _ = write(self.wake_write.as_fd(), b"x");
        }
    }

    /// The pulls that ended since last asked.
    pub fn ended(&self) -> Vec<Done> {
        let mut buf = [0u8; 64];
        while nix::unistd::read(&self.wake_read, &mut buf).is_ok_and(|n| n > 0) {}
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The pod's pull secrets (each that parses; one that does not was
    /// reported when the pod was compiled).
    fn keyring(&self) -> Keyring {
        let mut keyring = Keyring::default();
        for s in &self.secrets {
            let origin = Origin::PullSecret(s.name.clone());
            let parsed = if s.legacy {
                Keyring::from_dockercfg(&s.data, origin)
            } else {
                Keyring::from_docker_config_json(&s.data, origin)
            };
            if let Ok(k) = parsed {
                keyring.add(k);
            }
        }
        keyring
    }
}

fn pull(
    image: &str,
    pull_secrets: Keyring,
    progress: Option<&dyn Progress>,
) -> Result<Pulled, String> {
    // The machine's settings are read at each pull, as the kubelet reads
    // docker's config: a login meanwhile counts.
    ImageService::default()
        .pull_image(image, pull_secrets, progress.unwrap_or(&Quiet))
        .map_err(|e| e.to_string())
}

/// No one to show progress to (a detached pod with no one waiting).
struct Quiet;

impl Progress for Quiet {
    fn resolved(&self, _: &str, _: &str, _: &str) {}
    fn layer(&self, _: &str, _: u64, _: u64, _: bool) {}
    fn storing(&self) {}
}
