//! Starting one run of a container: its configuration, cgroup, root view,
//! log pipes and the clone. A failure before the process exists is a
//! create error; one the child reports (exec, chdir, mounts) a start error.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::libc;

use super::logs::{self, LogPipe};
use crate::container::config::{self, ImageRun, PodFacts};
use crate::container::rootfs::{self, Root, View};
use crate::container::spawn::{self, Child, Command, Isolation, SpawnError};
use crate::image::Store;
use crate::lifecycle::{Hook, ProbeKind};
use crate::manifest::Pod;
use crate::plan::Plan;
use crate::probe::check::{self, ExecAs, ExecError, Running, Session};
use crate::probe::{Handler, Timing};
use crate::sandbox::cgroup::PodCgroup;
use crate::sandbox::namespaces::{self, Kind};
use crate::sandbox::pod::PodDirs;

/// The pod-wide facts every container start uses.
pub struct Launcher<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub hostname: &'a str,
    pub node_name: &'a str,
    pub dirs: &'a PodDirs,
    pub cgroup: &'a PodCgroup,
    pub plan: &'a Plan,
    pub volumes: &'a BTreeMap<String, PathBuf>,
    pub namespaces: &'a [Kind],
    /// The pod's shared PID namespace (shareProcessNamespace).
    pub pid_namespace: Option<&'a OwnedFd>,
    pub all_caps: u64,
    pub last_cap: u8,
    /// The lowest oom_score_adj this process may give (without
    /// CAP_SYS_RESOURCE it cannot go below its own).
    pub oom_floor: i64,
    /// The pod's `/etc` files: on the host, in a container.
    pub etc_files: &'a [(PathBuf, String)],
    /// Each container's current run's root from an image (the loop is
    /// single-threaded; a start records it, checks and execs read it).
    pub image_runs: RefCell<BTreeMap<String, ImageRun>>,
    /// The image store, opened when a container first needs it.
    pub store: OnceCell<Store>,
}

pub enum Outcome {
    Started {
        child: Child,
        pipes: Vec<LogPipe>,
        /// `memory.events` oom_kill before the run, to tell its OOM kill.
        oom_base: u64,
    },
    CreateFailed(String),
    StartFailed(String),
}

fn open_fd(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

impl Launcher<'_> {
    /// The image store, opened once.
    pub fn store(&self) -> Result<&Store, String> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = Store::open_default().map_err(|e| format!("the image store: {e}"))?;
        Ok(self.store.get_or_init(|| store))
    }

    fn manifest_container(
        &self,
        name: &str,
    ) -> Result<&k8s_openapi::api::core::v1::Container, String> {
        self.pod
            .containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|info| self.pod.container(info))
            .ok_or_else(|| format!("no container {name:?}"))
    }

    fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            pod: self.pod,
            uid: self.uid,
            hostname: self.hostname,
            node_name: self.node_name,
            volumes: self.volumes,
            all_caps: self.all_caps,
            etc_files: self.etc_files,
        }
    }

    /// A container's probe of `kind`: what it runs and when.
    pub fn probe(&self, name: &str, kind: ProbeKind) -> Result<(Handler, Timing), String> {
        let c = self.manifest_container(name)?;
        let probe = match kind {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
        }
        .ok_or_else(|| format!("container {name:?} has no such probe"))?;
        let handler = Handler::of_probe(probe, c).map_err(|e| e.to_string())?;
        Ok((handler, Timing::of(probe)))
    }

    /// A container's lifecycle hook.
    pub fn hook(&self, name: &str, hook: Hook) -> Result<Handler, String> {
        let c = self.manifest_container(name)?;
        let lifecycle = c.lifecycle.as_ref();
        let handler = match hook {
            Hook::PostStart => lifecycle.and_then(|l| l.post_start.as_ref()),
            Hook::PreStop => lifecycle.and_then(|l| l.pre_stop.as_ref()),
        }
        .ok_or_else(|| format!("container {name:?} has no such hook"))?;
        Handler::of_hook(handler, c).map_err(|e| e.to_string())
    }

    /// Runs `argv` in the running container `name` (main process `pid`),
    /// as that container runs, with its output to a pipe (a check).
    pub fn exec_check(&self, name: &str, pid: u32, argv: &[String]) -> Result<Running, String> {
        self.as_container(name, |cgroup, how| check::exec_in(pid, cgroup, argv, how))
            .map_err(|e: ExecError| e.to_string())
    }

    /// Runs `argv` in the running container `name` (main process `pid`),
    /// as that container runs, with the given standard streams (an exec
    /// over the API).
    pub fn exec(
        &self,
        name: &str,
        pid: u32,
        argv: &[String],
        stdio: [OwnedFd; 3],
        session: Session,
    ) -> Result<Child, ExecError> {
        self.as_container(name, |cgroup, how| {
            // As containerd's exec with a tty: the terminal is an xterm.
            let mut env = how.env.to_vec();
            if session == Session::Terminal {
                env.retain(|(k, _)| k != "TERM");
                env.push(("TERM".to_owned(), "xterm".to_owned()));
            }
            let how = ExecAs { env: &env, ..*how };
            check::exec_with(pid, cgroup, argv, &how, stdio, session)
        })
    }

    /// Calls `f` with the container's cgroup and how its processes run.
    fn as_container<T, E: From<String>>(
        &self,
        name: &str,
        f: impl FnOnce(&Path, &ExecAs) -> Result<T, E>,
    ) -> Result<T, E> {
        let c = self.manifest_container(name)?;
        let run = self.image_runs.borrow().get(name).cloned();
        let cfg = config::config(&self.facts(), c, run.as_ref()).map_err(|e| e.to_string())?;
        let cgroup = self.cgroup.container(name).map_err(|e| e.to_string())?;
        f(
            cgroup.dir(),
            &ExecAs {
                env: &cfg.env,
                cwd: &cfg.cwd,
                creds: &cfg.creds,
                caps: (cfg.caps, self.last_cap),
                no_new_privs: cfg.no_new_privs,
            },
        )
    }

    /// The pod's pinned network namespace (none with hostNetwork).
    pub fn net_ns(&self) -> Option<PathBuf> {
        self.namespaces
            .contains(&Kind::Net)
            .then(|| namespaces::pin_path(&self.dirs.ns(), Kind::Net))
    }

    pub fn start(&self, name: &str, image: &str, restart_count: u32) -> Outcome {
        match self.try_start(name, image, restart_count) {
            Ok(outcome) => outcome,
            Err(message) => Outcome::CreateFailed(message),
        }
    }

    fn try_start(&self, name: &str, image: &str, restart_count: u32) -> Result<Outcome, String> {
        let info = self
            .pod
            .containers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("no container {name:?}"))?;
        let mut container = self
            .pod
            .container(info)
            .cloned()
            .ok_or_else(|| format!("no container {name:?}"))?;
        container.image = Some(image.to_owned());
        let run = if Root::is_rootfs(image) {
            None
        } else {
            let run = super::images::image_run(self, name, image, restart_count)?;
            self.image_runs
                .borrow_mut()
                .insert(name.to_owned(), run.clone());
            Some(run)
        };
        let cfg =
            config::config(&self.facts(), &container, run.as_ref()).map_err(|e| e.to_string())?;
        if let Some(run) = &run {
            // As runc does: a working directory the image lacks is made
            // (in the run's own upper layer).
            let cwd = rootfs::secure_join(&run.rootfs, &cfg.cwd).map_err(|e| e.to_string())?;
            fs::create_dir_all(&cwd).map_err(|e| format!("{}: {e}", cfg.cwd))?;
        }

        let cgroup = self.cgroup.container(name).map_err(|e| e.to_string())?;
        let files = self
            .plan
            .cgroup
            .containers
            .get(name)
            .cloned()
            .unwrap_or_default();
        cgroup.create(&files).map_err(|e| e.to_string())?;
        let oom_base = cgroup.oom_kills().unwrap_or(0);

        let stage = self.dirs.stage(name);
        fs::create_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
        let host_ipc = self.pod.spec.host_ipc == Some(true);
        let mut view = View {
            root: cfg.root.clone(),
            hidden: crate::sandbox::pod::own_dirs(),
            stage,
            shm: if host_ipc {
                PathBuf::from("/dev/shm")
            } else {
                self.dirs.shm()
            },
            mounts: cfg.mounts.clone(),
            read_only_root: cfg.read_only_root,
            privileged: cfg.privileged,
        };
        // Open until the child has attached them.
        let _pins = rootfs::pin_sub_paths(&mut view.mounts).map_err(|e| e.to_string())?;
        // What runc does while it mounts (make mount points, follow the
        // root's symlinks): its failures are a StartError, not a retried
        // CreateContainerError.
        let steps = match rootfs::build(&view) {
            Ok(steps) => steps,
            Err(e) => return Ok(Outcome::StartFailed(e.to_string())),
        };

        let cmd = match Command::new(&cfg.argv, &cfg.env, Some(&cfg.cwd), cfg.root.path()) {
            Ok(cmd) => cmd,
            Err(e @ (SpawnError::NotFound(_) | SpawnError::EmptyCommand)) => {
                return Ok(Outcome::StartFailed(e.to_string()));
            }
            Err(e) => return Err(e.to_string()),
        };
        let log = self.dirs.log_file(name, restart_count);
        let (pipes, [out, err]) =
            logs::open(name, &log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stdin = open_fd("/dev/null", libc::O_CLOEXEC).map_err(|e| format!("/dev/null: {e}"))?;
        let join = namespaces::open(&self.dirs.ns(), self.namespaces)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(kind, fd)| (fd, kind.clone_flag().bits()))
            .collect();
        let cgroup_fd = open_fd(
            &cgroup.dir().to_string_lossy(),
            libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
        .map_err(|e| format!("{}: {e}", cgroup.dir().display()))?;
        let wanted = self.plan.oom_score_adj.get(name).copied().unwrap_or(0);
        let oom = wanted.max(self.oom_floor);
        let mut clone_flags = libc::CLONE_NEWNS as u64;
        let pid_namespace = match self.pid_namespace {
            Some(ns) => Some(
                ns.try_clone()
                    .map_err(|e| format!("the pod's PID namespace: {e}"))?,
            ),
            None => None,
        };
        if self.pod.spec.host_pid != Some(true) && pid_namespace.is_none() {
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
            caps: Some((cfg.caps, self.last_cap)),
            no_new_privs: cfg.no_new_privs,
            new_session: true,
            controlling_tty: false,
            pid_namespace,
        };
        Ok(match spawn::spawn(&cmd, &iso) {
            Ok(child) => Outcome::Started {
                child,
                pipes,
                oom_base,
            },
            Err(SpawnError::Fork(errno)) => {
                return Err(format!(
                    "cannot create the container process: {}",
                    errno.desc()
                ));
            }
            Err(e) => Outcome::StartFailed(e.to_string()),
        })
    }
}
