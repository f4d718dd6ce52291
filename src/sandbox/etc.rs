//! The files the kubelet and the CRI runtime give every container of a pod:
//! `/etc/hosts` (Kubernetes-managed, with the pod's hostname and
//! `hostAliases`), `/etc/hostname` and `/etc/resolv.conf` (from the pod's
//! `dnsPolicy` and `dnsConfig`). Written once per pod in its data directory
//! and bind-mounted into each container.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::api::runtime::{DnsConfig, HostsConfig, SandboxConfig};

#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The resolver configuration a pod's containers get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// The kubelet's limits on what a resolv.conf passes on.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

impl Resolv {
    /// Reads a resolv.conf as the kubelet parses the host's.
    pub fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => r.nameservers.extend(fields.next().map(str::to_owned)),
                // The last search line wins, as in the resolver.
                Some("search") => r.searches = fields.map(str::to_owned).collect(),
                Some("options") => r.options.extend(fields.map(str::to_owned)),
                _ => {}
            }
        }
        r
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn push_new(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// The pod's resolver: the host's for `Default`, and for `ClusterFirst`
/// too (podrun has no cluster DNS, and the kubelet falls back to the
/// host's without one); only `dnsConfig` for `None`; `dnsConfig` appended
/// in every case, as the kubelet merges it.
pub fn resolv(dns: &DnsConfig, host: &Resolv) -> Resolv {
    let mut r = if dns.from_host {
        host.clone()
    } else {
        Resolv::default()
    };
    push_new(&mut r.nameservers, dns.nameservers.iter().cloned());
    push_new(&mut r.searches, dns.searches.iter().cloned());
    for (name, value) in &dns.options {
        let option = match value {
            Some(v) => format!("{name}:{v}"),
            None => name.clone(),
        };
        r.options.retain(|e| option_name(e) != option_name(&option));
        r.options.push(option);
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    r
}

/// The kubelet's managed `/etc/hosts`: the localhost entries, the pod's
/// hostname on each of its addresses (on its loopback when it has none),
/// and `hostAliases`. A hostNetwork pod gets the host's file instead,
/// with its aliases.
pub fn hosts(
    host_network: bool,
    config: &HostsConfig,
    hostname: &str,
    pod_ips: &[IpAddr],
    host_hosts: &str,
) -> String {
    let mut out = String::new();
    if host_network {
        out.push_str("# Kubernetes-managed hosts file (host network).\n");
        out.push_str(host_hosts);
        if !host_hosts.is_empty() && !host_hosts.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str("# Kubernetes-managed hosts file.\n");
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str("fe00::0\tip6-localnet\n");
        out.push_str("fe00::0\tip6-mcastprefix\n");
        out.push_str("fe00::1\tip6-allnodes\n");
        out.push_str("fe00::2\tip6-allrouters\n");
        let fqdn = config
            .subdomain
            .as_deref()
            .map(|sub| format!("{hostname}.{sub}"));
        let loopback = [IpAddr::from([127, 0, 0, 1])];
        let ips = if pod_ips.is_empty() {
            &loopback[..]
        } else {
            pod_ips
        };
        for ip in ips {
            match &fqdn {
                Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
                None => out.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
    }
    if !config.aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
    }
    for (ip, names) in &config.aliases {
        out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
    }
    out
}

fn write(path: &Path, text: &str) -> Result<(), EtcError> {
    fs::write(path, text).map_err(|source| EtcError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The pod's resolver: its DNS settings merged with the host's
/// `/etc/resolv.conf`.
pub fn pod_resolv(config: &SandboxConfig) -> Resolv {
    let host = Resolv::parse(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    resolv(&config.dns, &host)
}

/// Writes the pod's files into `dir`; returns each with the path it has in
/// a container.
pub fn create(
    dir: &Path,
    config: &SandboxConfig,
    resolv: &Resolv,
    pod_ips: &[IpAddr],
) -> Result<Vec<(PathBuf, String)>, EtcError> {
    fs::create_dir_all(dir).map_err(|source| EtcError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let host_network = config.namespaces.host_network;
    let (hostname, node_name) = (&config.hostname, &config.node_name);
    let host_hosts = if host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::new()
    };
    let files = [
        (
            "hosts",
            hosts(host_network, &config.hosts, hostname, pod_ips, &host_hosts),
            "/etc/hosts",
        ),
        (
            "hostname",
            format!("{}\n", if host_network { node_name } else { hostname }),
            "/etc/hostname",
        ),
        ("resolv.conf", resolv.render(), "/etc/resolv.conf"),
    ];
    let mut out = Vec::new();
    for (file, text, target) in files {
        let path = dir.join(file);
        write(&path, &text)?;
        out.push((path, target.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod's sandbox settings, as the pod compiles them.
    struct Spec {
        host_network: bool,
        dns: DnsConfig,
        hosts: HostsConfig,
    }

    /// The settings of a pod whose spec is `yaml` (with one container).
    fn spec(yaml: &str) -> Spec {
        let spec: String = yaml
            .replace("containers: []", "containers: [{name: c, image: i}]")
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect();
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}");
        let pod = crate::manifest::parse(&text).unwrap().pod;
        Spec {
            host_network: crate::pod::sandbox::namespaces(&pod.spec).host_network,
            dns: crate::pod::sandbox::dns(&pod.spec),
            hosts: crate::pod::sandbox::hosts(&pod.spec),
        }
    }

    fn hosts(spec: &Spec, hostname: &str, host_hosts: &str) -> String {
        super::hosts(spec.host_network, &spec.hosts, hostname, &[], host_hosts)
    }

    fn resolv(spec: &Spec, host: &Resolv) -> Resolv {
        super::resolv(&spec.dns, host)
    }

    #[test]
    fn hosts_as_the_kubelet_manages_them() {
        let s = spec(
            "containers: []\nsubdomain: svc\nhostAliases: [{ip: 10.0.0.9, hostnames: [db, db.local]}]",
        );
        let text = hosts(&s, "web", "");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("\n127.0.0.1\tweb.svc\tweb\n"));
        assert!(text.ends_with("\n# Entries added by HostAliases.\n10.0.0.9\tdb\tdb.local\n"));
        // On the pod's network, its hostname is on each of its addresses.
        let ips = ["10.89.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let text = super::hosts(false, &s.hosts, "web", &ips, "");
        assert!(text.contains(
            "\nfe00::2\tip6-allrouters\n10.89.0.5\tweb.svc\tweb\nfd00::5\tweb.svc\tweb\n"
        ));
        assert!(!text.contains("127.0.0.1\tweb"));
        let host = spec("containers: []\nhostNetwork: true");
        assert_eq!(
            hosts(&host, "web", "127.0.0.1 localhost"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
    }

    #[test]
    fn resolv_follows_dns_policy_and_merges_dns_config() {
        let host = Resolv::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch old.example\nsearch corp.example\noptions ndots:2 rotate\n",
        );
        assert_eq!(host.searches, ["corp.example"]);
        let default = spec("containers: []");
        assert_eq!(resolv(&default, &host), host);
        let merged = spec(
            "containers: []\ndnsPolicy: ClusterFirst\ndnsConfig: {nameservers: [10.0.0.3, 1.1.1.1, 8.8.8.8], searches: [x.example], options: [{name: ndots, value: '5'}, {name: edns0}]}",
        );
        let r = resolv(&merged, &host);
        assert_eq!(r.nameservers, ["10.0.0.2", "10.0.0.3", "1.1.1.1"]);
        assert_eq!(r.searches, ["corp.example", "x.example"]);
        assert_eq!(r.options, ["rotate", "ndots:5", "edns0"]);
        assert_eq!(
            r.render(),
            "search corp.example x.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 1.1.1.1\noptions rotate ndots:5 edns0\n"
        );
        let none = spec("containers: []\ndnsPolicy: None\ndnsConfig: {nameservers: [192.0.2.1]}");
        assert_eq!(resolv(&none, &host).render(), "nameserver 192.0.2.1\n");
    }
}
