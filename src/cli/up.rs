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
use podrun::lifecycle::Phase;
use podrun::plan::Settings;
use podrun::pod::PodPlan;
use podrun::supervisor::{self, Options};

use super::progress::PullProgress;
use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML, one or more documents: each Pod, Job
    /// and Deployment is a pod of its own); `-` reads standard input
    file: String,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids); unlimited if unset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
    /// Return once each pod is initialized and its apps have started (or
    /// failed, or are held up), leaving its supervisor in the background
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    objects: input::ObjectFiles,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let input = input::load(&args.file, &args.objects)?;
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let compiled = input::compile(&input, &input::node()?, &settings)?;
    drop(input);
    // Every pod's refusals before any pod is made.
    let mut plans = Vec::new();
    let mut refused = Vec::new();
    for c in compiled {
        for w in &c.warnings {
            eprintln!("warning: pod {:?}: {w}", c.name);
        }
        match c.plan {
            Ok(plan) => plans.push(plan),
            Err(reasons) => refused.push(input::refusal(&c.name, &reasons)),
        }
    }
    if !refused.is_empty() {
        return Err(Failure::Input(refused.join("\nerror: ")));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::Input(
            "podrun up must run as root (it makes cgroups, namespaces and mounts)".to_owned(),
        ));
    }
    if args.detach {
        // One after another, each reported; a pod that fails does not
        // stop the next, as `kubectl apply -f` goes on.
        let mut failed = 0;
        for plan in plans {
            if let Err(e) = detach(plan) {
                let _ = super::report(e);
                failed += 1;
            }
        }
        return if failed == 0 {
            Ok(())
        } else {
            Err(Failure::Code(1))
        };
    }
    match <[PodPlan; 1]>::try_from(plans) {
        Ok([plan]) => foreground(plan, String::new()),
        Err(plans) => foreground_many(plans),
    }
}

/// One pod in the foreground: this process is its supervisor.
fn foreground(plan: PodPlan, prefix: String) -> Result<(), Failure> {
    let options = Options {
        echo: true,
        prefix,
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

/// Several pods in the foreground: a supervisor each, in a child of this
/// process with a process group of its own, so that Ctrl-C (or a SIGTERM
/// to this process) reaches each exactly once, from here. Output lines
/// name their pod. Ends when every pod has.
fn foreground_many(plans: Vec<PodPlan>) -> Result<(), Failure> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    use nix::unistd::{Pid, setpgid};
    use podrun::sys::pidfd;
    let forwarded = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];
    let mut mask = SigSet::empty();
    for s in forwarded {
        mask.add(s);
    }
    // Blocked before the children exist, so that none is lost between a
    // fork and the wait below; each child unblocks them for its own.
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).context("blocking signals")?;
    // Each child with a pidfd, so that a signal never reaches another
    // process that has taken the pid of one already reaped.
    let mut children = Vec::new();
    for plan in plans {
        let name = plan.name.clone();
        // SAFETY: the CLI is single-threaded here; the child runs the
        // supervisor, which is what this process would otherwise do.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                let code = match foreground(plan, format!("{name}/")) {
                    Ok(()) => 0,
                    Err(e) => {
                        let _ = super::report(e);
                        1
                    }
                };
                std::process::exit(code)
            }
            Ok(ForkResult::Parent { child }) => {
                // Here too, so that the group is there before a Ctrl-C
                // could reach the child by the terminal's.
                let _ = setpgid(child, child);
                let fd = pidfd::open(child.as_raw() as u32);
                children.push((child, fd, name));
            }
            Err(e) => {
                // The pods already started are stopped in order, and
                // waited for, before this fails.
                for (pid, fd, _) in &children {
                    pidfd::signal(fd.as_ref(), *pid, Signal::SIGTERM);
                }
                let _ = wait_all(children);
                return Err(anyhow!("starting a supervisor: {e}").into());
            }
        }
    }
    // A thread takes the blocked signals and passes each to every pod;
    // it ends with the process.
    let targets: Vec<_> = children
        .iter()
        .map(|(pid, fd, _)| (*pid, fd.as_ref().and_then(|f| f.try_clone().ok())))
        .collect();
    std::thread::spawn(move || {
        while let Ok(sig) = mask.wait() {
            for (pid, fd) in &targets {
                pidfd::signal(fd.as_ref(), *pid, sig);
            }
        }
    });
    if wait_all(children) == 0 {
        Ok(())
    } else {
        Err(Failure::Code(1))
    }
}

/// Waits for each child; how many did not end with 0.
fn wait_all(children: Vec<(nix::unistd::Pid, Option<std::os::fd::OwnedFd>, String)>) -> usize {
    use nix::sys::wait::{WaitStatus, waitpid};
    let mut failed = 0;
    for (pid, _, name) in children {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(_) => failed += 1,
            Err(e) => {
                eprintln!("error: waiting for the supervisor of pod {name:?}: {e}");
                failed += 1;
            }
        }
    }
    failed
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
                prefix: String::new(),
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
                // Held up: the pod stays for the user to look at.
                "Pending" => {
                    let why = State::load(&pod.name)
                        .map(|s| failures(&s))
                        .unwrap_or_default();
                    Err(anyhow!(
                        "pod/{} Pending{why} (the pod is left as it is: `podrun status {0}` shows it, `podrun down {0}` removes it)",
                        pod.name
                    )
                    .into())
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
        } else if let Some(w) = waiting.filter(|_| podrun::supervisor::held_up(s)) {
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
