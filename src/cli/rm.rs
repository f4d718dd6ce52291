//! `podrun rm NAME`: forgets a finished pod (its state and logs).

use anyhow::Context;
use podrun::supervisor;

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// Stop the pod first if it is still running
    #[arg(short, long)]
    force: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    super::check_name(&args.name)?;
    if super::reclaimed(&args.name)? {
        println!("pod/{} removed", args.name);
        return Ok(());
    }
    let mut state = super::load(&args.name)?;
    if !state.torn_down {
        if !args.force && state.supervisor_alive() {
            return Err(Failure::Input(format!(
                "pod {:?} is running: stop it with `podrun down {0}` or use --force",
                args.name
            )));
        }
        state = supervisor::down(&args.name, Some(0), std::time::Duration::from_secs(30))
            .with_context(|| format!("stopping pod {:?}", args.name))?;
    }
    supervisor::forget(&state).with_context(|| format!("removing pod {:?}", args.name))?;
    println!("pod/{} removed", args.name);
    Ok(())
}
