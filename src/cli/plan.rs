//! `podrun plan FILE`: effective resources, QoS, cgroup values, start order.

use anyhow::Context;
use podrun::manifest::Quantity;
use podrun::plan::{self, NodeFacts, Settings};
use podrun::sandbox::host;

use super::{Failure, Output, input};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest file (JSON or YAML); `-` reads standard input
    file: String,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    /// Plan for a node with this much memory (a quantity such as 16Gi)
    /// instead of this machine's
    #[arg(long, value_name = "QUANTITY", value_parser = parse_memory)]
    node_memory: Option<u64>,
    /// Plan for a node with this many cpus instead of this machine's
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    node_cpus: Option<u32>,
    /// pids.max of the pod cgroup (the kubelet's --pod-max-pids); unlimited if unset
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pod_max_pids: Option<u64>,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let q = Quantity::parse(text).map_err(|e| e.to_string())?;
    u64::try_from(q.value_ceil())
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| "must be a positive amount of memory".to_owned())
}

pub fn run(args: Args) -> Result<(), Failure> {
    let manifest = input::load(&args.file)?;
    // This machine's facts only where the flags do not give them.
    let mut node = match (args.node_memory, args.node_cpus) {
        (Some(memory_bytes), Some(cpus)) => NodeFacts {
            memory_bytes,
            cpus,
            hugepage_sizes: host::hugepage_sizes_on_host(),
        },
        _ => host::node_facts().context("reading this machine's facts")?,
    };
    if let Some(memory) = args.node_memory {
        node.memory_bytes = memory;
    }
    if let Some(cpus) = args.node_cpus {
        node.cpus = cpus;
    }
    let settings = Settings {
        pod_pids_limit: args.pod_max_pids,
    };
    let plan = plan::plan(&manifest.pod, &node, &settings);
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&plan).context("encoding the plan")?;
            println!("{json}");
        }
        Output::Text => print!("{}", plan::render_text(&manifest.pod, &plan)),
    }
    Ok(())
}
