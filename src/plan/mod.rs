//! Pod → plan: effective resources, QoS, the exact cgroup v2 values for the
//! pod and each container, oom_score_adj and start order. Pure: the node's
//! facts come in as arguments.

mod cgroup;
mod qos;
mod report;
mod resources;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::quantity::hugepage_size;
use crate::manifest::{ContainerKind, Pod, Quantity};

pub use cgroup::shares_to_weight;
pub use qos::QosClass;
pub use report::render_text;
pub use resources::{Figure, Source};

/// What the planner needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub memory_bytes: u64,
    pub cpus: u32,
    /// Huge page sizes the kernel offers, in bytes.
    pub hugepage_sizes: Vec<u64>,
}

/// podrun's own settings that shape the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `pids.max` for every pod cgroup (the kubelet's `--pod-max-pids`);
    /// `None` leaves it unlimited.
    pub pod_pids_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub pod: String,
    pub qos_class: QosClass,
    pub effective: Effective,
    pub cgroup: CgroupPlan,
    pub oom_score_adj: BTreeMap<String, i64>,
    pub start_order: Vec<StartEntry>,
    /// Why the pod would not fit this node, as the kubelet's admission says.
    pub admission: Admission,
    #[serde(skip)]
    pub why: Why,
    /// The node it was planned for: its capacity stands for the limits a
    /// container does not set, in the downward API.
    #[serde(skip)]
    pub node: NodeFacts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Effective {
    pub requests: Figures,
    pub limits: Figures,
}

/// cpu and memory as numbers; any other resource by its Kubernetes name.
/// A figure that is not set is `null`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub cpu_millis: Option<u128>,
    pub memory_bytes: Option<u128>,
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// File name → value, for the pod cgroup and each container's.
pub use crate::api::runtime::CgroupFiles;

#[derive(Debug, Clone, Serialize)]
pub struct CgroupPlan {
    pub pod: CgroupFiles,
    pub containers: BTreeMap<String, CgroupFiles>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartEntry {
    pub name: String,
    pub kind: ContainerKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct Admission {
    pub admitted: bool,
    pub reasons: Vec<String>,
}

/// The reasons behind the effective figures, for people.
#[derive(Debug, Clone, Default)]
pub struct Why {
    pub requests: BTreeMap<String, Figure>,
    pub limits: BTreeMap<String, Figure>,
    /// Containers that set no limit, per resource whose pod limit is unset
    /// because of them.
    pub unlimited_by: BTreeMap<String, Vec<String>>,
}

pub fn plan(pod: &Pod, node: &NodeFacts, settings: &Settings) -> Plan {
    let containers = &pod.containers;
    let requests = resources::aggregate(containers, &pod.overhead, resources::Side::Requests);
    let limits = resources::aggregate(containers, &pod.overhead, resources::Side::Limits);
    let qos_class = qos::pod_class(containers);
    let node_critical = pod.spec.priority_class_name.as_deref() == Some("system-node-critical");

    let unlimited_by = resources::unlimited_by(containers, limits.keys());
    // Only a limit every container sets bounds the pod cgroup.
    let declared = |name: &str| !unlimited_by.contains_key(name);
    let total = |figures: &BTreeMap<String, Figure>, name: &str| {
        figures.get(name).map(|f| f.total).unwrap_or(Quantity::ZERO)
    };
    let cpu_request = total(&requests, "cpu").millis_ceil().max(0) as u128;
    let cpu_limit = declared("cpu").then(|| total(&limits, "cpu").millis_ceil().max(0) as u128);
    let memory_limit =
        declared("memory").then(|| total(&limits, "memory").value_ceil().max(0) as u128);

    let mut effective = Effective {
        requests: figures(&requests, |_| true),
        limits: figures(&limits, declared),
    };
    // Requests are always a number: a pod that asks for nothing asks for 0.
    effective.requests.cpu_millis.get_or_insert(0);
    effective.requests.memory_bytes.get_or_insert(0);

    let mut pod_files = CgroupFiles::new();
    let (shares, quota, memory) = match qos_class {
        QosClass::BestEffort => (cgroup::MIN_SHARES, 0, 0),
        QosClass::Guaranteed | QosClass::Burstable => (
            cgroup::milli_cpu_to_shares(cpu_request),
            cpu_limit.map_or(0, cgroup::milli_cpu_to_quota),
            memory_limit.unwrap_or(0),
        ),
    };
    pod_files.insert(
        "cpu.weight".into(),
        cgroup::shares_to_weight(shares).to_string(),
    );
    pod_files.insert("cpu.max".into(), cgroup::cpu_max(quota));
    pod_files.insert("memory.max".into(), cgroup::max_or(memory));
    pod_files.insert(
        "pids.max".into(),
        cgroup::max_or(settings.pod_pids_limit.map_or(0, u128::from)),
    );
    // Pod hugetlb limits come from the pod's requests; every size the node
    // has and the pod does not ask for is closed (0), as the kubelet does.
    let pod_huge = hugepages(&requests.iter().map(|(k, f)| (k.clone(), f.total)).collect());
    insert_hugetlb(&mut pod_files, &node.hugepage_sizes, &pod_huge);

    let mut container_files = BTreeMap::new();
    let mut oom_score_adj = BTreeMap::new();
    for c in containers {
        let r = &c.resources;
        // The kubelet falls back to the limit when the request is absent or 0.
        let cpu_basis = r
            .requests
            .get("cpu")
            .filter(|q| !q.is_zero())
            .or_else(|| r.limits.get("cpu"));
        let shares =
            cgroup::milli_cpu_to_shares(cpu_basis.map_or(0, |q| q.millis_ceil().max(0) as u128));
        let quota = cgroup::milli_cpu_to_quota(
            r.limits
                .get("cpu")
                .map_or(0, |q| q.millis_ceil().max(0) as u128),
        );
        let memory = r
            .limits
            .get("memory")
            .map_or(0, |q| q.value_ceil().max(0) as u128);
        let mut files = CgroupFiles::new();
        files.insert(
            "cpu.weight".into(),
            cgroup::shares_to_weight(shares).to_string(),
        );
        files.insert("cpu.max".into(), cgroup::cpu_max(quota));
        files.insert("memory.max".into(), cgroup::max_or(memory));
        insert_hugetlb(&mut files, &node.hugepage_sizes, &hugepages(&r.limits));
        container_files.insert(c.name.clone(), files);
        oom_score_adj.insert(
            c.name.clone(),
            qos::oom_score_adj(qos_class, node_critical, c, containers, node.memory_bytes),
        );
    }

    let start_order = containers
        .iter()
        .map(|c| StartEntry {
            name: c.name.clone(),
            kind: c.kind,
        })
        .collect();

    let admission = admission(&effective.requests, node);
    Plan {
        pod: pod.name.clone(),
        qos_class,
        effective,
        cgroup: CgroupPlan {
            pod: pod_files,
            containers: container_files,
        },
        oom_score_adj,
        start_order,
        admission,
        why: Why {
            requests,
            limits,
            unlimited_by,
        },
        node: node.clone(),
    }
}

fn figures(list: &BTreeMap<String, Figure>, include: impl Fn(&str) -> bool) -> Figures {
    let mut out = Figures::default();
    for (name, figure) in list {
        if !include(name) {
            continue;
        }
        match name.as_str() {
            "cpu" => out.cpu_millis = Some(figure.total.millis_ceil().max(0) as u128),
            "memory" => out.memory_bytes = Some(figure.total.value_ceil().max(0) as u128),
            _ => {
                out.other.insert(name.clone(), figure.total.to_string());
            }
        }
    }
    out
}

/// `hugepages-<size>` entries → page size in bytes → bytes asked for.
fn hugepages(list: &BTreeMap<String, Quantity>) -> BTreeMap<u64, u128> {
    list.iter()
        .filter_map(|(name, q)| {
            let size = hugepage_size(name)?;
            let size = u64::try_from(size.value_ceil()).ok()?;
            Some((size, q.value_ceil().max(0) as u128))
        })
        .collect()
}

fn insert_hugetlb(files: &mut CgroupFiles, sizes: &[u64], asked: &BTreeMap<u64, u128>) {
    for size in sizes {
        files.insert(
            format!("hugetlb.{}.max", cgroup::hugetlb_size_name(*size)),
            asked.get(size).copied().unwrap_or(0).to_string(),
        );
    }
}

/// The kubelet refuses a pod whose requests exceed the node's capacity
/// (`OutOfcpu`, `OutOfmemory`).
fn admission(requests: &Figures, node: &NodeFacts) -> Admission {
    let mut reasons = Vec::new();
    let cpu_capacity = u128::from(node.cpus) * 1000;
    if let Some(cpu) = requests.cpu_millis
        && cpu > cpu_capacity
    {
        reasons.push(format!(
            "OutOfcpu: the pod requests {cpu}m cpu but this node has {cpu_capacity}m"
        ));
    }
    if let Some(memory) = requests.memory_bytes
        && memory > u128::from(node.memory_bytes)
    {
        reasons.push(format!(
            "OutOfmemory: the pod requests {memory} bytes of memory but this node has {}",
            node.memory_bytes
        ));
    }
    Admission {
        admitted: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests;
