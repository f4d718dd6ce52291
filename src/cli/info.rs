//! `podrun info`: what this host offers podrun, as podrun itself sees it.

use anyhow::Context;
use podrun::sandbox::{cgroup, host};
use serde::Serialize;

use super::{Failure, Output};

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    cgroup: CgroupInfo,
    node: NodeInfo,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CgroupInfo {
    mount: String,
    hybrid: bool,
    controllers: Vec<String>,
    limits_enforced: bool,
    /// Why limits cannot be enforced, when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    memory_bytes: u64,
    cpus: u32,
    hugepage_sizes: Vec<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (mount, controllers) = cgroup::discover().context("finding cgroup v2")?;
    let node = host::node_facts().context("reading this machine's facts")?;
    let reason = cgroup::unenforced_reason(&mount, &controllers);
    let info = Info {
        cgroup: CgroupInfo {
            mount: mount.mount.display().to_string(),
            hybrid: mount.hybrid,
            controllers,
            limits_enforced: reason.is_none(),
            reason,
        },
        node: NodeInfo {
            memory_bytes: node.memory_bytes,
            cpus: node.cpus,
            hugepage_sizes: node.hugepage_sizes,
        },
    };
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&info).context("encoding")?;
            println!("{json}");
        }
        Output::Text => {
            let c = &info.cgroup;
            let layout = if c.hybrid { "hybrid" } else { "unified" };
            println!("cgroup2      {} ({layout})", c.mount);
            let controllers = if c.controllers.is_empty() {
                "(none)".to_owned()
            } else {
                c.controllers.join(" ")
            };
            println!("controllers  {controllers}");
            match &c.reason {
                None => println!("limits       enforced"),
                Some(reason) => println!("limits       not enforced: {reason}"),
            }
            println!("memory       {} bytes", info.node.memory_bytes);
            println!("cpus         {}", info.node.cpus);
            let sizes: Vec<String> = info
                .node
                .hugepage_sizes
                .iter()
                .map(|s| format!("{}kB", s / 1024))
                .collect();
            println!(
                "hugepages    {}",
                if sizes.is_empty() {
                    "(none)".to_owned()
                } else {
                    sizes.join(" ")
                }
            );
        }
    }
    Ok(())
}
