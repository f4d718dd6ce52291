//! The pod's network, through CNI as containerd and CRI-O do it: the
//! node's network configuration (or podrun's default network) is run
//! plugin by plugin, ADD in order with each given the previous result,
//! when the sandbox is made; DEL in reverse, with the result ADD gave,
//! when it is torn down. What was asked and answered is kept in a record
//! in the pod's run directory, written before the first ADD, so a pod
//! whose supervisor was killed is torn down from it; the node's network
//! namespace is pinned beside it, so the DEL lands where the ADD did
//! whoever runs it. podrun never runs CHECK (portmap's misreports its
//! IPv6 rules; containerd does not run it either).

pub mod conf;
pub mod default;
pub mod plugin;
pub mod ports;
pub mod result;

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::runtime::{Bandwidth, PortMapping};
use conf::{ConfError, NetworkList, Settings};
use plugin::{Call, PluginError};

/// The pod's interface, as every CRI runtime names it.
pub const IFNAME: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    NoSubnet(#[from] default::NoSubnet),
    #[error("network {network:?} ({origin}): {source}")]
    Plugin {
        network: String,
        origin: String,
        source: PluginError,
    },
    #[error(transparent)]
    NoCapability(Box<NoCapability>),
    #[error("hostPort {port}/{protocol}{on} is already taken by pod {pod:?}")]
    PortTaken {
        port: u16,
        protocol: String,
        on: String,
        pod: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network {network:?} ({origin}): the plugins gave the pod no address")]
    NoAddress { network: String, origin: String },
    #[error("{path}: not a network record podrun can tear down from: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    #[error("cannot pin the node's network namespace at {path}: {}", errno.desc())]
    Pin { path: PathBuf, errno: Errno },
    #[error("network {network:?} ({origin}): teardown: {}", errors.join("; "))]
    Teardown {
        network: String,
        origin: String,
        errors: Vec<String>,
    },
}

/// What the pod asks of its network that none of its plugins does.
#[derive(Debug, thiserror::Error)]
#[error(
    "network {network:?} ({origin}): {what} needs a plugin with the {capability} capability ({plugin}), and none of {plugins} has it"
)]
pub struct NoCapability {
    network: String,
    origin: String,
    what: &'static str,
    capability: &'static str,
    plugin: &'static str,
    plugins: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The network a pod will join, its plugins found.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub network: NetworkList,
    binaries: Vec<PathBuf>,
    bin_dirs: Vec<PathBuf>,
}

/// The node's network: the configuration directory's first file, or
/// podrun's default on a subnet no route of the node covers.
pub fn network(settings: &Settings) -> Result<NetworkList, NetworkError> {
    if let Some(net) = conf::load(&settings.conf_dir)? {
        return Ok(net);
    }
    let routes = fs::read_to_string("/proc/net/route").unwrap_or_default();
    Ok(default::network(default::subnet(&routes)?))
}

/// Finds the node's network and every plugin it needs, before anything is
/// made: a missing plugin, a bad configuration, or a hostPort or a
/// bandwidth limit (`shaped`) no plugin can carry out is refused here.
pub fn prepare(
    settings: &Settings,
    ports: &[PortMapping],
    shaped: bool,
) -> Result<Prepared, NetworkError> {
    let network = self::network(settings)?;
    let failed = |source| NetworkError::Plugin {
        network: network.name.clone(),
        origin: network.origin(),
        source,
    };
    let binaries = network
        .plugins
        .iter()
        .map(|p| plugin::find(NetworkList::plugin_type(p), &settings.bin_dirs))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    let needed = [
        (!ports.is_empty(), "a hostPort", "portMappings", "portmap"),
        (shaped, "a bandwidth annotation", "bandwidth", "bandwidth"),
    ];
    for (wanted, what, capability, plugin) in needed {
        if wanted && !network.has_capability(capability) {
            return Err(NetworkError::NoCapability(Box::new(NoCapability {
                plugins: network
                    .plugins
                    .iter()
                    .map(NetworkList::plugin_type)
                    .collect::<Vec<_>>()
                    .join(", "),
                origin: network.origin(),
                network: network.name,
                what,
                capability,
                plugin,
            })));
        }
    }
    Ok(Prepared {
        network,
        binaries,
        bin_dirs: settings.bin_dirs.clone(),
    })
}

/// The pod, as the plugins are told of it.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The pod's uid: its CNI container id.
    pub uid: &'a str,
    pub port_mappings: &'a [PortMapping],
    pub bandwidth: Option<Bandwidth>,
    pub annotations: &'a BTreeMap<String, String>,
    pub cgroup_path: &'a Path,
    /// The pod's resolver: nameservers, searches, options.
    pub dns: (&'a [String], &'a [String], &'a [String]),
}

impl Request<'_> {
    /// What each capability a plugin may declare is given, as containerd
    /// fills them (`runtimeConfig`); one with nothing to say is left out.
    fn capability_args(&self) -> Map<String, Value> {
        let mut args = Map::new();
        if !self.port_mappings.is_empty() {
            args.insert(
                "portMappings".to_owned(),
                serde_json::to_value(self.port_mappings).unwrap_or_default(),
            );
        }
        if let Some(b) = self.bandwidth {
            // containerd's burst: as much as a u32 holds.
            let mut shaping = Map::new();
            if let Some(rate) = b.ingress_rate {
                shaping.insert("ingressRate".to_owned(), rate.into());
                shaping.insert("ingressBurst".to_owned(), u32::MAX.into());
            }
            if let Some(rate) = b.egress_rate {
                shaping.insert("egressRate".to_owned(), rate.into());
                shaping.insert("egressBurst".to_owned(), u32::MAX.into());
            }
            args.insert("bandwidth".to_owned(), Value::Object(shaping));
        }
        let (servers, searches, options) = self.dns;
        args.insert(
            "dns".to_owned(),
            serde_json::json!({"servers": servers, "searches": searches, "options": options}),
        );
        args.insert(
            "cgroupPath".to_owned(),
            Value::String(self.cgroup_path.display().to_string()),
        );
        args.insert(
            "io.kubernetes.cri.pod-annotations".to_owned(),
            serde_json::to_value(self.annotations).unwrap_or_default(),
        );
        args
    }
}

/// What ADD was asked and answered: all DEL needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    // Fields that a later podrun may add default, so that a record of
    // this one is still torn down.
    pub network: NetworkList,
    pub binaries: Vec<PathBuf>,
    pub bin_dirs: Vec<PathBuf>,
    pub container_id: String,
    pub netns: PathBuf,
    pub args: String,
    pub pod: String,
    /// The node's network namespace ([`ports::node_id`]).
    #[serde(default)]
    pub node: u64,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// What each capability is given ([`Request::capability_args`]), on
    /// ADD and DEL alike.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The last result a plugin's ADD gave: the whole list's once every
    /// ADD succeeded.
    #[serde(default)]
    pub result: Option<Value>,
}

impl Record {
    /// The pod's addresses, once attached.
    pub fn pod_ips(&self) -> Vec<IpAddr> {
        self.result
            .as_ref()
            .map(result::pod_ips)
            .unwrap_or_default()
    }

    /// `runtimeConfig` for `plugin`: what it declares among the
    /// capabilities podrun fills (libcni gives a plugin no other).
    fn runtime_config(&self, plugin: &Map<String, Value>) -> Map<String, Value> {
        self.capability_args
            .iter()
            .filter(|(name, _)| conf::capability(plugin, name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Plugin `i`'s configuration for a call: its own, the network's name
    /// and version, the previous result, its runtimeConfig.
    fn plugin_config(&self, i: usize, prev: Option<&Value>, command: &str) -> Value {
        let plugin = &self.network.plugins[i];
        let mut c = plugin.clone();
        c.insert("name".to_owned(), Value::String(self.network.name.clone()));
        c.insert(
            "cniVersion".to_owned(),
            Value::String(self.network.cni_version.clone()),
        );
        // libcni gives DEL the cached result from 0.4.0 on only.
        let prev = prev
            .filter(|_| command == "ADD" || conf::at_least(&self.network.cni_version, (0, 4, 0)));
        if let Some(prev) = prev {
            c.insert("prevResult".to_owned(), prev.clone());
        }
        let rc = self.runtime_config(plugin);
        if !rc.is_empty() {
            c.insert("runtimeConfig".to_owned(), Value::Object(rc));
        }
        Value::Object(c)
    }

    fn call(&self, command: &'static str, enter: Option<i32>) -> Call<'_> {
        Call {
            command,
            container_id: &self.container_id,
            netns: &self.netns,
            ifname: IFNAME,
            args: &self.args,
            bin_dirs: &self.bin_dirs,
            enter,
        }
    }

    fn failed(&self, source: PluginError) -> NetworkError {
        NetworkError::Plugin {
            network: self.network.name.clone(),
            origin: self.network.origin(),
            source,
        }
    }

    /// DEL of every plugin, in reverse, each given the ADD's result; the
    /// errors of those that failed (the others still run).
    fn delete(&self, enter: Option<i32>) -> Vec<String> {
        let call = self.call("DEL", enter);
        let mut errors = Vec::new();
        for (i, plugin) in self.network.plugins.iter().enumerate().rev() {
            let kind = NetworkList::plugin_type(plugin);
            let binary = match self.binaries.get(i).filter(|b| b.is_file()) {
                Some(b) => b.clone(),
                None => match plugin::find(kind, &self.bin_dirs) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.push(e.to_string());
                        continue;
                    }
                },
            };
            let config = self.plugin_config(i, self.result.as_ref(), "DEL");
            if let Err(e) = plugin::run(&binary, kind, &call, &config) {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

fn record_file(dir: &Path) -> PathBuf {
    dir.join("record.json")
}

/// Where the node's network namespace is pinned for the pod.
pub fn node_pin(dir: &Path) -> PathBuf {
    dir.join("node-net")
}

fn write_record(dir: &Path, record: &Record) -> Result<(), NetworkError> {
    let path = record_file(dir);
    let tmp = dir.join("record.json.tmp");
    let text = serde_json::to_vec(record).unwrap_or_default();
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// Whether something of the pod is still on the network: a record a
/// teardown has yet to DEL.
pub fn attached(dir: &Path) -> bool {
    record_file(dir).exists()
}

/// The record of the pod whose network directory is `dir`, if it has one.
pub fn record(dir: &Path) -> Result<Option<Record>, NetworkError> {
    let path = record_file(dir);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| NetworkError::BadRecord {
            path,
            reason: e.to_string(),
        })
}

/// Pins the node's network namespace in `dir`.
fn pin_node(dir: &Path) -> Result<(), NetworkError> {
    let pin = node_pin(dir);
    fs::File::create(&pin).map_err(io(&pin))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        &pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| NetworkError::Pin { path: pin, errno })
}

/// Unpins the node's namespace and removes `dir`; what is gone is fine.
fn remove_dir(dir: &Path) -> Result<(), NetworkError> {
    let pin = node_pin(dir);
    if pin.exists() {
        match umount2(&pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(NetworkError::Pin { path: pin, errno }),
        }
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io(dir)(e)),
        _ => Ok(()),
    }
}

/// Every pod's hostPorts under `run_root` but the one in `own`.
fn held_ports(run_root: &Path, own: &Path) -> Vec<(String, u64, Vec<PortMapping>)> {
    fs::read_dir(run_root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("network"))
        .filter(|dir| dir != own)
        // A record that cannot be read says nothing of its ports (its
        // own teardown says why).
        .filter_map(|dir| record(&dir).ok().flatten())
        .filter(|r| !r.port_mappings.is_empty())
        .map(|r| (r.pod, r.node, r.port_mappings))
        .collect()
}

/// Joins the pod whose network namespace is pinned at `netns` to the
/// network: its hostPorts claimed (refused when a pod of this node holds
/// one), then each plugin's ADD. Returns the record, with the pod's
/// addresses. On failure every plugin's DEL has run and nothing of it is
/// left, `dir` included; unless a DEL failed too, which leaves the record
/// (and the pinned node namespace) for the teardown to try again.
pub fn attach(
    prepared: Prepared,
    req: &Request,
    netns: &Path,
    dir: &Path,
    run_root: &Path,
) -> Result<Record, NetworkError> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let attached = pin_node(dir).and_then(|()| add(prepared, req, netns, dir, run_root));
    if attached.is_err() && !record_file(dir).exists() {
        let _ = remove_dir(dir);
    }
    attached
}

fn add(
    prepared: Prepared,
    req: &Request,
    netns: &Path,
    dir: &Path,
    run_root: &Path,
) -> Result<Record, NetworkError> {
    let mut record = Record {
        network: prepared.network,
        binaries: prepared.binaries,
        bin_dirs: prepared.bin_dirs,
        container_id: req.uid.to_owned(),
        netns: netns.to_owned(),
        args: format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            req.namespace, req.name, req.uid, req.uid
        ),
        pod: req.name.to_owned(),
        node: ports::node_id(),
        port_mappings: req.port_mappings.to_vec(),
        capability_args: req.capability_args(),
        result: None,
    };
    // The claim is held until the record that makes it is written, and,
    // on failure, until it is gone again.
    let _claim = if record.port_mappings.is_empty() {
        None
    } else {
        let lock_path = run_root.join(".hostports.lock");
        let claim = ports::lock(&lock_path).map_err(io(&lock_path))?;
        let held = held_ports(run_root, dir);
        if let Some((m, pod)) = ports::first_clash(&record.port_mappings, record.node, &held) {
            return Err(NetworkError::PortTaken {
                port: m.host_port,
                protocol: m.protocol.clone(),
                on: if m.host_ip.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", m.host_ip)
                },
                pod: pod.to_owned(),
            });
        }
        Some(claim)
    };
    write_record(dir, &record)?;
    match add_all(&mut record, dir) {
        Ok(()) => Ok(record),
        Err(e) => {
            // Undone at once, as containerd does; what cannot be undone
            // stays recorded.
            let errors = record.delete(None);
            if errors.is_empty() {
                let path = record_file(dir);
                fs::remove_file(&path).map_err(io(&path))?;
            } else {
                let _ = write_record(dir, &record);
            }
            Err(e)
        }
    }
}

/// Each plugin's ADD in turn, the record keeping the last result as it
/// comes: a supervisor killed in the middle leaves the DEL what the
/// plugins so far made (the firewall's rules are found by the bridge's
/// address).
fn add_all(record: &mut Record, dir: &Path) -> Result<(), NetworkError> {
    for i in 0..record.network.plugins.len() {
        let kind = NetworkList::plugin_type(&record.network.plugins[i]).to_owned();
        let config = record.plugin_config(i, record.result.as_ref(), "ADD");
        let call = record.call("ADD", None);
        let answer = plugin::run(&record.binaries[i], &kind, &call, &config)
            .and_then(|answer| match answer {
                Value::Object(_) if answer.get("cniVersion").is_some() => Ok(answer),
                other => Err(PluginError::BadResult {
                    kind: kind.clone(),
                    reason: format!("ADD must answer a result with a cniVersion, not {other}"),
                }),
            })
            .map_err(|e| record.failed(e))?;
        record.result = Some(answer);
        write_record(dir, record)?;
    }
    // containerd's "failed to find network info for sandbox".
    if record.pod_ips().is_empty() {
        return Err(NetworkError::NoAddress {
            network: record.network.name.clone(),
            origin: record.network.origin(),
        });
    }
    Ok(())
}

/// Whether `pin` is a network namespace (still pinned: once unmounted it
/// is an empty file) other than this process's own.
fn other_namespace(pin: &OwnedFd) -> bool {
    let Ok(here) = fs::metadata("/proc/thread-self/ns/net") else {
        return false;
    };
    match fs::metadata(format!("/proc/self/fd/{}", pin.as_raw_fd())) {
        // Namespaces are the inodes of one filesystem, nsfs.
        Ok(m) => m.dev() == here.dev() && m.ino() != here.ino(),
        Err(_) => false,
    }
}

/// Takes the pod whose network directory is `dir` off its network: every
/// plugin's DEL, in the node namespace the ADD ran in. Repeatable: with no
/// record there is nothing to do; when a DEL fails the record stays, for
/// the next teardown to try again.
pub fn detach(dir: &Path) -> Result<(), NetworkError> {
    let Some(record) = record(dir)? else {
        return remove_dir(dir);
    };
    let pin = fs::File::open(node_pin(dir)).ok().map(OwnedFd::from);
    let enter = pin
        .as_ref()
        .filter(|fd| other_namespace(fd))
        .map(AsRawFd::as_raw_fd);
    let errors = record.delete(enter);
    drop(pin);
    if errors.is_empty() {
        remove_dir(dir)
    } else {
        Err(NetworkError::Teardown {
            network: record.network.name.clone(),
            origin: record.network.origin(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A plugin that writes each call's command and configuration to
    /// `calls/N-TYPE-COMMAND.json` and answers ADD with a result naming
    /// itself (or fails, for `fail`).
    fn plugins(dir: &Path, kinds: &[&str]) {
        fs::create_dir_all(dir.join("calls")).unwrap();
        for kind in kinds {
            let path = dir.join(kind);
            let answer = if *kind == "fail" {
                r#"[ "$CNI_COMMAND" = ADD ] && { echo '{"code":11,"msg":"no IP addresses available"}'; exit 1; }; exit 0"#.to_owned()
            } else if *kind == "quiet" {
                "exit 0".to_owned()
            } else if *kind == "stuck" {
                // Its ADD works; its DEL fails until the flag file is there.
                format!(
                    r#"[ "$CNI_COMMAND" = DEL ] && [ ! -e {flag} ] && {{ echo '{{"code":999,"msg":"busy"}}'; exit 1; }}; [ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.8/24"}}]}}'; exit 0"#,
                    flag = dir.join("unstuck").display()
                )
            } else {
                format!(
                    r#"[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","by":"{kind}","interfaces":[{{"name":"eth0","sandbox":"'$CNI_NETNS'"}}],"ips":[{{"interface":0,"address":"10.9.0.7/24"}}]}}'; exit 0"#
                )
            };
            let script = format!(
                "#!/bin/sh\nn=$(ls {calls} | wc -l)\ncat > {calls}/$(printf %02d $n)-{kind}-$CNI_COMMAND.json\n{answer}\n",
                calls = dir.join("calls").display()
            );
            fs::write(&path, script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn calls(dir: &Path) -> Vec<(String, Value)> {
        let mut names: Vec<_> = fs::read_dir(dir.join("calls"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let config =
                    serde_json::from_slice(&fs::read(dir.join("calls").join(&n)).unwrap()).unwrap();
                (n[3..n.len() - 5].to_owned(), config)
            })
            .collect()
    }

    fn prepared(dir: &Path, kinds: &[&str]) -> Prepared {
        plugins(dir, kinds);
        let plugins: Vec<Value> = kinds
            .iter()
            .map(|k| {
                if *k == "portmap" {
                    serde_json::json!({"type": k, "capabilities": {"portMappings": true}})
                } else {
                    serde_json::json!({"type": k})
                }
            })
            .collect();
        let text = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "plugins": plugins});
        let f = dir.join("n.conflist");
        fs::write(&f, text.to_string()).unwrap();
        let conf = dir.join("conf");
        fs::create_dir_all(&conf).unwrap();
        fs::copy(&f, conf.join("n.conflist")).unwrap();
        prepare(
            &Settings {
                conf_dir: conf,
                bin_dirs: vec![dir.to_owned()],
            },
            &[],
            false,
        )
        .unwrap()
    }

    static NO_ANNOTATIONS: BTreeMap<String, String> = BTreeMap::new();

    fn request(ports: &[PortMapping]) -> Request<'_> {
        Request {
            namespace: "default",
            name: "web",
            uid: "u-1",
            port_mappings: ports,
            bandwidth: None,
            annotations: &NO_ANNOTATIONS,
            cgroup_path: Path::new("/sys/fs/cgroup/podrun/u-1"),
            dns: (&[], &[], &[]),
        }
    }

    /// A directory for plugins, a run root, and pod web's network
    /// directory in it.
    fn scene() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let run = tmp.path().join("run");
        let net = run.join("web/network");
        fs::create_dir_all(&net).unwrap();
        (tmp, bin, run, net)
    }

    /// ADD of a network of fake plugins `kinds`, for a pod without ports.
    fn add_plain(
        bin: &Path,
        run: &Path,
        net: &Path,
        kinds: &[&str],
    ) -> Result<Record, NetworkError> {
        add(
            prepared(bin, kinds),
            &request(&[]),
            Path::new("/ns"),
            net,
            run,
        )
    }

    fn port(n: u16) -> PortMapping {
        PortMapping {
            host_port: n,
            container_port: 80,
            protocol: "tcp".to_owned(),
            host_ip: String::new(),
        }
    }

    #[test]
    fn add_chains_the_results_and_del_runs_in_reverse_with_the_last() {
        let (_tmp, bin, run, net) = scene();
        let ports = [port(8080)];
        let record = add(
            prepared(&bin, &["bridge", "portmap", "firewall"]),
            &request(&ports),
            Path::new("/run/podrun/web/ns/net"),
            &net,
            &run,
        )
        .unwrap();
        assert_eq!(record.pod_ips(), [IpAddr::from([10, 9, 0, 7])]);
        assert_eq!(record.result.as_ref().unwrap()["by"], "firewall");
        let c = calls(&bin);
        let kinds: Vec<&str> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["bridge-ADD", "portmap-ADD", "firewall-ADD"]);
        assert_eq!(c[0].1.get("prevResult"), None);
        assert_eq!(c[1].1["prevResult"]["by"], "bridge");
        assert_eq!(c[2].1["prevResult"]["by"], "portmap");
        // Only the plugin that declares the capability gets the ports.
        assert_eq!(
            c[1].1["runtimeConfig"]["portMappings"],
            serde_json::json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        assert_eq!(c[0].1.get("runtimeConfig"), None);
        // The firewall declares nothing; its prevResult is the portmap's.
        assert_eq!(c[2].1.get("runtimeConfig"), None);
        assert_eq!(
            (c[0].1["name"].as_str(), c[0].1["cniVersion"].as_str()),
            (Some("n"), Some("1.0.0"))
        );
        assert!(record_file(&net).exists());

        detach(&net).unwrap();
        let c = calls(&bin);
        let kinds: Vec<&str> = c[3..].iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["firewall-DEL", "portmap-DEL", "bridge-DEL"]);
        assert!(
            c[3..]
                .iter()
                .all(|(_, conf)| conf["prevResult"]["by"] == "firewall")
        );
        assert!(!net.exists());
        // Again: nothing to do.
        detach(&net).unwrap();
        assert_eq!(calls(&bin).len(), 6);
    }

    #[test]
    fn each_plugin_gets_the_capabilities_it_declares_on_add_and_del() {
        let (_tmp, bin, run, net) = scene();
        let mut p = prepared(&bin, &["bridge", "bandwidth"]);
        p.network.plugins[1] = serde_json::json!({"type": "bandwidth", "capabilities": {"bandwidth": true, "cgroupPath": true, "dns": true, "io.kubernetes.cri.pod-annotations": true, "portMappings": true}})
            .as_object()
            .cloned()
            .unwrap();
        let annotations = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let servers = ["10.0.0.2".to_owned()];
        let req = Request {
            bandwidth: Some(Bandwidth {
                ingress_rate: Some(1_000_000),
                egress_rate: None,
            }),
            annotations: &annotations,
            dns: (&servers, &[], &[]),
            ..request(&[])
        };
        add(p, &req, Path::new("/ns"), &net, &run).unwrap();
        detach(&net).unwrap();
        let c = calls(&bin);
        let expected = serde_json::json!({
            "bandwidth": {"ingressRate": 1_000_000, "ingressBurst": u32::MAX},
            "cgroupPath": "/sys/fs/cgroup/podrun/u-1",
            "dns": {"servers": ["10.0.0.2"], "searches": [], "options": []},
            "io.kubernetes.cri.pod-annotations": {"a": "b"},
        });
        // No port mappings: that capability has nothing to say.
        assert_eq!(c[1].0, "bandwidth-ADD");
        assert_eq!(c[1].1["runtimeConfig"], expected);
        assert_eq!(c[2].0, "bandwidth-DEL");
        assert_eq!(c[2].1["runtimeConfig"], expected);
    }

    #[test]
    fn an_add_that_answers_nothing_fails_and_is_undone() {
        let (_tmp, bin, run, net) = scene();
        let e = add_plain(&bin, &run, &net, &["bridge", "quiet"])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("plugin \"quiet\" answered what is not a CNI result: ADD must answer a result with a cniVersion, not null"), "{e}");
        let kinds: Vec<String> = calls(&bin).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            ["bridge-ADD", "quiet-ADD", "quiet-DEL", "bridge-DEL"]
        );
        assert!(!record_file(&net).exists());
    }

    #[test]
    fn a_del_that_fails_while_undoing_keeps_the_record() {
        let (_tmp, bin, run, net) = scene();
        let e = add_plain(&bin, &run, &net, &["stuck", "fail"]);
        assert!(e.is_err());
        // The DEL still owed is tried again by the teardown, and succeeds
        // once the plugin can.
        assert!(attached(&net));
        assert!(detach(&net).unwrap_err().to_string().contains("busy"));
        fs::write(bin.join("unstuck"), "").unwrap();
        detach(&net).unwrap();
        assert!(!net.exists());
    }

    #[test]
    fn a_corrupt_record_is_named_and_kept() {
        let (_tmp, _bin, _run, net) = scene();
        fs::write(record_file(&net), "{").unwrap();
        let e = detach(&net).unwrap_err().to_string();
        assert!(
            e.contains("record.json: not a network record podrun can tear down from"),
            "{e}"
        );
        assert!(record_file(&net).exists());
    }

    #[test]
    fn a_failed_add_deletes_every_plugin_and_leaves_no_record() {
        let (_tmp, bin, run, net) = scene();
        let e = add_plain(&bin, &run, &net, &["bridge", "fail", "firewall"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("network \"n\" ("), "{e}");
        assert!(
            e.ends_with("): plugin \"fail\" failed: no IP addresses available"),
            "{e}"
        );
        let kinds: Vec<String> = calls(&bin).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                "bridge-ADD",
                "fail-ADD",
                "firewall-DEL",
                "fail-DEL",
                "bridge-DEL"
            ]
        );
    }

    #[test]
    fn a_host_port_held_by_a_pod_of_this_node_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let run = tmp.path().join("run");
        let (first, second) = (run.join("a/network"), run.join("b/network"));
        fs::create_dir_all(&first).unwrap();
        fs::create_dir_all(&second).unwrap();
        let ports = [port(8080)];
        let p = prepared(&bin, &["bridge", "portmap"]);
        add(
            p.clone(),
            &request(&ports),
            Path::new("/ns/a"),
            &first,
            &run,
        )
        .unwrap();
        let e = add(
            p.clone(),
            &request(&ports),
            Path::new("/ns/b"),
            &second,
            &run,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hostPort 8080/tcp is already taken by pod \"web\""
        );
        assert!(!record_file(&second).exists());
        // Another port is free.
        add(
            p,
            &request(&[port(8081)]),
            Path::new("/ns/b"),
            &second,
            &run,
        )
        .unwrap();
    }

    #[test]
    fn a_failed_del_keeps_the_record_for_the_next_teardown() {
        let (_tmp, bin, run, net) = scene();
        add_plain(&bin, &run, &net, &["bridge"]).unwrap();
        fs::remove_file(bin.join("bridge")).unwrap();
        let e = detach(&net).unwrap_err().to_string();
        assert!(
            e.contains("teardown: plugin \"bridge\" not found in"),
            "{e}"
        );
        assert!(record_file(&net).exists());
        plugins(&bin, &["bridge"]);
        detach(&net).unwrap();
        assert!(!net.exists());
    }

    #[test]
    fn a_missing_plugin_or_a_port_without_portmap_is_refused_before_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let p = prepared(tmp.path(), &["bridge"]);
        let settings = Settings {
            conf_dir: tmp.path().join("conf"),
            bin_dirs: vec![tmp.path().join("none")],
        };
        let e = prepare(&settings, &[], false).unwrap_err().to_string();
        assert!(
            e.contains("n.conflist): plugin \"bridge\" not found in"),
            "{e}"
        );
        let settings = Settings {
            bin_dirs: vec![tmp.path().to_owned()],
            ..settings
        };
        let e = prepare(&settings, &[port(80)], false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a hostPort needs a plugin with the portMappings capability (portmap), and none of bridge has it"),
            "{e}"
        );
        let e = prepare(&settings, &[], true).unwrap_err().to_string();
        assert!(
            e.contains("a bandwidth annotation needs a plugin with the bandwidth capability"),
            "{e}"
        );
        assert_eq!(p.network.name, "n");
    }
}
