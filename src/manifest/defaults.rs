//! The API server's defaulting (`pkg/apis/core/v1/defaults.go`) for the
//! fields podrun acts on, applied before validation as the API server does.

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, ObjectFieldSelector, PodSpec, Probe, Volume,
};

use super::quantity::Quantity;

/// Go's API types hold these fields as plain values, so an explicit `""` or
/// `0` is indistinguishable from an absent field and gets the default too.
fn text(field: &mut Option<String>, default: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(default.to_owned());
    }
}

fn number(field: &mut Option<i32>, default: i32) {
    if field.is_none_or(|n| n == 0) {
        *field = Some(default);
    }
}

/// The API server's defaults, for what is compiled from them.
pub const GRACE_SECONDS: i64 = 30;
pub const PROBE_TIMEOUT_SECONDS: i32 = 1;
pub const PROBE_PERIOD_SECONDS: i32 = 10;
pub const PROBE_SUCCESS_THRESHOLD: i32 = 1;
pub const PROBE_FAILURE_THRESHOLD: i32 = 3;
/// The mode of a configMap's, secret's, downwardAPI's or projected
/// volume's files (`defaultMode`).
pub const VOLUME_FILE_MODE: i32 = 0o644;
/// A projected service account token's `expirationSeconds`.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

pub fn apply(spec: &mut PodSpec) {
    text(&mut spec.restart_policy, "Always");
    spec.termination_grace_period_seconds
        .get_or_insert(GRACE_SECONDS);
    text(&mut spec.dns_policy, "ClusterFirst");
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
        volume_files(v);
    }
}

/// The file modes of configMap, secret, downwardAPI and projected volumes
/// and the downward API's `apiVersion` (pointers in Go: only an absent
/// field is defaulted).
fn volume_files(v: &mut Volume) {
    if let Some(s) = v.config_map.as_mut() {
        s.default_mode.get_or_insert(VOLUME_FILE_MODE);
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(VOLUME_FILE_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        s.default_mode.get_or_insert(VOLUME_FILE_MODE);
        downward_items(s.items.as_mut());
    }
    if let Some(s) = v.projected.as_mut() {
        s.default_mode.get_or_insert(VOLUME_FILE_MODE);
        for source in s.sources.iter_mut().flatten() {
            if let Some(d) = source.downward_api.as_mut() {
                downward_items(d.items.as_mut());
            }
            if let Some(t) = source.service_account_token.as_mut() {
                t.expiration_seconds.get_or_insert(TOKEN_EXPIRATION_SECONDS);
            }
        }
    }
}

fn downward_items(items: Option<&mut Vec<DownwardAPIVolumeFile>>) {
    for item in items.into_iter().flatten() {
        if let Some(r) = item.field_ref.as_mut() {
            field_selector(r);
        }
    }
}

fn field_selector(r: &mut ObjectFieldSelector) {
    text(&mut r.api_version, "v1");
}

fn container(c: &mut Container) {
    let pull = match c.image.as_deref() {
        Some(image) if !image_is_latest(image) => "IfNotPresent",
        _ => "Always",
    };
    text(&mut c.image_pull_policy, pull);
    text(&mut c.termination_message_path, "/dev/termination-log");
    text(&mut c.termination_message_policy, "File");
    for e in c.env.iter_mut().flatten() {
        if let Some(r) = e.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            field_selector(r);
        }
    }
    for p in c.ports.iter_mut().flatten() {
        text(&mut p.protocol, "TCP");
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
    // A limit without a request means request = limit. A limit that does
    // not parse is reported once, at the limit, and not copied.
    if let Some(r) = c.resources.as_mut()
        && let Some(limits) = r.limits.as_ref()
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            if Quantity::parse(&q.0).is_ok() {
                requests.entry(name.clone()).or_insert_with(|| q.clone());
            }
        }
    }
}

fn probe_defaults(p: &mut Probe) {
    number(&mut p.timeout_seconds, PROBE_TIMEOUT_SECONDS);
    number(&mut p.period_seconds, PROBE_PERIOD_SECONDS);
    number(&mut p.success_threshold, PROBE_SUCCESS_THRESHOLD);
    number(&mut p.failure_threshold, PROBE_FAILURE_THRESHOLD);
    if let Some(http) = p.http_get.as_mut() {
        text(&mut http.path, "/");
        text(&mut http.scheme, "HTTP");
    }
}

/// `image` with no tag, or the tag `latest`, and no digest: the API server
/// then defaults imagePullPolicy to Always.
pub fn image_is_latest(image: &str) -> bool {
    // As parsers.ParseImageName: the tag is `latest` when written so, or
    // when neither a tag nor a digest is.
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
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
        // A digest beside the tag leaves the tag to decide.
        assert!(image_is_latest("busybox:latest@sha256:abcd"));
        assert!(!image_is_latest("localhost:5000/busybox:1.36@sha256:abcd"));
    }
}
