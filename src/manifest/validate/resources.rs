//! Resource requirements: names, quantities, requests ≤ limits, and the
//! rules for resources that cannot be overcommitted (hugepages, extended).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{invalid_each, names};
use crate::manifest::field::{FieldError, FieldPath};
use crate::manifest::quantity::{Quantity, QuantityError, hugepage_size};

type List = BTreeMap<String, ApiQuantity>;

/// Parses every entry of a list, reporting those that do not parse or are
/// negative; returns the ones that do.
pub fn parse_list(
    list: Option<&List>,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, (Quantity, String)> {
    let mut out = BTreeMap::new();
    for (name, raw) in list.into_iter().flatten() {
        let entry_path = path.key(name);
        match Quantity::parse(&raw.0) {
            Ok(q) if q.is_negative() => errors.push(FieldError::invalid(
                &entry_path,
                &raw.0,
                "must be greater than or equal to 0",
            )),
            Ok(q) => {
                out.insert(name.clone(), (q, raw.0.clone()));
            }
            Err(e @ (QuantityError::Format | QuantityError::TooLarge)) => {
                errors.push(FieldError::invalid(&entry_path, &raw.0, e.to_string()))
            }
        }
    }
    out
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests.")
}

/// Standard Kubernetes resource names that are not container resources.
const STANDARD_NOT_FOR_CONTAINERS: &[&str] = &[
    "storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resource names a container may ask for.
fn name(name: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if name.contains('/') {
        invalid_each(errors, path, name, names::qualified_name(name));
        if name.starts_with("kubernetes.io/") {
            errors.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
        return;
    }
    match name {
        "cpu" | "memory" | "ephemeral-storage" => {}
        _ if is_hugepages(name) => {
            if hugepage_size(name).is_none() {
                errors.push(FieldError::invalid(
                    path,
                    name,
                    "must be a standard resource for containers",
                ));
            }
        }
        _ => {
            if !STANDARD_NOT_FOR_CONTAINERS.contains(&name) {
                errors.push(FieldError::invalid(
                    path,
                    name,
                    "must be a standard resource type or fully qualified",
                ));
            }
            errors.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    }
}

pub fn container(r: Option<&ResourceRequirements>, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let Some(r) = r else {
        return;
    };
    let limits_path = path.child("limits");
    let requests_path = path.child("requests");
    for n in r.limits.iter().flatten().map(|(k, _)| k) {
        name(n, &limits_path.key(n), errors);
    }
    for n in r.requests.iter().flatten().map(|(k, _)| k) {
        name(n, &requests_path.key(n), errors);
    }
    let limits = parse_list(r.limits.as_ref(), &limits_path, errors);
    let requests = parse_list(r.requests.as_ref(), &requests_path, errors);

    let sides = [(&limits, &limits_path), (&requests, &requests_path)];
    for (list, side_path) in sides {
        for (n, (q, raw)) in list {
            let entry_path = side_path.key(n);
            if is_extended(n) && !q.is_integer() {
                errors.push(FieldError::invalid(&entry_path, raw, "must be an integer"));
            }
            if is_hugepages(n)
                && let Some(size) = hugepage_size(n)
                && size.value_ceil() > 0
                && (q.value_ceil() % size.value_ceil() != 0 || !q.is_integer())
            {
                errors.push(FieldError::invalid(
                    &entry_path,
                    raw,
                    format!("{raw} is not positive integer multiple of {n}"),
                ));
            }
        }
    }
    for (n, (request, raw)) in &requests {
        let overcommittable = !is_hugepages(n) && !is_extended(n);
        match limits.get(n) {
            Some((limit, limit_raw)) if overcommittable && request > limit => {
                errors.push(FieldError::invalid(
                    &requests_path,
                    raw,
                    format!("must be less than or equal to {n} limit of {limit_raw}"),
                ))
            }
            Some((limit, limit_raw)) if !overcommittable && request != limit => {
                errors.push(FieldError::invalid(
                    &requests_path,
                    raw,
                    format!("must be equal to {n} limit of {limit_raw}"),
                ))
            }
            None if !overcommittable => errors.push(FieldError::required_because(
                &limits_path,
                "Limit must be set for non overcommitable resources",
            )),
            _ => {}
        }
    }
    let has_hugepages = limits
        .keys()
        .chain(requests.keys())
        .any(|n| is_hugepages(n));
    let has_cpu_or_memory = limits
        .keys()
        .chain(requests.keys())
        .any(|n| n == "cpu" || n == "memory");
    if has_hugepages && !has_cpu_or_memory {
        errors.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        errors.push(FieldError::forbidden(
            &path.child("claims"),
            "dynamic resource claims are not supported by podrun",
        ));
    }
}

/// `spec.overhead`: names and non-negative quantities.
pub fn overhead(list: Option<&List>, path: &FieldPath, errors: &mut Vec<FieldError>) {
    for n in list.iter().flat_map(|l| l.keys()) {
        name(n, &path.key(n), errors);
    }
    parse_list(list, path, errors);
}
