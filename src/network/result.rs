//! The addresses a CNI result gives the pod: the `ips` on interfaces in
//! the pod's namespace (results of 0.3.0 and later), or `ip4`/`ip6`
//! (0.1.0, 0.2.0); IPv4 first, as containerd picks the pod's primary IP.

use std::net::IpAddr;

use serde_json::Value;

fn address(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

/// The pod's addresses in `result`, IPv4 first, each once.
pub fn pod_ips(result: &Value) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(list) = result.get("ips").and_then(Value::as_array) {
        let interfaces = result.get("interfaces").and_then(Value::as_array);
        for ip in list {
            // An address on an interface outside the pod (the bridge's
            // own, when a plugin reports it) is not the pod's.
            let in_pod = match ip.get("interface").and_then(Value::as_u64) {
                Some(i) => interfaces
                    .and_then(|ifs| ifs.get(usize::try_from(i).ok()?))
                    .and_then(|iface| iface.get("sandbox"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
                None => true,
            };
            if let Some(a) = ip.get("address").and_then(Value::as_str).and_then(address)
                && in_pod
            {
                ips.push(a);
            }
        }
    } else {
        for family in ["ip4", "ip6"] {
            if let Some(a) = result
                .get(family)
                .and_then(|f| f.get("ip"))
                .and_then(Value::as_str)
                .and_then(address)
            {
                ips.push(a);
            }
        }
    }
    first_of_each_family(ips)
}

/// The first IPv4 and the first IPv6 address of `ips`, in that order: the
/// API server takes at most one of each family in `podIPs`.
pub fn first_of_each_family(ips: Vec<IpAddr>) -> Vec<IpAddr> {
    let v4 = ips.iter().find(|ip| ip.is_ipv4()).copied();
    let v6 = ips.iter().find(|ip| ip.is_ipv6()).copied();
    v4.into_iter().chain(v6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pods_own_addresses_ipv4_first() {
        let result = json!({
            "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/ns"}],
            "ips": [
                {"interface": 2, "address": "fd00::5/64"},
                {"interface": 0, "address": "10.1.0.1/24"},
                {"interface": 2, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"address": "10.1.0.6/24"},
            ],
        });
        let ips: Vec<String> = pod_ips(&result).iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.1.0.5", "fd00::5"]);
    }

    #[test]
    fn an_old_result() {
        let result = json!({"ip4": {"ip": "10.2.0.7/16"}, "dns": {}});
        assert_eq!(pod_ips(&result), [IpAddr::from([10, 2, 0, 7])]);
        assert!(pod_ips(&json!({})).is_empty());
    }
}
