//! QoS class and `oom_score_adj` (kubelet `qos/policy.go`, `helper/qos`).

use serde::Serialize;

use crate::manifest::{ContainerInfo, ContainerKind, Quantity, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// One container's class from its cpu and memory: requests equal to limits
/// on both → Guaranteed; nothing on either → BestEffort; else Burstable.
fn container_class(r: &Resources) -> QosClass {
    let mut zero = 0;
    for name in ["cpu", "memory"] {
        let request = r.requests.get(name).copied().unwrap_or(Quantity::ZERO);
        let limit = r.limits.get(name).copied().unwrap_or(Quantity::ZERO);
        if request != limit {
            return QosClass::Burstable;
        }
        if limit.is_zero() {
            zero += 1;
        }
    }
    match zero {
        0 => QosClass::Guaranteed,
        2 => QosClass::BestEffort,
        _ => QosClass::Burstable,
    }
}

/// The pod's class: every container (init, sidecar, app) Guaranteed →
/// Guaranteed; every one BestEffort → BestEffort; any mix → Burstable.
pub fn pod_class(containers: &[ContainerInfo]) -> QosClass {
    let mut classes = containers.iter().map(|c| container_class(&c.resources));
    let Some(first) = classes.next() else {
        return QosClass::BestEffort;
    };
    classes.fold(
        first,
        |acc, c| {
            if acc == c { acc } else { QosClass::Burstable }
        },
    )
}

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// `GetContainerOOMScoreAdjust` for one container of the pod.
pub fn oom_score_adj(
    class: QosClass,
    node_critical: bool,
    container: &ContainerInfo,
    containers: &[ContainerInfo],
    node_memory: u64,
) -> i64 {
    // Node-critical pods (priorityClassName system-node-critical) are
    // protected like Guaranteed ones.
    if node_critical {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match class {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = i128::from(node_memory.max(1));
    let by_request = |request: i128| 1000 - (1000 * request) / capacity;
    let mut adj = by_request(memory_request(container));
    // A sidecar is never killed before the apps it serves: cap it at the
    // score of the app with the smallest memory request (zero included).
    if container.kind == ContainerKind::Sidecar
        && let Some(min_app) = containers
            .iter()
            .filter(|c| c.kind == ContainerKind::App)
            .map(memory_request)
            .min()
    {
        adj = adj.min(by_request(min_app));
    }
    let adj = i64::try_from(adj).unwrap_or(i64::MIN);
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        1000 + GUARANTEED_OOM_SCORE_ADJ
    } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        BEST_EFFORT_OOM_SCORE_ADJ - 1
    } else {
        adj
    }
}

fn memory_request(c: &ContainerInfo) -> i128 {
    c.resources
        .requests
        .get("memory")
        .map_or(0, Quantity::value_ceil)
}
