//! podrun's own network, used when the configuration directory has none:
//! the `podrun0` bridge with host-local addresses on a private subnet that
//! none of the node's routes covers, portmap for hostPorts, the firewall
//! plugin, bandwidth for the bandwidth annotations, and loopback. Made in memory: nothing is written to the
//! configuration directory.

use std::net::Ipv4Addr;

use serde_json::json;

use super::conf::NetworkList;

pub const NAME: &str = "podrun";
pub const BRIDGE: &str = "podrun0";

/// The subnets tried in turn, each a /16 (10.88.0.0/16 is podman's).
const CANDIDATES: [[u8; 2]; 14] = [
    [10, 89],
    [10, 90],
    [10, 91],
    [10, 92],
    [10, 93],
    [10, 94],
    [10, 95],
    [10, 96],
    [10, 97],
    [10, 98],
    [10, 99],
    [172, 29],
    [172, 30],
    [172, 31],
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no private subnet is free for podrun's default network: routes of this node cover each of {tried}; put a network configuration in the CNI configuration directory"
)]
pub struct NoSubnet {
    tried: String,
}

/// One IPv4 route of `/proc/net/route`: its interface, destination, mask
/// (both in host order).
pub fn routes(table: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    // The kernel writes addresses as the hex of their bytes in memory
    // order: parsed as a little-endian u32, then byte-swapped to network
    // order.
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
    table.lines().skip(1).filter_map(move |line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        Some((*f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?))
    })
}

/// The subnet for the default network, from the node's IPv4 routes
/// (`/proc/net/route`): the one already on `podrun0`, else the first
/// candidate that no other route (the default route aside) overlaps.
pub fn subnet(table: &str) -> Result<(Ipv4Addr, u8), NoSubnet> {
    if let Some((_, dst, mask)) = routes(table).find(|(i, _, m)| *i == BRIDGE && *m != 0) {
        return Ok((Ipv4Addr::from(dst), mask.count_ones() as u8));
    }
    let taken: Vec<(u32, u32)> = routes(table)
        .filter(|(_, _, mask)| *mask != 0)
        .map(|(_, dst, mask)| (dst, mask))
        .collect();
    let mask16 = u32::MAX << 16;
    for [a, b] in CANDIDATES {
        let net = u32::from(Ipv4Addr::new(a, b, 0, 0));
        // Two prefixes overlap when they agree under the shorter mask.
        let overlaps = taken.iter().any(|(dst, mask)| {
            let shorter = mask & mask16;
            dst & shorter == net & shorter
        });
        if !overlaps {
            return Ok((Ipv4Addr::from(net), 16));
        }
    }
    Err(NoSubnet {
        tried: CANDIDATES
            .iter()
            .map(|[a, b]| format!("{a}.{b}.0.0/16"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The default network on `subnet`.
pub fn network((net, prefix): (Ipv4Addr, u8)) -> NetworkList {
    let gateway = Ipv4Addr::from(u32::from(net) + 1);
    let plugins = json!([
        {
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{"subnet": format!("{net}/{prefix}"), "gateway": gateway.to_string()}]],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": true}},
        {"type": "firewall"},
        // Shapes a pod with bandwidth annotations; passes the others on.
        {"type": "bandwidth", "capabilities": {"bandwidth": true}},
        // The namespace holder brings `lo` up already; the plugin says so
        // in the result, passing the bridge's on.
        {"type": "loopback"},
    ]);
    NetworkList {
        name: NAME.to_owned(),
        cni_version: "1.0.0".to_owned(),
        plugins: plugins
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_object().cloned())
            .collect(),
        file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    fn table(rows: &[(&str, &str, &str)]) -> String {
        let mut t = HEAD.to_owned();
        for (iface, dst, mask) in rows {
            t.push_str(&format!(
                "{iface}\t{dst}\t00000000\t0001\t0\t0\t0\t{mask}\t0\t0\t0\n"
            ));
        }
        t
    }

    #[test]
    fn the_first_subnet_no_route_covers() {
        // default via eth0; 10.89.0.0/24 on docker0; 10.0.0.0/8 on vpn0
        // covers 10.90-10.99 too.
        assert_eq!(
            subnet(&table(&[])).unwrap(),
            (Ipv4Addr::new(10, 89, 0, 0), 16)
        );
        let t = table(&[
            ("eth0", "00000000", "00000000"),
            ("docker0", "0000590A", "00FFFFFF"),
        ]);
        assert_eq!(subnet(&t).unwrap(), (Ipv4Addr::new(10, 90, 0, 0), 16));
        let t = table(&[("vpn0", "0000000A", "000000FF")]);
        assert_eq!(subnet(&t).unwrap(), (Ipv4Addr::new(172, 29, 0, 0), 16));
    }

    #[test]
    fn the_bridge_keeps_its_subnet() {
        let t = table(&[
            ("podrun0", "00005B0A", "0000FFFF"),
            ("x", "0000590A", "0000FFFF"),
        ]);
        assert_eq!(subnet(&t).unwrap(), (Ipv4Addr::new(10, 91, 0, 0), 16));
    }

    #[test]
    fn no_free_subnet_says_which_were_tried() {
        let t = table(&[("a", "0000000A", "000000FF"), ("b", "000010AC", "0000F0FF")]);
        let e = subnet(&t).unwrap_err().to_string();
        assert!(e.contains("10.89.0.0/16, 10.90.0.0/16"), "{e}");
        assert!(e.contains("172.31.0.0/16"), "{e}");
    }

    #[test]
    fn the_default_network() {
        let net = network((Ipv4Addr::new(10, 89, 0, 0), 16));
        assert_eq!(net.name, "podrun");
        let types: Vec<_> = net.plugins.iter().map(NetworkList::plugin_type).collect();
        assert_eq!(
            types,
            ["bridge", "portmap", "firewall", "bandwidth", "loopback"]
        );
        assert!(net.has_capability("portMappings") && net.has_capability("bandwidth"));
        assert_eq!(
            net.plugins[0]["ipam"]["ranges"][0][0],
            json!({"subnet": "10.89.0.0/16", "gateway": "10.89.0.1"})
        );
    }
}
