//! One container of a sandbox: created (its process configuration
//! resolved against its image, its cgroup and root made), then started
//! (its view built, its log pipes opened, the clone). A failure before the
//! process exists is a create error; one the child reports (exec, chdir,
//! mounts) a start error.

use std::ffi::CString;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::libc;
use nix::unistd::Pid;

use super::images::{self, ImageService};
use super::logs::{self, LogPipe};
use crate::api::runtime::{ContainerConfig, ExitStatus, SandboxConfig, is_rootfs};
use crate::container::caps::Holding;
use crate::container::config::{self, Config, ConfigError, ImageRun, SandboxFacts};
use crate::container::rootfs::{self, RootfsError, View};
use crate::container::spawn::{self, Command, Isolation, SpawnError};
use crate::image::ImageError;
use crate::paths::PodDirs;
use crate::sandbox::cgroup::{CgroupError, ContainerCgroup};
use crate::sandbox::namespaces::{self, NamespaceError};
use crate::sandbox::overlay::{self, OverlayError};
use crate::sandbox::pod::Sandbox;

/// Why a container could not be created (the kubelet's
/// `CreateContainerError`, retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("container {0:?} exists: its last run is to be removed first")]
    Exists(String),
    #[error("the image store: {0}")]
    Store(ImageError),
    #[error(transparent)]
    Image(#[from] images::ImageRunError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Why a container's run could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("container {0:?} is running")]
    Running(String),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
}

/// Why a created container could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no container {0:?} was created")]
    NotCreated(String),
    #[error("container {0:?} was started already")]
    Started(String),
    /// A subPath could not be held open for the child.
    #[error(transparent)]
    SubPath(RootfsError),
    /// Its mounts could not be prepared (runc's failures while it mounts).
    #[error(transparent)]
    Mounts(RootfsError),
    #[error(transparent)]
    Command(SpawnError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Namespaces(#[from] NamespaceError),
    #[error("the pod's PID namespace: {0}")]
    PidNamespace(std::io::Error),
    #[error("cannot create the container process: {}", .0.desc())]
    Fork(nix::errno::Errno),
    #[error(transparent)]
    Spawn(SpawnError),
}

impl StartError {
    /// The process failed to become the container (mounts, chdir, exec):
    /// containerd's `StartError`. Anything else is a setup failure, the
    /// kubelet's `CreateContainerError`, retried.
    pub fn is_exec_failure(&self) -> bool {
        match self {
            StartError::Mounts(_) => true,
            StartError::Command(e) => {
                matches!(e, SpawnError::NotFound(_) | SpawnError::EmptyCommand)
            }
            StartError::Spawn(_) => true,
            _ => false,
        }
    }
}

fn io_error(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> CreateError {
    move |source| CreateError::Io {
        path: path.to_string(),
        source,
    }
}

fn start_io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Io {
        path: path.to_string(),
        source,
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running { pid: u32 },
    Exited { status: ExitStatus },
}

/// A container as `ContainerStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    /// Which run of the container this is (its log is `<n>.log`).
    pub restart_count: u32,
    pub log: PathBuf,
}

/// A running container's main process.
#[derive(Debug)]
pub(super) struct Process {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// `memory.events` oom_kill before the run, to tell its OOM kill.
    pub oom_base: u64,
}

#[derive(Debug)]
pub(super) enum Phase {
    Created,
    Running(Process),
    Exited(ExitStatus),
}

/// What every container of a sandbox is made with.
pub(super) struct Base {
    pub config: SandboxConfig,
    pub dirs: PodDirs,
    pub made: Sandbox,
    pub holding: Holding,
    /// The lowest oom_score_adj this process may give a child.
    pub oom_floor: i64,
    pub images: ImageService,
}

impl Base {
    fn facts(&self) -> SandboxFacts<'_> {
        SandboxFacts {
            volumes: &self.made.volumes,
            all_caps: self.holding.all,
            etc_files: &self.made.etc_files,
        }
    }
}

/// A container of the sandbox: its latest run.
#[derive(Debug)]
pub(super) struct Container {
    pub restart_count: u32,
    /// How its processes run (the main one and execs).
    pub process: Config,
    pub cgroup: ContainerCgroup,
    pub oom_score_adj: i64,
    /// Its root from an image, mounted on the host.
    pub root: Option<PathBuf>,
    pub phase: Phase,
}

fn open_fd(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

impl Container {
    /// Run `restart_count` of the container `config` describes: a root of
    /// its image mounted (its previous run's removed), its process
    /// configuration resolved against it, its cgroup made.
    pub(super) fn create(
        base: &Base,
        config: &ContainerConfig,
        restart_count: u32,
    ) -> Result<Container, CreateError> {
        let name = &config.name;
        let root = (!is_rootfs(&config.image)).then(|| base.dirs.image_root(name, restart_count));
        let run = match &root {
            None => None,
            Some(root) => {
                let store = base.images.store().map_err(CreateError::Store)?;
                Some(images::image_run(store, &config.image, root)?)
            }
        };
        let made = Self::finish_create(base, config, restart_count, run);
        if made.is_err()
            && let Some(root) = &root
        {
            // Nothing half-made stays: the run's root goes again.
            let _ = overlay::remove(root);
        }
        made.map(|c| Container { root, ..c })
    }

    /// What a run is made of besides its root.
    fn finish_create(
        base: &Base,
        config: &ContainerConfig,
        restart_count: u32,
        run: Option<ImageRun>,
    ) -> Result<Container, CreateError> {
        let name = &config.name;
        let process = config::config(&base.facts(), config, run.as_ref())?;
        if let Some(run) = &run {
            // As runc does: a working directory the image lacks is made
            // (in the run's own upper layer).
            let cwd = rootfs::secure_join(&run.rootfs, &process.cwd)?;
            fs::create_dir_all(&cwd).map_err(io_error(&process.cwd))?;
        }
        let cgroup = base.made.cgroup.container(name)?;
        cgroup.create(&config.cgroup)?;
        let stage = base.dirs.stage(name);
        fs::create_dir_all(&stage).map_err(io_error(stage.display()))?;
        Ok(Container {
            restart_count,
            process,
            cgroup,
            oom_score_adj: config.oom_score_adj,
            root: None,
            phase: Phase::Created,
        })
    }

    /// Removes what the run was made of on the host: its root from an
    /// image (its cgroup is the container's, and stays for its next run).
    pub(super) fn remove(&self) -> Result<(), OverlayError> {
        match &self.root {
            Some(root) => overlay::remove(root),
            None => Ok(()),
        }
    }

    /// The created container's process, in its namespaces, cgroup and
    /// view; its pid, and the pipes its output comes from.
    pub(super) fn start(
        &mut self,
        base: &Base,
        name: &str,
    ) -> Result<(u32, Vec<LogPipe>), StartError> {
        if !matches!(self.phase, Phase::Created) {
            return Err(StartError::Started(name.to_owned()));
        }
        let c = &*self;
        let cfg = &c.process;
        let ns = base.config.namespaces;
        let mut view = View {
            root: cfg.root.clone(),
            hidden: crate::paths::own_dirs(),
            stage: base.dirs.stage(name),
            shm: if ns.host_ipc {
                PathBuf::from("/dev/shm")
            } else {
                base.dirs.shm()
            },
            mounts: cfg.mounts.clone(),
            read_only_root: cfg.read_only_root,
            privileged: cfg.privileged,
        };
        // Open until the child has attached them.
        let _pins = rootfs::pin_sub_paths(&mut view.mounts).map_err(StartError::SubPath)?;
        // What runc does while it mounts (make mount points, follow the
        // root's symlinks): its failures are a StartError, not a retried
        // CreateContainerError.
        let steps = rootfs::build(&view).map_err(StartError::Mounts)?;
        let cmd = Command::new(&cfg.argv, &cfg.env, Some(&cfg.cwd), cfg.root.path())
            .map_err(StartError::Command)?;
        let log = base.dirs.log_file(name, c.restart_count);
        let (pipes, [out, err]) = logs::open(name, &log).map_err(start_io(log.display()))?;
        let stdin = open_fd("/dev/null", libc::O_CLOEXEC).map_err(start_io("/dev/null"))?;
        let join = namespaces::open(&base.dirs.ns(), &base.made.namespaces)?
            .into_iter()
            .map(|(kind, fd)| (fd, kind.clone_flag().bits()))
            .collect();
        let cgroup_fd = open_fd(
            &c.cgroup.dir().to_string_lossy(),
            libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
        .map_err(start_io(c.cgroup.dir().display()))?;
        let oom_base = c.cgroup.oom_kills().unwrap_or(0);
        let oom = c.oom_score_adj.max(base.oom_floor);
        let mut clone_flags = libc::CLONE_NEWNS as u64;
        let pid_namespace = match &base.made.shared_pid {
            Some(p) => Some(p.ns.try_clone().map_err(StartError::PidNamespace)?),
            None => None,
        };
        if !ns.host_pid && pid_namespace.is_none() {
            clone_flags |= libc::CLONE_NEWPID as u64;
        }
        let iso = Isolation {
            clone_flags,
            cgroup: Some(cgroup_fd),
            join,
            steps,
            oom_score_adj: CString::new(oom.to_string()).ok(),
            stdio: Some([stdin, out, err]),
            creds: Some(cfg.creds.clone()),
            caps: Some((cfg.caps, base.holding.last_cap)),
            no_new_privs: cfg.no_new_privs,
            new_session: true,
            controlling_tty: false,
            pid_namespace,
        };
        let child = spawn::spawn(&cmd, &iso).map_err(|e| match e {
            SpawnError::Fork(errno) => StartError::Fork(errno),
            e => StartError::Spawn(e),
        })?;
        let pid = child.pid.as_raw() as u32;
        self.phase = Phase::Running(Process {
            pid: child.pid,
            pidfd: child.pidfd,
            oom_base,
        });
        Ok((pid, pipes))
    }

    /// Its main process, cgroup and process configuration, while it runs.
    pub(super) fn running(&self) -> Option<(u32, &std::path::Path, &Config)> {
        match &self.phase {
            Phase::Running(p) => Some((p.pid.as_raw() as u32, self.cgroup.dir(), &self.process)),
            _ => None,
        }
    }

    /// As `ContainerStatus` reports it.
    pub(super) fn status(&self, name: &str, dirs: &PodDirs) -> ContainerStatus {
        let c = self;
        ContainerStatus {
            name: name.to_owned(),
            state: match &c.phase {
                Phase::Created => ContainerState::Created,
                Phase::Running(p) => ContainerState::Running {
                    pid: p.pid.as_raw() as u32,
                },
                Phase::Exited(status) => ContainerState::Exited { status: *status },
            },
            restart_count: c.restart_count,
            log: dirs.log_file(name, c.restart_count),
        }
    }
}
