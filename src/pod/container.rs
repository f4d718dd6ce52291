//! One container of the manifest → what the runtime is given to create it
//! (the kubelet's `generateContainerConfig`): the environment resolved
//! (downward API, `$(VAR)`), `command` and `args` expanded, volume mounts
//! with their `subPathExpr` expanded, and the pod's and the container's
//! security settings merged. A reference podrun cannot resolve (a Secret
//! it does not have) is the kubelet's `CreateContainerConfigError`: the
//! container waits with it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSecurityContext};

use super::expand::{expand, resolve_env};
use crate::api::runtime::{ContainerConfig, DEFAULT_PATH, Mount, Propagation, Security};
use crate::manifest::Pod;

/// The pod's and the node's addresses, known once the pod's sandbox is
/// on the network (IPv4 first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub pod_ips: Vec<String>,
    pub host_ips: Vec<String>,
}

/// What the pod tells each of its containers.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub hostname: &'a str,
    pub node_name: &'a str,
    /// Empty until the sandbox is made.
    pub addresses: &'a Addresses,
}

/// The downward API's fields the sandbox answers.
const ADDRESS_FIELDS: [&str; 4] = [
    "status.podIP",
    "status.podIPs",
    "status.hostIP",
    "status.hostIPs",
];

/// Whether some container's environment names the pod's or the node's
/// address: its configuration waits for the sandbox.
pub fn uses_addresses(pod: &Pod) -> bool {
    pod.init_containers()
        .iter()
        .chain(&pod.spec.containers)
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| e.value_from.as_ref()?.field_ref.as_ref())
        .any(|r| ADDRESS_FIELDS.contains(&r.field_path.as_str()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("env {name:?}: {what} is not available in podrun")]
    Unavailable { name: String, what: String },
}

/// A `valueFrom` this pod can answer; `None` leaves the variable out (an
/// optional reference to what is not there).
fn value_from(f: &PodFacts, e: &EnvVar) -> Result<Option<String>, ConfigError> {
    let Some(from) = &e.value_from else {
        return Ok(Some(e.value.clone().unwrap_or_default()));
    };
    let unavailable = |what: String| ConfigError::Unavailable {
        name: e.name.clone(),
        what,
    };
    if let Some(r) = &from.field_ref {
        let meta = f.pod.template_metadata.as_ref().unwrap_or(&f.pod.metadata);
        let key = |prefix: &str| {
            r.field_path
                .strip_prefix(prefix)
                .and_then(|k| k.strip_prefix("['"))
                .and_then(|k| k.strip_suffix("']"))
                .map(str::to_owned)
        };
        let value = match r.field_path.as_str() {
            "metadata.name" => Some(f.pod.name.clone()),
            "metadata.namespace" => Some(f.pod.namespace.clone()),
            "metadata.uid" => Some(f.uid.to_owned()),
            "spec.nodeName" => Some(f.node_name.to_owned()),
            // As the kubelet gives them: the first address, or all of
            // them joined by commas.
            "status.podIP" => Some(f.addresses.pod_ips.first().cloned().unwrap_or_default()),
            "status.podIPs" => Some(f.addresses.pod_ips.join(",")),
            "status.hostIP" => Some(f.addresses.host_ips.first().cloned().unwrap_or_default()),
            "status.hostIPs" => Some(f.addresses.host_ips.join(",")),
            "spec.serviceAccountName" => Some(
                f.pod
                    .spec
                    .service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            path => {
                if let Some(k) = key("metadata.labels") {
                    Some(f.pod.labels.get(&k).cloned().unwrap_or_default())
                } else if let Some(k) = key("metadata.annotations") {
                    Some(
                        meta.annotations
                            .as_ref()
                            .and_then(|a| a.get(&k))
                            .cloned()
                            .unwrap_or_default(),
                    )
                } else {
                    return Err(unavailable(format!("fieldRef {path}")));
                }
            }
        };
        return Ok(value);
    }
    // podrun has no ConfigMaps or Secrets: a reference finds nothing.
    if let Some(r) = &from.config_map_key_ref {
        return missing("configmap", &r.name, r.optional).map(|()| None);
    }
    if let Some(r) = &from.secret_key_ref {
        return missing("secret", &r.name, r.optional).map(|()| None);
    }
    Err(unavailable(
        if from.resource_field_ref.is_some() {
            "resourceFieldRef"
        } else {
            "fileKeyRef"
        }
        .to_owned(),
    ))
}

/// A source that is not there: fine when optional.
fn missing(kind: &'static str, name: &str, optional: Option<bool>) -> Result<(), ConfigError> {
    if optional == Some(true) {
        Ok(())
    } else {
        Err(ConfigError::NotFound {
            kind,
            name: name.to_owned(),
        })
    }
}

/// PATH and HOSTNAME, then the container's own variables, resolved in
/// order.
fn environment(f: &PodFacts, c: &Container) -> Result<Vec<(String, String)>, ConfigError> {
    let base = vec![
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        // A hostNetwork pod has the node's hostname.
        (
            "HOSTNAME".to_owned(),
            if f.pod.spec.host_network == Some(true) {
                f.node_name
            } else {
                f.hostname
            }
            .to_owned(),
        ),
    ];
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            missing("configmap", &r.name, r.optional)?;
        }
        if let Some(r) = &from.secret_ref {
            missing("secret", &r.name, r.optional)?;
        }
    }
    let mut env = Vec::new();
    for e in c.env.iter().flatten() {
        if let Some(value) = value_from(f, e)? {
            env.push((e.name.clone(), value));
        }
    }
    Ok(resolve_env(&base, &env))
}

fn mounts(c: &Container, env: &[(String, String)]) -> Vec<Mount> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| Mount {
            volume: m.name.clone(),
            container_path: m.mount_path.clone(),
            sub_path: match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
                (Some(s), _) if !s.is_empty() => Some(s.to_owned()),
                (_, Some(e)) if !e.is_empty() => Some(expand(e, lookup)),
                _ => None,
            },
            read_only: m.read_only == Some(true),
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") => Propagation::Bidirectional,
                _ => Propagation::None,
            },
        })
        .collect()
}

/// The container's settings over the pod's.
fn security(pod: Option<&PodSecurityContext>, c: &Container) -> Security {
    let own = c.security_context.as_ref();
    let privileged = own.and_then(|s| s.privileged) == Some(true);
    let caps = own.and_then(|s| s.capabilities.as_ref());
    Security {
        run_as_user: own
            .and_then(|s| s.run_as_user)
            .or(pod.and_then(|p| p.run_as_user)),
        run_as_group: own
            .and_then(|s| s.run_as_group)
            .or(pod.and_then(|p| p.run_as_group)),
        run_as_non_root: own
            .and_then(|s| s.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root))
            .unwrap_or(false),
        supplemental_groups: pod
            .and_then(|p| p.supplemental_groups.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(pod.and_then(|p| p.fs_group))
            .collect(),
        privileged,
        // Kubernetes allows escalation unless told not to.
        no_new_privs: !privileged && own.and_then(|s| s.allow_privilege_escalation) == Some(false),
        read_only_root: own.and_then(|s| s.read_only_root_filesystem) == Some(true),
        add_capabilities: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop_capabilities: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
    }
}

/// The runtime's configuration of container `c` (its cgroup values and
/// oom_score_adj come from the plan, filled in by the caller).
pub fn config(f: &PodFacts, c: &Container) -> Result<ContainerConfig, ConfigError> {
    let env = environment(f, c)?;
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expanded = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|a| expand(a, lookup)).collect()
    };
    let own_env: BTreeSet<String> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
    Ok(ContainerConfig {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        command: expanded(&c.command),
        args: expanded(&c.args),
        mounts: mounts(c, &env),
        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
        security: security(f.pod.spec.security_context.as_ref(), c),
        env,
        own_env,
        cgroup: Default::default(),
        oom_score_adj: 0,
    })
}

/// The hostname of a pod, as the kubelet makes it: `spec.hostname` or the
/// pod's name, cut to 63 characters without a trailing `-` or `.`.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.name.clone());
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn pod(yaml: &str) -> Pod {
        manifest::parse(yaml).unwrap().pod
    }

    fn facts(pod: &Pod) -> PodFacts<'_> {
        PodFacts {
            pod,
            uid: "1234",
            hostname: "web",
            node_name: "node-1",
            addresses: &NO_ADDRESSES,
        }
    }

    static NO_ADDRESSES: Addresses = Addresses {
        pod_ips: Vec::new(),
        host_ips: Vec::new(),
    };

    #[test]
    fn env_mounts_and_security_are_resolved_for_the_runtime() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {tier: data}}
spec:
  securityContext: {runAsUser: 70, supplementalGroups: [9], fsGroup: 8}
  containers:
  - name: store
    image: "rootfs:/"
    command: ["run-$(TIER)"]
    env:
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    volumeMounts: [{name: v, mountPath: /data, subPathExpr: "$(NODE)/x", readOnly: true}]
    securityContext:
      allowPrivilegeEscalation: false
      runAsGroup: 7
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
  volumes: [{name: v, emptyDir: {}}]
"#);
        let c = config(&facts(&p), &p.spec.containers[0]).unwrap();
        assert_eq!(c.command, ["run-data"]);
        assert_eq!(c.env[0], ("PATH".to_owned(), DEFAULT_PATH.to_owned()));
        assert_eq!(c.env[1], ("HOSTNAME".to_owned(), "web".to_owned()));
        assert!(c.env.contains(&("NODE".to_owned(), "node-1".to_owned())));
        assert!(c.own_env.contains("TIER") && !c.own_env.contains("PATH"));
        assert_eq!(
            c.mounts,
            [Mount {
                volume: "v".to_owned(),
                container_path: "/data".to_owned(),
                sub_path: Some("node-1/x".to_owned()),
                read_only: true,
                propagation: Propagation::None,
            }]
        );
        assert_eq!(
            c.security,
            Security {
                run_as_user: Some(70),
                run_as_group: Some(7),
                run_as_non_root: false,
                supplemental_groups: vec![9, 8],
                privileged: false,
                no_new_privs: true,
                read_only_root: false,
                add_capabilities: vec!["NET_BIND_SERVICE".to_owned()],
                drop_capabilities: vec!["ALL".to_owned()],
            }
        );
    }

    #[test]
    fn what_podrun_cannot_resolve_is_a_config_error() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: a, image: "rootfs:/", command: [x], env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: k}}}]}
  - {name: b, image: "rootfs:/", command: [x], envFrom: [{configMapRef: {name: cm}}]}
  - {name: c, image: "rootfs:/", command: [x], env: [{name: R, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}]}
  - {name: d, image: "rootfs:/", command: [x], envFrom: [{secretRef: {name: s, optional: true}}]}
"#);
        let errors: Vec<String> = p
            .spec
            .containers
            .iter()
            .map(|c| match config(&facts(&p), c) {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            errors,
            [
                "secret \"s\" not found",
                "configmap \"cm\" not found",
                "env \"R\": resourceFieldRef is not available in podrun",
                "ok",
            ]
        );
    }

    #[test]
    fn hostnames_are_cut_as_the_kubelet_cuts_them() {
        let mut p = pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: x}]}\n",
        );
        assert_eq!(hostname(&p), "web");
        p.name = format!("{}-.x", "a".repeat(62));
        assert_eq!(hostname(&p), "a".repeat(62));
        p.spec.hostname = Some("db".to_owned());
        assert_eq!(hostname(&p), "db");
    }
}
