//! `podrun down NAME`: the pod's termination sequence, then nothing of it
//! left but its state and logs. Works from the state on disk when the
//! supervisor is gone.

use std::time::Duration;

use anyhow::Context;
use podrun::supervisor;

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// Seconds between SIGTERM and SIGKILL, instead of the pod's
    /// terminationGracePeriodSeconds; 0 kills at once
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..))]
    grace: Option<i64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    super::check_name(&args.name)?;
    if super::reclaimed(&args.name)? {
        println!("pod/{} down", args.name);
        return Ok(());
    }
    // Long enough for the longest grace period plus the kubelet's minimum
    // for sidecars; a supervisor still there after it is killed.
    let wait = Duration::from_secs(args.grace.unwrap_or(3600) as u64 + 30);
    supervisor::down(&args.name, args.grace, wait)
        .with_context(|| format!("stopping pod {:?}", args.name))?;
    println!("pod/{} down", args.name);
    Ok(())
}
