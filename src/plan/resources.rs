//! Effective pod requests and limits: the kubelet's PodRequests/PodLimits
//! with sidecars (component-helpers `resource/helpers.go`), and why each
//! figure is what it is.

use std::collections::BTreeMap;

use crate::manifest::{ContainerInfo, ContainerKind, Quantity, ResourceList};

/// Which side of `max(steady state, init peak)` decided a figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Apps and every sidecar running together.
    Steady {
        apps: Vec<(String, Quantity)>,
        sidecars: Vec<(String, Quantity)>,
    },
    /// A regular init container running beside the sidecars started before it.
    InitPeak {
        init: (String, Quantity),
        sidecars_before: Vec<(String, Quantity)>,
    },
}

/// One resource's effective figure and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub total: Quantity,
    pub source: Source,
    /// `spec.overhead` added on top.
    pub overhead: Option<Quantity>,
}

/// Which list of a container to aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Requests,
    Limits,
}

fn list(c: &ContainerInfo, side: Side) -> &ResourceList {
    match side {
        Side::Requests => &c.resources.requests,
        Side::Limits => &c.resources.limits,
    }
}

/// The aggregate for every resource name any container mentions, overhead
/// included (for limits only on a limit that is set and non-zero).
pub fn aggregate(
    containers: &[ContainerInfo],
    overhead: &ResourceList,
    side: Side,
) -> BTreeMap<String, Figure> {
    let mut names: Vec<&String> = containers
        .iter()
        .flat_map(|c| list(c, side).keys())
        .collect();
    if side == Side::Requests {
        names.extend(overhead.keys());
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let mut figure = resource(containers, name, side);
            if let Some(extra) = overhead.get(name)
                && (side == Side::Requests || !figure.total.is_zero())
            {
                figure.total = figure.total.saturating_add(*extra);
                figure.overhead = Some(*extra);
            }
            (name.clone(), figure)
        })
        .collect()
}

/// SEMANTICS.md's loop for one resource name.
fn resource(containers: &[ContainerInfo], name: &str, side: Side) -> Figure {
    let get = |c: &ContainerInfo| list(c, side).get(name).copied();
    let mut apps = Vec::new();
    let mut sidecars = Vec::new();
    let mut steady = Quantity::ZERO;
    for c in containers.iter().filter(|c| c.kind == ContainerKind::App) {
        if let Some(q) = get(c) {
            steady = steady.saturating_add(q);
            apps.push((c.name.clone(), q));
        }
    }
    let mut sidecars_so_far = Quantity::ZERO;
    let mut peak: Option<(Quantity, Source)> = None;
    for c in containers.iter().filter(|c| c.kind != ContainerKind::App) {
        let own = get(c);
        let at_this_point = match c.kind {
            ContainerKind::Sidecar => {
                if let Some(q) = own {
                    steady = steady.saturating_add(q);
                    sidecars_so_far = sidecars_so_far.saturating_add(q);
                    sidecars.push((c.name.clone(), q));
                }
                // A sidecar's own peak (sidecars so far) never exceeds the
                // steady state, which holds every sidecar.
                None
            }
            _ => {
                let own = own.unwrap_or(Quantity::ZERO);
                Some((
                    own.saturating_add(sidecars_so_far),
                    Source::InitPeak {
                        init: (c.name.clone(), own),
                        sidecars_before: sidecars.clone(),
                    },
                ))
            }
        };
        if let Some((q, source)) = at_this_point
            && peak.as_ref().is_none_or(|(best, _)| q > *best)
        {
            peak = Some((q, source));
        }
    }
    match peak {
        Some((q, source)) if q > steady => Figure {
            total: q,
            source,
            overhead: None,
        },
        _ => Figure {
            total: steady,
            source: Source::Steady { apps, sidecars },
            overhead: None,
        },
    }
}

/// For cpu, memory and every other limited resource: the containers that set
/// no (or a zero) limit on it. The kubelet bounds the pod cgroup by a limit
/// only when no container is missing it.
pub fn unlimited_by<'a>(
    containers: &[ContainerInfo],
    limited: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, Vec<String>> {
    let mut names: Vec<&str> = vec!["cpu", "memory"];
    names.extend(limited.map(String::as_str));
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let missing: Vec<String> = containers
                .iter()
                .filter(|c| c.resources.limits.get(name).is_none_or(Quantity::is_zero))
                .map(|c| c.name.clone())
                .collect();
            (!missing.is_empty()).then(|| (name.to_owned(), missing))
        })
        .collect()
}
