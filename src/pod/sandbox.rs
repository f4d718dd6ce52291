//! The pod's sandbox as the runtime is asked for it: which host namespaces
//! it shares, its resolver and `/etc/hosts` settings, its volumes.

use k8s_openapi::api::core::v1::{PodSpec, Volume as ApiVolume};

use std::collections::BTreeMap;

use super::projection::{self, Given, ProjectionError};
use crate::api::runtime::{
    Bandwidth, DnsConfig, HostsConfig, NamespaceOptions, PortMapping, Volume, VolumeSource,
};
use crate::manifest::{Pod, Quantity};

pub fn namespaces(spec: &PodSpec) -> NamespaceOptions {
    let host_pid = spec.host_pid == Some(true);
    NamespaceOptions {
        host_network: spec.host_network == Some(true),
        host_ipc: spec.host_ipc == Some(true),
        host_pid,
        share_pid: spec.share_process_namespace == Some(true) && !host_pid,
    }
}

/// `dnsPolicy` and `dnsConfig`: podrun has no cluster DNS, so
/// `ClusterFirst` starts from the host's resolver as `Default` does (as
/// the kubelet falls back without one); only `None` starts empty.
pub fn dns(spec: &PodSpec) -> DnsConfig {
    let config = spec.dns_config.as_ref();
    DnsConfig {
        from_host: spec.dns_policy.as_deref() != Some("None"),
        nameservers: config
            .and_then(|c| c.nameservers.clone())
            .unwrap_or_default(),
        searches: config.and_then(|c| c.searches.clone()).unwrap_or_default(),
        options: config
            .and_then(|c| c.options.as_ref())
            .into_iter()
            .flatten()
            .map(|o| (o.name.clone().unwrap_or_default(), o.value.clone()))
            .collect(),
    }
}

pub fn hosts(spec: &PodSpec) -> HostsConfig {
    HostsConfig {
        subdomain: spec.subdomain.clone().filter(|s| !s.is_empty()),
        aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect(),
    }
}

/// The `hostPort`s of the pod's containers, as the kubelet's
/// `generatePodSandboxConfig` gathers them: app containers only (an init
/// container's are not published, there either), none for a hostNetwork
/// pod, whose ports are the node's.
pub fn port_mappings(spec: &PodSpec) -> Vec<PortMapping> {
    if spec.host_network == Some(true) {
        return Vec::new();
    }
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(PortMapping {
                host_port: u16::try_from(p.host_port.filter(|hp| *hp > 0)?).ok()?,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

pub const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";

/// The pod's bandwidth annotations, as the kubelet reads them: quantities
/// of bits per second, from 1k to 1P; `Err` names the one that is not.
pub fn bandwidth(annotations: &BTreeMap<String, String>) -> Result<Option<Bandwidth>, String> {
    let rate = |key: &str| -> Result<Option<u64>, String> {
        let Some(text) = annotations.get(key) else {
            return Ok(None);
        };
        let q = Quantity::parse(text).map_err(|e| format!("annotation {key}: {e}"))?;
        let bits = q.value_ceil();
        if bits < 1_000 {
            return Err(format!(
                "annotation {key}: {text:?} is unreasonably small (< 1kbit)"
            ));
        }
        if bits > 1_000_000_000_000_000 {
            return Err(format!(
                "annotation {key}: {text:?} is unreasonably large (> 1Pbit)"
            ));
        }
        Ok(u64::try_from(bits).ok())
    };
    let (ingress_rate, egress_rate) = (rate(INGRESS_BANDWIDTH)?, rate(EGRESS_BANDWIDTH)?);
    Ok(
        (ingress_rate.is_some() || egress_rate.is_some()).then_some(Bandwidth {
            ingress_rate,
            egress_rate,
        }),
    )
}

/// A volume podrun cannot make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("{0} volumes are not supported by podrun yet")]
    Unsupported(&'static str),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// A volume of pod `pod` (whose uid is `uid`) as podrun makes it:
/// configMap, secret, downwardAPI and projected volumes with their files
/// from what is `given`.
pub fn volume(v: &ApiVolume, pod: &Pod, uid: &str, given: &Given) -> Result<Volume, VolumeError> {
    let source = if let Some(empty) = &v.empty_dir {
        VolumeSource::EmptyDir {
            fs_group: pod.spec.security_context.as_ref().and_then(|s| s.fs_group),
            memory: empty.medium.as_deref() == Some("Memory"),
            size_limit: empty
                .size_limit
                .as_ref()
                .and_then(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.value_ceil().max(0) as u64),
        }
    } else if let Some(host) = &v.host_path {
        VolumeSource::HostPath {
            path: host.path.clone().into(),
            kind: host.type_.clone().unwrap_or_default(),
        }
    } else if let Some(projected) = projection::volume_source(v, pod, uid, given) {
        projected?
    } else {
        // Validation has seen to it that there is exactly one.
        let kind = crate::manifest::volume_source_kinds(v)
            .first()
            .copied()
            .unwrap_or("these");
        return Err(VolumeError::Unsupported(kind));
    };
    Ok(Volume {
        name: v.name.clone(),
        source,
    })
}

/// Whether `volume` is a configMap, secret, downwardAPI or projected
/// volume of `spec`: the kubelet mounts those read-only, whatever the
/// mount says.
pub fn is_api_data(spec: &PodSpec, volume: &str) -> bool {
    spec.volumes.iter().flatten().any(|v| {
        v.name == volume
            && (v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    #[test]
    fn the_specs_sandbox_settings() {
        let pod = manifest::parse(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostIPC: true
  shareProcessNamespace: true
  dnsPolicy: "None"
  dnsConfig: {nameservers: [10.0.0.1], searches: [a.test], options: [{name: ndots, value: "2"}, {name: edns0}]}
  subdomain: sub
  hostAliases: [{ip: 10.1.1.1, hostnames: [a, b]}]
  containers: [{name: c, image: x, volumeMounts: [{name: m, mountPath: /m}, {name: h, mountPath: /h}, {name: s, mountPath: /s}]}]
  volumes:
  - {name: m, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  - {name: h, hostPath: {path: /srv, type: Directory}}
  - {name: s, secret: {secretName: x}}
  - {name: c, persistentVolumeClaim: {claimName: x}}
"#,
        )
        .unwrap()
        .pod;
        let spec = &pod.spec;
        assert_eq!(
            namespaces(spec),
            NamespaceOptions {
                host_network: false,
                host_ipc: true,
                host_pid: false,
                share_pid: true
            }
        );
        assert_eq!(
            dns(spec),
            DnsConfig {
                from_host: false,
                nameservers: vec!["10.0.0.1".to_owned()],
                searches: vec!["a.test".to_owned()],
                options: vec![
                    ("ndots".to_owned(), Some("2".to_owned())),
                    ("edns0".to_owned(), None)
                ],
            }
        );
        assert_eq!(
            hosts(spec),
            HostsConfig {
                subdomain: Some("sub".to_owned()),
                aliases: vec![("10.1.1.1".to_owned(), vec!["a".to_owned(), "b".to_owned()])],
            }
        );
        let volumes: Vec<_> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| volume(v, &pod, "u-1", &Given::nothing()).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(
            volumes,
            [
                Ok(Volume {
                    name: "m".to_owned(),
                    source: VolumeSource::EmptyDir {
                        memory: true,
                        size_limit: Some(1 << 20),
                        fs_group: None,
                    }
                }),
                Ok(Volume {
                    name: "h".to_owned(),
                    source: VolumeSource::HostPath {
                        path: "/srv".into(),
                        kind: "Directory".to_owned()
                    }
                }),
                Err(
                    "secret \"x\" not found: give it in the manifest's file or with --secret FILE"
                        .to_owned()
                ),
                Err("persistentVolumeClaim volumes are not supported by podrun yet".to_owned()),
            ]
        );
        assert!(is_api_data(spec, "s") && !is_api_data(spec, "m") && !is_api_data(spec, "nope"));
    }

    #[test]
    fn bandwidth_annotations_as_the_kubelet_reads_them() {
        let a = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(bandwidth(&a(&[])), Ok(None));
        assert_eq!(
            bandwidth(&a(&[(INGRESS_BANDWIDTH, "10M"), ("x", "y")])),
            Ok(Some(Bandwidth {
                ingress_rate: Some(10_000_000),
                egress_rate: None
            }))
        );
        let e = bandwidth(&a(&[(EGRESS_BANDWIDTH, "10")])).unwrap_err();
        assert!(e.contains("unreasonably small (< 1kbit)"), "{e}");
        let e = bandwidth(&a(&[(EGRESS_BANDWIDTH, "2P")])).unwrap_err();
        assert!(e.contains("unreasonably large (> 1Pbit)"), "{e}");
        let e = bandwidth(&a(&[(EGRESS_BANDWIDTH, "fast")])).unwrap_err();
        assert!(
            e.starts_with("annotation kubernetes.io/egress-bandwidth: "),
            "{e}"
        );
    }
}
