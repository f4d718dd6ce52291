//! `podrun down NAME...`: each pod's termination sequence, then nothing of it
//! left but its state and logs. Works from the state on disk when the
//! supervisor is gone.

use std::time::Duration;

use anyhow::Context;
use podrun::supervisor;

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pods' names (those of a file's several pods, say)
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL, instead of the pod's
    /// terminationGracePeriodSeconds; 0 kills at once
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..))]
    grace: Option<i64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    for name in &args.names {
        super::check_name(name)?;
    }
    // Each in turn; one that fails does not keep the others up.
    let mut failed = None;
    for name in &args.names {
        if let Err(e) = down(name, args.grace) {
            if args.names.len() == 1 {
                return Err(e);
            }
            let _ = super::report(e);
            failed = Some(Failure::Code(1));
        }
    }
    failed.map_or(Ok(()), Err)
}

fn down(name: &str, grace: Option<i64>) -> Result<(), Failure> {
    if super::reclaimed(name)? {
        println!("pod/{name} down");
        return Ok(());
    }
    // Long enough for the longest grace period plus the kubelet's minimum
    // for sidecars; a supervisor still there after it is killed.
    let wait = Duration::from_secs(grace.unwrap_or(3600) as u64 + 30);
    supervisor::down(name, grace, wait).with_context(|| format!("stopping pod {name:?}"))?;
    println!("pod/{name} down");
    Ok(())
}
