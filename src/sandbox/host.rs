//! The host's facts the planner needs: memory, cpus, huge page sizes.

use std::path::Path;

use crate::plan::NodeFacts;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot find {what} in {path}")]
    Parse { what: &'static str, path: String },
}

fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The interfaces of the node's default routes (`/proc/net/route`,
/// `/proc/net/ipv6_route`), IPv4's first.
fn default_route_interfaces(route: &str, ipv6_route: &str) -> Vec<String> {
    let v4 = crate::network::default::routes(route)
        .filter(|(_, dst, mask)| *dst == 0 && *mask == 0)
        .map(|(iface, _, _)| iface.to_owned());
    let v6 = ipv6_route.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 10 && f[0].bytes().all(|b| b == b'0') && f[1] == "00" && f[9] != "lo")
            .then(|| f[9].to_owned())
    });
    let mut out: Vec<String> = Vec::new();
    for i in v4.chain(v6) {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The node's addresses, as the kubelet chooses its node IP: those of
/// the interface of its default route (IPv4 first, link-local ones
/// left out); the loopback's when it has no default route (a node that
/// is a network namespace of its own).
pub fn node_ips() -> Vec<std::net::IpAddr> {
    use std::net::IpAddr;
    let interfaces = default_route_interfaces(
        &std::fs::read_to_string("/proc/net/route").unwrap_or_default(),
        &std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default(),
    );
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if !interfaces.contains(&a.interface_name) {
                continue;
            }
            let Some(addr) = a.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
            };
            if !link_local && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    let mut ips = crate::network::result::first_of_each_family(ips);
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips
}

/// Reads the facts as the kubelet's cadvisor does: MemTotal, online cpus,
/// the kernel's huge page sizes.
pub fn node_facts() -> Result<NodeFacts, HostError> {
    let meminfo = read("/proc/meminfo")?;
    let memory_bytes = parse_mem_total(&meminfo).ok_or(HostError::Parse {
        what: "MemTotal",
        path: "/proc/meminfo".to_owned(),
    })?;
    let online = read("/sys/devices/system/cpu/online")?;
    let cpus = parse_cpu_list(&online).ok_or(HostError::Parse {
        what: "a cpu list",
        path: "/sys/devices/system/cpu/online".to_owned(),
    })?;
    Ok(NodeFacts {
        memory_bytes,
        cpus,
        hugepage_sizes: hugepage_sizes_on_host(),
    })
}

/// The kernel's huge page sizes; none when it offers none.
pub fn hugepage_sizes_on_host() -> Vec<u64> {
    hugepage_sizes(Path::new("/sys/kernel/mm/hugepages"))
}

pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kib: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// `0-3,8,10-11` → 7.
pub fn parse_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                count = count.checked_add(b.checked_sub(a)? + 1)?;
            }
            None => {
                part.parse::<u32>().ok()?;
                count = count.checked_add(1)?;
            }
        }
    }
    (count > 0).then_some(count)
}

/// `hugepages-2048kB` directories → sizes in bytes; none when the kernel has
/// no huge pages.
fn hugepage_sizes(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_hugepage_dir(&e.file_name().to_string_lossy()))
        .collect();
    sizes.sort_unstable();
    sizes
}

pub fn parse_hugepage_dir(name: &str) -> Option<u64> {
    let kb: u64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_routes_interfaces() {
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth2\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(default_route_interfaces(route, v6), ["eth0", "eth2"]);
        assert!(default_route_interfaces("Iface\n", "").is_empty());
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            parse_mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn hugepage_dirs() {
        assert_eq!(parse_hugepage_dir("hugepages-2048kB"), Some(2 << 20));
        assert_eq!(parse_hugepage_dir("hugepages-1048576kB"), Some(1 << 30));
        assert_eq!(parse_hugepage_dir("other"), None);
    }
}
