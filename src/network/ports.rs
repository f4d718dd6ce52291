//! hostPorts held on this node: every pod's network record names the ports
//! it published, until its network is torn down (a pod whose supervisor
//! died still holds its rules, and so its ports, until `podrun down`).
//! Claims are made under one lock, so two pods started at once cannot
//! both take a port.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::api::runtime::PortMapping;

/// Whether two mappings take the same port: one protocol and port, on
/// the same address or where either takes every address.
pub fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    let any = |ip: &str| matches!(ip, "" | "0.0.0.0" | "::");
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (any(&a.host_ip) || any(&b.host_ip) || a.host_ip == b.host_ip)
}

/// The node's network namespace, as a number to tell nodes apart (two
/// pods in different namespaces do not share ports).
pub fn node_id() -> u64 {
    fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// The lock that claims are made under: held while it lives.
pub struct ClaimLock {
    _lock: Flock<fs::File>,
}

pub fn lock(path: &Path) -> std::io::Result<ClaimLock> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let lock =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
    Ok(ClaimLock { _lock: lock })
}

/// The first of `wanted` that `held` (pod name, node, mappings) already
/// takes on `node`, with the pod that holds it.
pub fn first_clash<'a>(
    wanted: &'a [PortMapping],
    node: u64,
    held: &'a [(String, u64, Vec<PortMapping>)],
) -> Option<(&'a PortMapping, &'a str)> {
    wanted.iter().find_map(|w| {
        held.iter()
            .filter(|(_, n, _)| *n == node)
            .find(|(_, _, ms)| ms.iter().any(|m| clash(w, m)))
            .map(|(pod, _, _)| (w, pod.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(port: u16, protocol: &str, ip: &str) -> PortMapping {
        PortMapping {
            host_port: port,
            container_port: 80,
            protocol: protocol.to_owned(),
            host_ip: ip.to_owned(),
        }
    }

    #[test]
    fn a_port_clashes_on_one_protocol_and_address() {
        assert!(clash(&pm(80, "tcp", ""), &pm(80, "tcp", "127.0.0.1")));
        assert!(clash(
            &pm(80, "tcp", "10.0.0.1"),
            &pm(80, "tcp", "10.0.0.1")
        ));
        assert!(!clash(
            &pm(80, "tcp", "10.0.0.1"),
            &pm(80, "tcp", "10.0.0.2")
        ));
        assert!(!clash(&pm(80, "tcp", ""), &pm(80, "udp", "")));
        assert!(!clash(&pm(80, "tcp", ""), &pm(81, "tcp", "")));
    }

    #[test]
    fn only_a_pod_of_the_same_node_holds_a_port() {
        let held = vec![
            ("a".to_owned(), 1, vec![pm(80, "tcp", "")]),
            ("b".to_owned(), 2, vec![pm(81, "tcp", "")]),
        ];
        let wanted = [pm(81, "tcp", ""), pm(80, "tcp", "")];
        let (m, pod) = first_clash(&wanted, 1, &held).unwrap();
        assert_eq!((m.host_port, pod), (80, "a"));
        assert!(first_clash(&wanted[..1], 1, &held).is_none());
    }
}
