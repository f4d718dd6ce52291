//! ConfigMap, Secret and downward API data as the kubelet projects it:
//! the files of configMap, secret, downwardAPI and projected volumes
//! (`pkg/volume/{configmap,secret,downwardapi,projected}` and the atomic
//! writer's path rules), and the downward API's values (`pkg/fieldpath`,
//! `pkg/api/v1/resource`), which the environment shares. Pure: the
//! ConfigMaps and Secrets are those given with the pod, the node's
//! capacity comes from the plan.
//!
//! podrun has no API server through which a missing ConfigMap or Secret
//! could appear later, so what the kubelet would retry for ever (a
//! volume that cannot be set up) is refused here, once, with the reason.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, ResourceFieldSelector, Volume as ApiVolume, VolumeProjection,
};

use crate::api::runtime::{ProjectedFile, VolumeSource};
use crate::manifest::{ContainerInfo, Objects, Pod, Quantity, defaults};
use crate::plan::NodeFacts;

/// What the pod's volumes and environment may read besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct Given<'a> {
    /// The ConfigMaps and Secrets given with the pod.
    pub objects: &'a Objects,
    /// The node, whose capacity stands for a limit a container does not
    /// set; `None` where it is not known.
    pub node: Option<&'a NodeFacts>,
}

static NO_OBJECTS: LazyLock<Objects> = LazyLock::new(Objects::default);

impl Given<'static> {
    /// No ConfigMaps, no Secrets, no node.
    pub fn nothing() -> Given<'static> {
        Given {
            objects: &NO_OBJECTS,
            node: None,
        }
    }
}

/// A downward API value that cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardError {
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("fieldPath {0:?} does not support subscript")]
    Subscript(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("unsupported container resource: {0}")]
    Resource(String),
    #[error("divisor {0:?} is not a quantity of whole thousandths")]
    Divisor(String),
    /// A limit the kubelet would take from the node's allocatable, which
    /// podrun does not know.
    #[error(
        "{resource} of container {container:?}: it sets no limit, and podrun does not know this node's {what} to stand for it"
    )]
    NodeUnknown {
        resource: String,
        container: String,
        what: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error(
        "configmap {name:?} not found: give it in the manifest's file or with --configmap FILE"
    )]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found: give it in the manifest's file or with --secret FILE")]
    SecretNotFound { name: String },
    #[error("configmap {name:?} references non-existent config key: {key}")]
    ConfigMapKey { name: String, key: String },
    #[error("secret {name:?} references non-existent secret key: {key}")]
    SecretKey { name: String, key: String },
    #[error("sources[{index}].{kind}: podrun has no API server to {why}")]
    Unissuable {
        index: usize,
        kind: &'static str,
        why: &'static str,
    },
    #[error("{path:?}: {source}")]
    Downward { path: String, source: DownwardError },
    #[error("{path:?}: mode {mode} is not between 0 and 0777 (octal)")]
    Mode { path: String, mode: i32 },
    #[error("invalid path {path:?}: {reason}")]
    Path { path: String, reason: String },
}

/// The files of a configMap, secret, downwardAPI or projected volume, on
/// the medium the kubelet gives it; `None` for any other kind of volume.
pub fn volume_source(
    v: &ApiVolume,
    pod: &Pod,
    uid: &str,
    given: &Given,
) -> Option<Result<VolumeSource, ProjectionError>> {
    let fs_group = pod.spec.security_context.as_ref().and_then(|s| s.fs_group);
    let mut files = Files::default();
    // The kubelet wraps a configMap volume in a disk emptyDir, and the
    // others (secrets, downward API, projections) in a Memory one. A
    // defaultMode not defaulted (as a test's may not be) is the API
    // server's default.
    let (done, memory) = if let Some(s) = &v.config_map {
        let mode = s.default_mode.unwrap_or(defaults::VOLUME_FILE_MODE);
        let optional = s.optional == Some(true);
        let done = config_map(&s.name, s.items.as_deref(), optional, mode, pod, given)
            .and_then(|payload| files.add(payload));
        (done, false)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let mode = s.default_mode.unwrap_or(defaults::VOLUME_FILE_MODE);
        let optional = s.optional == Some(true);
        let done = secret(name, s.items.as_deref(), optional, mode, pod, given)
            .and_then(|payload| files.add(payload));
        (done, true)
    } else if let Some(s) = &v.downward_api {
        let mode = s.default_mode.unwrap_or(defaults::VOLUME_FILE_MODE);
        let done = downward_api(
            s.items.as_deref().unwrap_or_default(),
            mode,
            pod,
            uid,
            given,
        )
        .and_then(|payload| files.add(payload));
        (done, true)
    } else if let Some(s) = &v.projected {
        let mode = s.default_mode.unwrap_or(defaults::VOLUME_FILE_MODE);
        let sources = s.sources.as_deref().unwrap_or_default();
        (projected(sources, mode, pod, uid, given, &mut files), true)
    } else {
        return None;
    };
    Some(done.and_then(|()| {
        Ok(VolumeSource::Projected {
            files: files.finish()?,
            memory,
            fs_group,
        })
    }))
}

/// Path → (mode, data), before the paths are checked.
type Payload = Vec<(String, i32, Vec<u8>)>;

/// A volume's files by cleaned path: a later source's file replaces an
/// earlier one's at the same path, as the kubelet's payload map does.
#[derive(Default)]
struct Files(BTreeMap<String, (u32, Vec<u8>)>);

impl Files {
    fn add(&mut self, payload: Payload) -> Result<(), ProjectionError> {
        for (path, mode, data) in payload {
            let cleaned = checked_path(&path)?;
            let mode = u32::try_from(mode)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| ProjectionError::Mode {
                    path: path.clone(),
                    mode,
                })?;
            self.0.insert(cleaned, (mode, data));
        }
        Ok(())
    }

    /// The files in path order; a path that is also another's directory
    /// is refused, as the atomic writer cannot make both.
    fn finish(self) -> Result<Vec<ProjectedFile>, ProjectionError> {
        for path in self.0.keys() {
            // Each directory above the path must not be a file itself.
            let dirs = path.match_indices('/').map(|(i, _)| &path[..i]);
            if let Some(file) = dirs.into_iter().find(|d| self.0.contains_key(*d)) {
                return Err(ProjectionError::Path {
                    path: file.to_owned(),
                    reason: format!("it is a file, and the directory of {path:?}"),
                });
            }
        }
        Ok(self
            .0
            .into_iter()
            .map(|(path, (mode, data))| ProjectedFile { path, mode, data })
            .collect())
    }
}

/// The path as the atomic writer takes it (the API server has already
/// refused absolute paths and `..`), cleaned.
fn checked_path(path: &str) -> Result<String, ProjectionError> {
    crate::api::runtime::projected_path(path).map_err(|reason| ProjectionError::Path {
        path: path.to_owned(),
        reason: reason.to_owned(),
    })
}

/// A configMap volume's or projection's files: every key of `data` and
/// `binaryData`, or the `items` asked for.
fn config_map(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    pod: &Pod,
    given: &Given,
) -> Result<Payload, ProjectionError> {
    let keys = given.objects.config_map(&pod.namespace, name).map(|cm| {
        let data = cm.data.iter().flatten();
        let binary = cm.binary_data.iter().flatten();
        data.map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .chain(binary.map(|(k, v)| (k.clone(), v.0.clone())))
            .collect()
    });
    let Some(keys) = keys else {
        return missing(
            optional,
            ProjectionError::ConfigMapNotFound {
                name: name.to_owned(),
            },
        );
    };
    select(keys, items, optional, mode, |key| {
        ProjectionError::ConfigMapKey {
            name: name.to_owned(),
            key,
        }
    })
}

/// A secret volume's or projection's files: every key of `data`, or the
/// `items` asked for.
fn secret(
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    pod: &Pod,
    given: &Given,
) -> Result<Payload, ProjectionError> {
    let keys = given.objects.secret(&pod.namespace, name).map(|s| {
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    });
    let Some(keys) = keys else {
        return missing(
            optional,
            ProjectionError::SecretNotFound {
                name: name.to_owned(),
            },
        );
    };
    select(keys, items, optional, mode, |key| {
        ProjectionError::SecretKey {
            name: name.to_owned(),
            key,
        }
    })
}

/// An object that is not there: nothing when it is optional.
fn missing(optional: bool, error: ProjectionError) -> Result<Payload, ProjectionError> {
    if optional { Ok(Vec::new()) } else { Err(error) }
}

/// An object's keys as files: all of them, each at its own name, or the
/// `items` asked for at their paths; a key asked for that is not there is
/// `missing_key`'s error unless the source is optional.
fn select(
    keys: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
    missing_key: impl Fn(String) -> ProjectionError,
) -> Result<Payload, ProjectionError> {
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(keys.into_iter().map(|(k, v)| (k, mode, v)).collect());
    };
    let mut payload = Vec::new();
    for item in items {
        match keys.get(&item.key) {
            Some(bytes) => {
                payload.push((item.path.clone(), item.mode.unwrap_or(mode), bytes.clone()))
            }
            None if optional => {}
            None => return Err(missing_key(item.key.clone())),
        }
    }
    Ok(payload)
}

/// A downwardAPI volume's or projection's files.
fn downward_api(
    items: &[DownwardAPIVolumeFile],
    mode: i32,
    pod: &Pod,
    uid: &str,
    given: &Given,
) -> Result<Payload, ProjectionError> {
    let mut payload = Vec::new();
    for item in items {
        let value = if let Some(r) = &item.field_ref {
            object_field(pod, uid, &r.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            let container = r.container_name.as_deref().unwrap_or_default();
            resource_value(pod, container, r, given.node)
        } else {
            // The API server requires one of them; an item without is
            // the empty file the kubelet would write.
            Ok(String::new())
        };
        let value = value.map_err(|source| ProjectionError::Downward {
            path: item.path.clone(),
            source,
        })?;
        payload.push((
            item.path.clone(),
            item.mode.unwrap_or(mode),
            value.into_bytes(),
        ));
    }
    Ok(payload)
}

/// A projected volume's files, source after source.
fn projected(
    sources: &[VolumeProjection],
    mode: i32,
    pod: &Pod,
    uid: &str,
    given: &Given,
    files: &mut Files,
) -> Result<(), ProjectionError> {
    for (index, source) in sources.iter().enumerate() {
        let unissuable = |kind, why| ProjectionError::Unissuable { index, kind, why };
        let payload = if let Some(s) = &source.secret {
            let optional = s.optional == Some(true);
            secret(&s.name, s.items.as_deref(), optional, mode, pod, given)?
        } else if let Some(s) = &source.config_map {
            let optional = s.optional == Some(true);
            config_map(&s.name, s.items.as_deref(), optional, mode, pod, given)?
        } else if let Some(s) = &source.downward_api {
            downward_api(
                s.items.as_deref().unwrap_or_default(),
                mode,
                pod,
                uid,
                given,
            )?
        } else if source.service_account_token.is_some() {
            return Err(unissuable(
                "serviceAccountToken",
                "issue service account tokens",
            ));
        } else if source.cluster_trust_bundle.is_some() {
            return Err(unissuable(
                "clusterTrustBundle",
                "read ClusterTrustBundles from",
            ));
        } else if source.pod_certificate.is_some() {
            return Err(unissuable("podCertificate", "issue pod certificates"));
        } else {
            // An empty source, which the API server lets through and the
            // kubelet passes over.
            Vec::new()
        };
        files.add(payload)?;
    }
    Ok(())
}

use crate::manifest::field::split_subscript;

/// A `fieldRef` of the pod's metadata, as `fieldpath.ExtractFieldPathAsString`
/// gives it: a whole map of labels or annotations is sorted `key="value"`
/// lines (Go's `%q`), without a final newline.
pub fn object_field(pod: &Pod, uid: &str, field_path: &str) -> Result<String, DownwardError> {
    if let Some((path, key)) = split_subscript(field_path) {
        return match path {
            "metadata.annotations" => Ok(pod.annotations.get(key).cloned().unwrap_or_default()),
            "metadata.labels" => Ok(pod.labels.get(key).cloned().unwrap_or_default()),
            _ => Err(DownwardError::Subscript(field_path.to_owned())),
        };
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(&pod.annotations)),
        "metadata.labels" => Ok(format_map(&pod.labels)),
        "metadata.name" => Ok(pod.name.clone()),
        "metadata.namespace" => Ok(pod.namespace.clone()),
        "metadata.uid" => Ok(uid.to_owned()),
        other => Err(DownwardError::FieldPath(other.to_owned())),
    }
}

/// `fieldpath.FormatMap`.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, `"` and `\`
/// escaped, the rest as `\a`-style, `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if go_is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c < ' ' || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Outside ASCII, what is not is a control (Cc), a
/// space or separator other than U+0020 (Zs, Zl, Zp: all White_Space), a
/// format character (Cf, listed below), a private-use one (Co) or a
/// noncharacter; a code point Unicode has not assigned yet is taken as
/// printable, where Go's tables would escape it.
fn go_is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let n = c as u32;
    const NOT_PRINT: &[(u32, u32)] = &[
        // Cf
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
        // Co
        (0xE000, 0xF8FF),
        (0xF0000, 0xFFFFD),
        (0x100000, 0x10FFFD),
        // Noncharacters
        (0xFDD0, 0xFDEF),
    ];
    let noncharacter = n & 0xFFFE == 0xFFFE;
    !noncharacter && !NOT_PRINT.iter().any(|(lo, hi)| (*lo..=*hi).contains(&n))
}

/// A `resourceFieldRef` of container `container`, as the kubelet's
/// `ExtractContainerResourceValue` gives it: the quantity divided by the
/// divisor (1 when unset), rounded up, 0 for nothing; an unset or zero
/// cpu, memory or ephemeral-storage limit is the node's allocatable.
pub fn resource_value(
    pod: &Pod,
    container: &str,
    selector: &ResourceFieldSelector,
    node: Option<&NodeFacts>,
) -> Result<String, DownwardError> {
    let info = pod
        .containers
        .iter()
        .find(|c| c.name == container)
        .ok_or_else(|| DownwardError::ContainerNotFound(container.to_owned()))?;
    let unsupported = || DownwardError::Resource(selector.resource.clone());
    let (side, name) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    let list = match side {
        "limits" => &info.resources.limits,
        "requests" => &info.resources.requests,
        _ => return Err(unsupported()),
    };
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(unsupported());
    }
    let set = list.get(name).copied().filter(|q| !q.is_zero());
    let quantity = match set {
        Some(q) => q,
        None if side == "limits" && !name.starts_with("hugepages-") => {
            allocatable(info, name, &selector.resource, node)?
        }
        None => Quantity::ZERO,
    };
    let bad_divisor = || DownwardError::Divisor(divisor_text(selector));
    let one = Quantity::parse("1").map_err(|_| bad_divisor())?;
    // An unset divisor is 1, as is a zero one (the kubelet cannot tell
    // them apart).
    let divisor = match selector.divisor.as_ref() {
        None => one,
        Some(d) => match Quantity::parse(&d.0).map_err(|_| bad_divisor())? {
            q if q.is_zero() => one,
            q => q,
        },
    };
    ratio_ceil(quantity, divisor)
        .map(|n| n.to_string())
        .ok_or_else(bad_divisor)
}

fn divisor_text(selector: &ResourceFieldSelector) -> String {
    selector
        .divisor
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or_default()
}

/// The node's allocatable `name`, for a container that sets no limit of it.
fn allocatable(
    info: &ContainerInfo,
    name: &str,
    resource: &str,
    node: Option<&NodeFacts>,
) -> Result<Quantity, DownwardError> {
    let unknown = |what| DownwardError::NodeUnknown {
        resource: resource.to_owned(),
        container: info.name.clone(),
        what,
    };
    let node = node.ok_or_else(|| unknown("allocatable"))?;
    let figure = match name {
        "cpu" => node.cpus.to_string(),
        "memory" => node.memory_bytes.to_string(),
        _ => return Err(unknown("ephemeral storage capacity")),
    };
    Quantity::parse(&figure).map_err(|_| unknown("allocatable"))
}

/// ⌈q / divisor⌉, 0 for a quantity or divisor that is not positive, at
/// most i64::MAX as the kubelet saturates; `None` for a divisor that is
/// not a whole number of thousandths (which validation refuses).
fn ratio_ceil(q: Quantity, divisor: Quantity) -> Option<i128> {
    if q.is_zero() || q.is_negative() || divisor.is_zero() || divisor.is_negative() {
        return Some(0);
    }
    let d_millis = divisor.millis_ceil();
    if Quantity::parse(&format!("{d_millis}m")).ok()? != divisor {
        return None;
    }
    // ⌈1000q / d⌉ = ⌈⌈1000q⌉ / d⌉ for a whole d.
    let q_millis = q.millis_ceil();
    let n = q_millis / d_millis + i128::from(q_millis % d_millis != 0);
    Some(n.min(i128::from(i64::MAX)))
}

#[cfg(test)]
mod tests;
