//! `podrun info`: what this host offers podrun, as podrun itself sees it.

use anyhow::Context;
use podrun::network::{
    self,
    conf::{NetworkList, Settings},
};
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
    network: NetworkInfo,
}

/// The CNI network pods join (unless hostNetwork).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInfo {
    conf_dir: String,
    bin_dirs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The configuration file, or "default" for podrun's own network.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    plugins: Vec<String>,
    /// The default network's subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
    /// Why pods cannot join it, when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    node_ips: Vec<String>,
}

fn network_info() -> NetworkInfo {
    let settings = Settings::from_env();
    let mut info = NetworkInfo {
        conf_dir: settings.conf_dir.display().to_string(),
        bin_dirs: settings
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
        name: None,
        source: None,
        plugins: Vec::new(),
        subnet: None,
        error: None,
        node_ips: host::node_ips().iter().map(ToString::to_string).collect(),
    };
    match network::network(&settings) {
        Ok(net) => {
            info.source = Some(match &net.file {
                Some(f) => f.display().to_string(),
                None => "default".to_owned(),
            });
            if net.file.is_none() {
                info.subnet = net.plugins.first().and_then(|p| {
                    Some(
                        p.get("ipam")?
                            .get("ranges")?
                            .get(0)?
                            .get(0)?
                            .get("subnet")?
                            .as_str()?
                            .to_owned(),
                    )
                });
            }
            info.plugins = net
                .plugins
                .iter()
                .map(|p| NetworkList::plugin_type(p).to_owned())
                .collect();
            info.name = Some(net.name);
            if let Err(e) = network::prepare(&settings, &[], false) {
                info.error = Some(e.to_string());
            }
        }
        Err(e) => info.error = Some(e.to_string()),
    }
    info
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
        network: network_info(),
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
            let n = &info.network;
            match (&n.name, &n.source) {
                (Some(name), Some(source)) => {
                    let subnet = n
                        .subnet
                        .as_ref()
                        .map(|s| format!(" on {s}"))
                        .unwrap_or_default();
                    println!(
                        "network      {name} ({source}{subnet}): {}",
                        n.plugins.join(", ")
                    );
                }
                _ => println!("network      (none)"),
            }
            if let Some(e) = &n.error {
                println!("             cannot be joined: {e}");
            }
            println!(
                "cni          configurations in {}; plugins in {}",
                n.conf_dir,
                n.bin_dirs.join(":")
            );
            println!("node IPs     {}", n.node_ips.join(" "));
        }
    }
    Ok(())
}
