//! `podrun up FILE`: runs the pod in the foreground until it reaches a
//! terminal phase; container output on stdout as `name | line`, lifecycle
//! events on stderr. Ctrl-C or SIGTERM stops it in order; a second one
//! kills at once.

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, fork, pipe2, setsid};
use podrun::api::state::State;
use podrun::image::registry::auth::{Keyring, Origin};
use podrun::lifecycle::Phase;
use podrun::plan::{self, Settings};
use podrun::pod::{self, Identity, PodPlan};
use podrun::sandbox::host;
use podrun::supervisor::{self, Options};

use super::progress::PullProgress;
use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML); `-` reads standard input
    file: String,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids); unlimited if unset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
    /// Return once the pod is initialized and its apps have started (or
    /// failed), leaving its supervisor in the background
    #[arg(short, long)]
    detach: bool,
    /// A file of v1 Secrets the pod's imagePullSecrets may name (besides
    /// those in the manifest's own file); repeatable
    #[arg(long, value_name = "FILE")]
    secret: Vec<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let manifest = input::load(&args.file)?;
    let mut secrets = manifest.secrets;
    for file in &args.secret {
        let text = input::read(file)?;
        let given = podrun::manifest::parse_secrets(&text)
            .map_err(|e| Failure::Input(format!("{file}: {e}")))?;
        secrets.extend(given);
    }
    let pod = manifest.pod;
    let node = host::node_facts().context("reading this machine's facts")?;
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let resources = plan::plan(&pod, &node, &settings);
    let id = Identity {
        uid: podrun::sys::random::uuid_v4()
            .map_err(|e| anyhow!("making the pod's uid: reading random bytes: {e}"))?,
        node_name: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let mut plan = pod::compile(&pod, &resources, &id).map_err(|unsupported| {
        Failure::Input(format!(
            "pod {:?} cannot run here yet:\n* {}",
            pod.name,
            unsupported.join("\n* ")
        ))
    })?;
    let (pull_secrets, missing) = pod::pull_secrets(&pod, &secrets);
    for warning in missing {
        eprintln!("warning: {warning}");
    }
    // A docker config that does not parse is refused, as the API server
    // refuses such a Secret.
    for s in &pull_secrets {
        let origin = Origin::PullSecret(s.name.clone());
        let parsed = if s.legacy {
            Keyring::from_dockercfg(&s.data, origin)
        } else {
            Keyring::from_docker_config_json(&s.data, origin)
        };
        parsed.map_err(|e| Failure::Input(format!("imagePullSecrets: {e}")))?;
    }
    plan.pull_secrets = pull_secrets;
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::Input(
            "podrun up must run as root (it makes cgroups, namespaces and mounts)".to_owned(),
        ));
    }
    let images = supervisor::images::refusals(&plan);
    if !images.is_empty() {
        return Err(Failure::Input(format!(
            "pod {:?} cannot start:\n* {}",
            pod.name,
            images.join("\n* ")
        )));
    }
    if !resources.admission.admitted {
        return Err(anyhow!(
            "pod {:?} does not fit this node: {}",
            pod.name,
            resources.admission.reasons.join("; ")
        )
        .into());
    }
    // The supervisor needs the compiled pod only: what it was compiled
    // from is not kept for the pod's life.
    drop((pod, resources));
    if args.detach {
        return detach(plan);
    }
    let options = Options {
        echo: true,
        ready: None,
        progress: Some(Arc::new(PullProgress::stderr())),
    };
    let name = plan.name.clone();
    let phase = supervisor::run(plan, options).with_context(|| format!("running pod {name:?}"))?;
    match phase {
        Phase::Succeeded => {
            eprintln!("pod/{name} Succeeded");
            Ok(())
        }
        _ => {
            let why = State::load(&name).map(|s| failures(&s)).unwrap_or_default();
            Err(anyhow!("pod/{name} {}{why}", phase.as_str()).into())
        }
    }
}

/// `up -d`: the supervisor runs in a child of its own session; this
/// process waits for its word that the pod is up (or why it is not).
fn detach(pod: PodPlan) -> Result<(), Failure> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("making a pipe")?;
    // SAFETY: the CLI is single-threaded here; the child runs the
    // supervisor, which is what this process would otherwise do.
    match unsafe { fork() }.context("starting the supervisor")? {
        ForkResult::Child => {
            drop(read_end);
            let _ = setsid();
            quiet_stdio();
            let report = write_end.try_clone().ok();
            // Its stderr is gone: a panic's message goes to the waiting
            // `up` instead (or nowhere, once that has its word).
            if let Ok(fd) = write_end.try_clone() {
                let name = pod.name.clone();
                std::panic::set_hook(Box::new(move |info| {
                    let what = info.to_string().replace('\n', " ");
                    let line = format!(
                        "error: the supervisor {what} (`podrun down {name}` removes what it left)\n"
                    );
                    let _ = nix::unistd::write(&fd, line.as_bytes());
                }));
            }
            // Pull progress goes, as lines, to the `up -d` waiting.
            let progress = write_end.try_clone().ok().map(|fd| {
                let sink = move |line: &str| {
                    let _ = nix::unistd::write(&fd, format!("pull: {line}\n").as_bytes());
                };
                Arc::new(PullProgress::lines(Box::new(sink))) as supervisor::pulls::ShowProgress
            });
            let options = Options {
                echo: false,
                ready: Some(write_end),
                progress,
            };
            let code = match supervisor::run(pod, options) {
                Ok(Phase::Succeeded) => 0,
                Ok(_) => 1,
                Err(e) => {
                    if let Some(fd) = report {
                        let _ = nix::unistd::write(&fd, format!("error: {e}\n").as_bytes());
                    }
                    1
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut reader = std::io::BufReader::new(std::fs::File::from(read_end));
            let mut line = String::new();
            // Pull progress, then the supervisor's word.
            loop {
                line.clear();
                let _ = reader.read_line(&mut line);
                match line.strip_prefix("pull: ") {
                    Some(progress) => eprint!("{progress}"),
                    None => break,
                }
            }
            let line = line.trim_end();
            match line {
                "Running" | "Succeeded" => {
                    println!("pod/{} {line}", pod.name);
                    Ok(())
                }
                "Failed" => {
                    let why = State::load(&pod.name)
                        .map(|s| failures(&s))
                        .unwrap_or_default();
                    Err(anyhow!("pod/{} Failed{why}", pod.name).into())
                }
                "" => Err(anyhow!(
                    "the supervisor of pod {:?} ended without a word (`podrun down {0}` removes what it left)",
                    pod.name
                )
                .into()),
                other => Err(anyhow!(
                    "running pod {:?}: {}",
                    pod.name,
                    other.strip_prefix("error: ").unwrap_or(other)
                )
                .into()),
            }
        }
    }
}

/// A detached supervisor keeps nothing of the terminal.
fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Which containers failed and how, from the final status.
fn failures(state: &State) -> String {
    let statuses = state
        .status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(state.status.container_statuses.iter().flatten());
    let mut out = Vec::new();
    for s in statuses {
        let terminated = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        let waiting = s.state.as_ref().and_then(|st| st.waiting.as_ref());
        if let Some(t) = terminated.filter(|t| t.exit_code != 0) {
            let reason = t.reason.as_deref().unwrap_or("Error");
            let message = t
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            out.push(format!(
                "{}: {reason} (exit code {}){message}",
                s.name, t.exit_code
            ));
        } else if let Some(w) = waiting {
            out.push(format!(
                "{}: {}{}",
                s.name,
                w.reason.as_deref().unwrap_or("Waiting"),
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(reason) = &state.status.reason {
        out.insert(0, reason.clone());
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(": {}", out.join("; "))
    }
}
