//! The API server's defaulting (`pkg/apis/core/v1/defaults.go`) for the
//! fields podrun acts on, applied before validation as the API server does.

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};

pub fn apply(spec: &mut PodSpec) {
    spec.restart_policy
        .get_or_insert_with(|| "Always".to_owned());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy
        .get_or_insert_with(|| "ClusterFirst".to_owned());
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        // A volume that names no source is an emptyDir.
        if serde_json::to_value(&*v).is_ok_and(|j| j.as_object().is_some_and(|o| o.len() == 1)) {
            v.empty_dir = Some(Default::default());
        }
        if let Some(host_path) = v.host_path.as_mut() {
            host_path.type_.get_or_insert_with(String::new);
        }
    }
}

fn container(c: &mut Container) {
    if c.image_pull_policy.is_none() {
        let policy = match c.image.as_deref() {
            Some(image) if !image_is_latest(image) => "IfNotPresent",
            _ => "Always",
        };
        c.image_pull_policy = Some(policy.to_owned());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".to_owned());
    c.termination_message_policy
        .get_or_insert_with(|| "File".to_owned());
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".to_owned());
    }
    for probe in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        probe_defaults(probe);
    }
    // A limit without a request means request = limit.
    if let Some(r) = c.resources.as_mut()
        && let Some(limits) = r.limits.as_ref()
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            requests.entry(name.clone()).or_insert_with(|| q.clone());
        }
    }
}

fn probe_defaults(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(http) = p.http_get.as_mut() {
        http.path.get_or_insert_with(|| "/".to_owned());
        http.scheme.get_or_insert_with(|| "HTTP".to_owned());
    }
}

/// `image` with no tag, or the tag `latest`, and no digest: the API server
/// then defaults imagePullPolicy to Always.
pub fn image_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_tag_detection() {
        assert!(image_is_latest("busybox"));
        assert!(image_is_latest("busybox:latest"));
        assert!(image_is_latest("localhost:5000/busybox"));
        assert!(!image_is_latest("localhost:5000/busybox:1.36"));
        assert!(!image_is_latest("busybox:1.36"));
        assert!(!image_is_latest("busybox@sha256:abcd"));
    }
}
