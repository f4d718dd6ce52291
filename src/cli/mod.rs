//! The command line: one file per verb; errors become exit codes here.

mod apply;
mod down;
mod events;
mod exec;
mod image;
mod info;
mod input;
mod login;
mod logs;
mod plan;
mod progress;
mod ps;
mod rm;
mod status;
mod up;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use podrun::manifest::ManifestError;

#[derive(Parser)]
#[command(
    name = "podrun",
    version,
    about = "Run Kubernetes pods on this machine, with Kubernetes' semantics and no cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a Pod, Job or Deployment manifest as the API server would
    Validate(validate::Args),
    /// Show what podrun would give a pod: resources, QoS, cgroup values, start order
    Plan(plan::Args),
    /// Show what this host offers podrun: cgroup v2, controllers, memory, cpus
    Info(info::Args),
    /// Run a pod in the foreground until it finishes (Ctrl-C stops it in order)
    Up(up::Args),
    /// Stop a pod in order and remove everything of it but its state and logs
    Down(down::Args),
    /// Show a pod's Kubernetes PodStatus
    Status(status::Args),
    /// List the pods on this machine, as kubectl get pods does
    Ps(ps::Args),
    /// Print a container's output, as kubectl logs does
    Logs(logs::Args),
    /// Show a pod's events (Scheduled, Started, Killing, Unhealthy, ...)
    Events(events::Args),
    /// Run a command in a running container
    Exec(exec::Args),
    /// Update a running pod: a changed container image restarts that container
    Apply(apply::Args),
    /// Forget a finished pod: its state and logs
    Rm(rm::Args),
    /// Manage the local image store: pull, import, ls, inspect, rm, prune
    Image(image::Args),
    /// Log in to a registry (credentials in containers-auth.json)
    Login(login::LoginArgs),
    /// Remove a registry's credentials from containers-auth.json
    Logout(login::LogoutArgs),
    /// A pod supervisor's image pull, in a process of its own (internal)
    #[command(name = "internal-pull", hide = true)]
    InternalPull,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// How a verb failed: bad input (exit 2) or anything else (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// Exit with this code and say nothing (a command run by `exec` failed
    /// and said why itself).
    #[error("exit code {0}")]
    Code(u8),
}

/// A refusal by the pod's supervisor is about the request (exit 2).
impl From<podrun::api::client::CallError> for Failure {
    fn from(e: podrun::api::client::CallError) -> Failure {
        match e {
            podrun::api::client::CallError::Refused { message, .. } => Failure::Input(message),
            other => Failure::Other(other.into()),
        }
    }
}

pub fn run() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Up(_)) {
        // A reader that goes away (`podrun ps | head`) ends the command
        // quietly, as for any Unix tool. Not for `up`: its supervisor must
        // outlive whoever reads its output.
        // SAFETY: signal(2) with the default disposition.
        unsafe { nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Info(args) => info::run(args),
        Command::Up(args) => up::run(args),
        Command::Down(args) => down::run(args),
        Command::Status(args) => status::run(args),
        Command::Ps(args) => ps::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Events(args) => events::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Image(args) => image::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::InternalPull => podrun::supervisor::pulls::child_main()
            .map_err(|e| Failure::Other(anyhow::anyhow!("the pull's pipes: {e}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

/// Says what failed on stderr; the exit code that tells it: 2 for what
/// the user gave, 1 for what happened.
pub fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::Manifest(e) => {
            match &e {
                ManifestError::Invalid { .. } => eprintln!("{}", kubectl_shape(&e)),
                _ => eprintln!("error: {e}"),
            }
            ExitCode::from(2)
        }
        Failure::Input(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Failure::Code(code) => ExitCode::from(code),
        Failure::Other(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A pod name from the command line must be a name podrun could have
/// given a pod: it becomes a path component.
pub fn check_name(name: &str) -> Result<(), Failure> {
    let errors = podrun::manifest::validate_pod_name(name);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Input(format!(
            "invalid pod name {name:?}: {}",
            errors.join("; ")
        )))
    }
}

/// Whether pod `name` was the leftover of a supervisor that died before it
/// saved the pod's state (only its run directory), now removed.
pub fn reclaimed(name: &str) -> Result<bool, Failure> {
    let run = podrun::paths::PodDirs::run_of(name);
    podrun::sandbox::pod::remove_stale_claim(&run)
        .map_err(|e| Failure::Other(anyhow::anyhow!("pod {name:?}: {e}")))
}

/// The state of the pod named on the command line.
pub fn load(name: &str) -> Result<podrun::api::state::State, Failure> {
    check_name(name)?;
    podrun::api::state::State::load(name).map_err(|e| Failure::Input(e.to_string()))
}

/// A connection to the supervisor of a pod that runs.
pub fn connect(state: &podrun::api::state::State) -> Result<podrun::api::client::Client, Failure> {
    if !state.supervisor_alive() {
        return Err(Failure::Input(format!(
            "pod {:?} is not running",
            state.name
        )));
    }
    Ok(podrun::api::client::Client::connect(&state.dirs.run).map_err(anyhow::Error::from)?)
}

/// kubectl prints a single error on the header's line and several as a
/// list below it.
fn kubectl_shape(e: &ManifestError) -> String {
    match e {
        ManifestError::Invalid { kind, name, errors } if errors.len() == 1 => {
            format!("The {kind} {name:?} is invalid: {}", errors[0])
        }
        other => other.to_string(),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
