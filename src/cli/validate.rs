//! `podrun validate FILE`: the API server's checks, nothing started.

use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML); `-` reads standard input
    file: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let manifest = input::load(&args.file)?;
    println!("pod/{} valid", manifest.pod.name);
    Ok(())
}
