//! `podrun plan FILE`: effective resources, QoS, cgroup values, start order.

use anyhow::Context;
use podrun::plan::{self, Settings};

use super::{Failure, Output, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML, one or more documents); `-` reads
    /// standard input
    file: String,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    node: input::NodeFlags,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids); unlimited if unset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let input = input::load(&args.file, &input::ObjectFiles::default())?;
    let node = args.node.facts()?;
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let plans: Vec<_> = input
        .pods
        .iter()
        .map(|m| (&m.pod, plan::plan(&m.pod, &node, &settings)))
        .collect();
    match args.output {
        // One pod's plan is an object; several pods' an array of them.
        Output::Json => {
            let json = match plans.as_slice() {
                [(_, one)] => serde_json::to_string_pretty(one),
                many => {
                    serde_json::to_string_pretty(&many.iter().map(|(_, p)| p).collect::<Vec<_>>())
                }
            }
            .context("encoding the plan")?;
            println!("{json}");
        }
        Output::Text => {
            let texts: Vec<String> = plans
                .iter()
                .map(|(pod, p)| plan::render_text(pod, p))
                .collect();
            print!("{}", texts.join("\n"));
        }
    }
    Ok(())
}
