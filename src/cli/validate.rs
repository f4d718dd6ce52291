//! `podrun validate FILE`: the API server's checks, and everything `up`
//! would refuse on this machine, nothing started.

use podrun::plan::Settings;

use super::{Failure, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML, one or more documents); `-` reads
    /// standard input
    file: String,
    #[command(flatten)]
    objects: input::ObjectFiles,
    #[command(flatten)]
    node: input::NodeFlags,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids), as `up`
    /// would be given it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let input = input::load(&args.file, &args.objects)?;
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let compiled = input::compile(&input, &args.node.facts()?, &settings)?;
    let mut refused = Vec::new();
    for c in compiled {
        for w in &c.warnings {
            eprintln!("warning: pod {:?}: {w}", c.name);
        }
        match c.plan {
            Ok(_) => println!("pod/{} valid", c.name),
            Err(reasons) => refused.push(input::refusal(&c.name, &reasons)),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Failure::Input(refused.join("\nerror: ")))
    }
}
