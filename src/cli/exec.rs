//! `podrun exec NAME [-c CONTAINER] [-i] -- CMD...`: runs a command in a
//! running container's namespaces, cgroup and root, as the container runs
//! (its user, capabilities, environment and working directory), and exits
//! with the command's code.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use anyhow::{Context, anyhow};
use nix::sys::wait::{WaitStatus, waitpid};
use podrun::container::caps;
use podrun::container::config::{self, PodFacts};
use podrun::probe::check::{ExecAs, exec_with};
use podrun::sandbox::cgroup::PodCgroup;
use podrun::supervisor::state::State;

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// The container (default: the pod's first app container)
    #[arg(short, long)]
    container: Option<String>,
    /// Pass this command's standard input to the process
    #[arg(short, long)]
    stdin: bool,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn dup(fd: i32) -> Result<OwnedFd, Failure> {
    // SAFETY: borrows one of this process's standard descriptors to dup it.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    Ok(borrowed
        .try_clone_to_owned()
        .context("duplicating a standard descriptor")?)
}

pub fn run(args: Args) -> Result<(), Failure> {
    super::check_name(&args.name)?;
    let state = State::load(&args.name).map_err(|e| Failure::Input(e.to_string()))?;
    let name = match &args.container {
        Some(c) => c.clone(),
        None => state
            .apps
            .first()
            .cloned()
            .ok_or_else(|| Failure::Input(format!("pod {:?} has no containers", args.name)))?,
    };
    let pid = state
        .containers
        .get(&name)
        .and_then(|c| c.pid)
        .filter(|_| state.supervisor_alive())
        .ok_or_else(|| {
            Failure::Input(format!(
                "container {name:?} in pod {:?} is not running",
                args.name
            ))
        })?;
    let text = state
        .pod
        .as_ref()
        .map(|v| v.to_string())
        .ok_or_else(|| anyhow!("the state of pod {:?} has no manifest", args.name))?;
    let pod = podrun::manifest::parse(&text)?.pod;
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|info| pod.container(info))
        .ok_or_else(|| {
            Failure::Input(format!(
                "container {name} is not valid for pod {}",
                args.name
            ))
        })?;
    let holding = caps::this_process();
    let hostname = config::hostname(&pod);
    let node_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let volumes: BTreeMap<_, _> = state.volumes.clone();
    let facts = PodFacts {
        pod: &pod,
        uid: &state.uid,
        hostname: &hostname,
        node_name: &node_name,
        volumes: &volumes,
        all_caps: holding.all,
    };
    let cfg = config::config(&facts, container).context("the container's configuration")?;
    let cgroup = PodCgroup::at(&state.cgroup)
        .container(&name)
        .context("the container's cgroup")?;
    let stdin = if args.stdin {
        dup(0)?
    } else {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .context("/dev/null")?
    };
    let how = ExecAs {
        env: &cfg.env,
        cwd: &cfg.cwd,
        creds: &cfg.creds,
        caps: (cfg.caps, holding.last_cap),
        no_new_privs: cfg.no_new_privs,
    };
    // Same session: a Ctrl-C at the terminal reaches the command too.
    let child = exec_with(
        pid,
        cgroup.dir(),
        &args.command,
        &how,
        [stdin, dup(1)?, dup(2)?],
        false,
    )
    .map_err(|e| anyhow!("exec in {name}: {e}"))?;
    let code = loop {
        match waitpid(child.pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("waiting for the command: {e}").into()),
        }
    };
    if code == 0 {
        Ok(())
    } else {
        Err(Failure::Code(code.clamp(1, 255) as u8))
    }
}
