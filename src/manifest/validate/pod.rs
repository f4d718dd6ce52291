//! The pod spec as a whole: containers and their names, pod-level fields.

use std::collections::BTreeSet;

use super::container::{self, PodContext};
use super::{invalid_each, names, resources, volumes};
use crate::manifest::field::{FieldError, FieldPath};
use crate::manifest::model::{ContainerKind, Pod};

pub fn validate(pod: &Pod, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let spec = &pod.spec;
    let volumes = volumes::validate(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
        errors,
    );
    let grace = spec
        .termination_grace_period_seconds
        .unwrap_or(crate::manifest::defaults::GRACE_SECONDS);
    let os_name = spec.os.as_ref().map(|os| os.name.as_str());
    let ctx = PodContext {
        volumes: &volumes,
        grace_period: grace,
        host_network: spec.host_network.unwrap_or(false),
        os_name,
    };

    if spec.containers.is_empty() {
        errors.push(FieldError::required(&path.child("containers")));
    }
    let mut seen = BTreeSet::new();
    let mut check_unique = |name: &str, name_path: FieldPath, errors: &mut Vec<FieldError>| {
        if !name.is_empty() && !seen.insert(name.to_owned()) {
            errors.push(FieldError::duplicate(&name_path, name));
        }
    };
    // Init containers first: the API server reports a regular container that
    // reuses an init container's name at the regular container.
    for (i, c) in pod.init_containers().iter().enumerate() {
        let c_path = path.child("initContainers").index(i);
        container::validate(c, ContainerKind::of_init(c), &c_path, &ctx, errors);
        check_unique(&c.name, c_path.child("name"), errors);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let c_path = path.child("containers").index(i);
        container::validate(c, ContainerKind::App, &c_path, &ctx, errors);
        check_unique(&c.name, c_path.child("name"), errors);
    }
    host_ports(pod, path, errors);

    if let Some(policy) = spec.restart_policy.as_deref()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        errors.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if grace < 0 {
        errors.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            grace,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=2_147_483_647).contains(&deadline)
    {
        errors.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    dns(pod, path, errors);
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            invalid_each(errors, &path.child(field), v, names::dns1123_label(v));
        }
    }
    if let Some(o) = spec.hostname_override.as_deref() {
        // The API server's checks of the HostnameOverride feature.
        let o_path = path.child("hostnameOverride");
        if o.len() > 64 {
            errors.push(FieldError::too_long(&o_path, 64));
        }
        invalid_each(errors, &o_path, o, names::dns1123_subdomain(o));
        if spec.set_hostname_as_fqdn == Some(true) {
            errors.push(FieldError::invalid(
                &o_path,
                o,
                "Cannot set both `spec.setHostnameAsFQDN` and `spec.hostnameOverride`",
            ));
        }
        if spec.host_network == Some(true) {
            errors.push(FieldError::invalid(
                &o_path,
                o,
                "Cannot set `spec.hostnameOverride` when `spec.hostNetwork` is true",
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errors.push(FieldError::invalid(
            &path.child("securityContext").child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(sc) = &spec.security_context {
        let sc_path = path.child("securityContext");
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            container::id_range(id, &sc_path.child(field), errors);
        }
        for (i, gid) in sc.supplemental_groups.iter().flatten().enumerate() {
            container::id_range(
                Some(*gid),
                &sc_path.child("supplementalGroups").index(i),
                errors,
            );
        }
        if let Some(profile) = &sc.seccomp_profile {
            container::seccomp(profile, &sc_path.child("seccompProfile"), errors);
        }
    }
    if let Some(os) = &spec.os {
        match os.name.as_str() {
            "" => errors.push(FieldError::required_because(
                &path.child("os").child("name"),
                "cannot be empty",
            )),
            "linux" => {}
            "windows" => errors.push(FieldError::forbidden(
                &path.child("os").child("name"),
                "podrun runs Linux containers only",
            )),
            other => errors.push(FieldError::not_supported(
                &path.child("os"),
                other,
                &["linux", "windows"],
            )),
        }
    }
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errors.push(FieldError::forbidden(
            &path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if spec.resources.is_some() {
        errors.push(FieldError::forbidden(
            &path.child("resources"),
            "pod-level resources are not supported by podrun yet: set resources per container",
        ));
    }
    resources::overhead(spec.overhead.as_ref(), &path.child("overhead"), errors);
    scheduling(pod, path, errors);
}

/// Fields only a scheduler acts on: podrun checks them as the API server
/// does, so a manifest it accepts is one a cluster accepts too.
fn scheduling(pod: &Pod, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let spec = &pod.spec;
    let selector_path = path.child("nodeSelector");
    for (key, value) in spec.node_selector.iter().flatten() {
        invalid_each(errors, &selector_path, key, names::qualified_name(key));
        invalid_each(errors, &selector_path, value, names::label_value(value));
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let t_path = path.child("tolerations").index(i);
        let key = t.key.as_deref().unwrap_or_default();
        if !key.is_empty() {
            invalid_each(
                errors,
                &t_path.child("key"),
                key,
                names::qualified_name(key),
            );
        }
        let operator = t.operator.as_deref().unwrap_or_default();
        match operator {
            "" | "Equal" => {
                if key.is_empty() {
                    errors.push(FieldError::invalid(
                        &t_path.child("operator"),
                        operator,
                        "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                    ));
                }
            }
            "Exists" => {
                if let Some(value) = t.value.as_deref().filter(|v| !v.is_empty()) {
                    errors.push(FieldError::invalid(
                        &t_path.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errors.push(FieldError::not_supported(
                &t_path.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if let Some(effect) = t.effect.as_deref()
            && !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errors.push(FieldError::not_supported(
                &t_path.child("effect"),
                effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
    if let Some(sc) = &spec.security_context {
        for (i, sysctl) in sc.sysctls.iter().flatten().enumerate() {
            if !names::sysctl_name(&sysctl.name) {
                errors.push(FieldError::invalid(
                    &path
                        .child("securityContext")
                        .child("sysctls")
                        .index(i)
                        .child("name"),
                    &sysctl.name,
                    format!(
                        "must have at most 253 characters and match regex {}",
                        names::SYSCTL_REGEX
                    ),
                ));
            }
        }
    }
}

fn dns(pod: &Pod, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let spec = &pod.spec;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    match policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" => {}
        "None" => match &spec.dns_config {
            None => errors.push(FieldError::required_because(
                &path.child("dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                errors.push(FieldError::required_because(
                    &path.child("dnsConfig").child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ))
            }
            Some(_) => {}
        },
        other => errors.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if let Some(c) = &spec.dns_config {
        for (i, ns) in c.nameservers.iter().flatten().enumerate() {
            if ns.parse::<std::net::IpAddr>().is_err() {
                errors.push(FieldError::invalid(
                    &path.child("dnsConfig").child("nameservers").index(i),
                    ns,
                    "must be a valid IP address",
                ));
            }
        }
    }
}

/// Two containers of the pod cannot bind the same host port.
fn host_ports(pod: &Pod, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, c) in pod.spec.containers.iter().enumerate() {
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let Some(host_port) = p.host_port.filter(|hp| *hp != 0) else {
                continue;
            };
            let key = format!(
                "{}/{}/{}",
                p.protocol.as_deref().unwrap_or("TCP"),
                p.host_ip.as_deref().unwrap_or_default(),
                host_port
            );
            if !seen.insert(key.clone()) {
                errors.push(FieldError::duplicate(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    key,
                ));
            }
        }
    }
}
