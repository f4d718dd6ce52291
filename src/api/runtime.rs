//! The runtime API's messages: what the kubelet half (the compiled pod,
//! `pod`) gives the runtime half (`runtime`) to make a pod's
//! sandbox and its containers and to check them. They follow the CRI's
//! `PodSandboxConfig` and `ContainerConfig`, with what podrun's runtime
//! does beyond containerd's: it makes the pod's volumes and its `/etc`
//! files, and runs probe and hook checks in the pod's namespaces. Shared by
//! both halves, as the CRI's api.proto is by the kubelet and containerd;
//! nothing here knows of init containers, sidecars or restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// runc's PATH when the container's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `rootfs:...`: a root podrun takes as it is, not an image of the store.
pub fn is_rootfs(image: &str) -> bool {
    image.starts_with("rootfs:")
}

/// A `rootfs:` image that is not `rootfs:/` or `rootfs:/ABSOLUTE/DIR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image {0:?}: a rootfs image is rootfs:/ or rootfs:/ABSOLUTE/DIR")]
pub struct RootfsFormError(pub String);

/// The directory a `rootfs:` image names (`/` for the host's root).
pub fn rootfs_dir(image: &str) -> Result<&str, RootfsFormError> {
    match image.strip_prefix("rootfs:") {
        Some(dir) if dir.starts_with('/') => Ok(dir),
        _ => Err(RootfsFormError(image.to_owned())),
    }
}

/// cgroup v2 file name → value.
pub type CgroupFiles = BTreeMap<String, String>;

/// What a pod's sandbox is made of (CRI's `PodSandboxConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pod's hostname (its UTS namespace's, and `/etc/hostname`).
    pub hostname: String,
    /// This machine's name: a hostNetwork pod's `/etc/hostname`.
    pub node_name: String,
    pub namespaces: NamespaceOptions,
    pub dns: DnsConfig,
    pub hosts: HostsConfig,
    pub volumes: Vec<Volume>,
    /// The pod cgroup's values.
    pub cgroup: CgroupFiles,
    /// The containers' `hostPort`s (none with `hostNetwork`, whose ports
    /// are the node's already).
    pub port_mappings: Vec<PortMapping>,
    /// The `kubernetes.io/{ingress,egress}-bandwidth` annotations' limits.
    pub bandwidth: Option<Bandwidth>,
    /// The pod's annotations (CNI's `io.kubernetes.cri.pod-annotations`).
    pub annotations: BTreeMap<String, String>,
}

/// A pod's traffic shaping, in bits per second (CNI's `bandwidth`
/// capability: each rate with containerd's burst).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub ingress_rate: Option<u64>,
    pub egress_rate: Option<u64>,
}

/// A `hostPort` the pod publishes on the node (CRI's `PortMapping`),
/// shaped as CNI's `portMappings` capability takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Where on the node; empty for every address.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// Which of the host's namespaces the pod uses instead of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceOptions {
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// One PID namespace for the whole pod (`shareProcessNamespace`).
    pub share_pid: bool,
}

/// The pod's resolver configuration, before the host's is merged in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Start from the host's resolv.conf (every `dnsPolicy` but `None`).
    pub from_host: bool,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `(name, value)`: `name` or `name:value` in the file.
    pub options: Vec<(String, Option<String>)>,
}

/// What the pod's `/etc/hosts` adds to the kubelet's managed entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsConfig {
    pub subdomain: Option<String>,
    /// `hostAliases`: an address and its names.
    pub aliases: Vec<(String, Vec<String>)>,
}

/// A volume of the pod, made by the runtime with the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// With `memory`, a tmpfs of at most `size_limit` bytes (the kernel's
    /// default when `None`).
    /// With `fs_group` (the pod's `fsGroup`), the directory is that
    /// group's, setgid, as the kubelet's SetVolumeOwnership leaves it.
    EmptyDir {
        memory: bool,
        size_limit: Option<u64>,
        fs_group: Option<i64>,
    },
    /// `kind` is the hostPath `type` (`""` checks nothing).
    HostPath { path: PathBuf, kind: String },
    /// A configMap, secret, downwardAPI or projected volume: files the
    /// runtime writes as the kubelet's atomic writer does (the payload in
    /// a timestamped `..YYYY_MM_DD_HH_MM_SS.N` directory, `..data` a link
    /// to it, each top-level name a link into `..data`). Mounted
    /// read-only, whatever the mount says, as the kubelet mounts them.
    Projected {
        files: Vec<ProjectedFile>,
        /// On a tmpfs (secret, downwardAPI and projected volumes, as the
        /// kubelet makes them; a configMap's is on disk).
        memory: bool,
        /// The pod's `fsGroup`: the files' group, readable by it.
        fs_group: Option<i64>,
    },
}

/// A projected file's path as the kubelet's atomic writer takes it (its
/// `validatePath`), cleaned of empty and `.` elements: relative, at most
/// 4096 bytes, no `..` element, names of at most 255 bytes, not starting
/// with `..` (checked after cleaning: `./..data` is as reserved as
/// `..data`). `Err` says why not.
pub fn projected_path(path: &str) -> Result<String, &'static str> {
    if path.starts_with('/') {
        return Err("must be a relative path");
    }
    if path.len() > 4096 {
        return Err("must be less than or equal to 4096 characters");
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("must not contain '..'");
    }
    if parts.iter().any(|p| p.len() > 255) {
        return Err("filenames must be less than or equal to 255 characters");
    }
    match parts.first() {
        None => Err("must not be empty"),
        Some(first) if first.starts_with("..") => Err("must not start with '..'"),
        Some(_) => Ok(parts.join("/")),
    }
}

/// One file of a projected volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectedFile {
    /// Relative, as [`projected_path`] leaves it.
    pub path: String,
    /// Permission bits (0..=0o777).
    pub mode: u32,
    pub data: Vec<u8>,
}

/// How a mount follows mounts made later on the host (Kubernetes'
/// `mountPropagation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub container_path: String,
    /// `subPath`, or `subPathExpr` already expanded.
    pub sub_path: Option<String>,
    pub read_only: bool,
    pub propagation: Propagation,
}

/// A container's identity and privileges (CRI's
/// `LinuxContainerSecurityContext`), the pod's and the container's
/// settings already merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    /// The pod's `supplementalGroups`, then its `fsGroup`.
    pub supplemental_groups: Vec<i64>,
    /// `supplementalGroupsPolicy: Strict`: only those, not also the groups
    /// the image's `/etc/group` gives the user (`Merge`, the default).
    pub strict_groups: bool,
    pub privileged: bool,
    pub no_new_privs: bool,
    pub read_only_root: bool,
    /// Capability names as the manifest gives them (`NET_ADMIN`, `ALL`).
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
}

/// One container (CRI's `ContainerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    /// An image of the store, or `rootfs:/` / `rootfs:DIR`.
    pub image: String,
    /// `command` and `args` with `$(VAR)` expanded; the image's Entrypoint
    /// and Cmd fill in where they are empty, as containerd does.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// The environment: PATH and HOSTNAME, then the container's own, in
    /// order, resolved.
    pub env: Vec<(String, String)>,
    /// The names the container sets itself: the image's environment does
    /// not replace them (it replaces the defaults and adds the rest).
    pub own_env: BTreeSet<String>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub security: Security,
    /// The container cgroup's values.
    pub cgroup: CgroupFiles,
    pub oom_score_adj: i64,
}

/// What a probe or a hook checks, run by the runtime in the pod's
/// namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// A command run inside the container.
    Exec(Vec<String>),
    /// An HTTP GET (HTTPS when `tls`); success is a status in 200..=399.
    /// A network check's `host` is the pod's own IP when it is `None`, as
    /// the kubelet calls the pod's `status.podIP`.
    Http {
        tls: bool,
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens.
    Tcp { host: Option<String>, port: u16 },
    /// A grpc.health.v1.Health/Check call answered SERVING.
    Grpc {
        host: Option<String>,
        port: u16,
        service: String,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// As a shell reports it: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(sig) => 128i32.saturating_add(sig),
        }
    }
}
