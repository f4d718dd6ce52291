//! One container of the manifest → what the runtime is given to create it
//! (the kubelet's `generateContainerConfig`): the environment resolved
//! (`envFrom`, ConfigMap and Secret keys, downward API, `$(VAR)`),
//! `command` and `args` expanded, volume mounts with their `subPathExpr`
//! expanded, and the pod's and the container's security settings merged.
//! A reference podrun cannot resolve (a Secret it was not given) is the
//! kubelet's `CreateContainerConfigError`: the container waits with it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, PodSecurityContext};

use super::expand::expand;
use super::projection::{self, DownwardError, Given};
use super::sandbox;
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
    /// The kubelet's words for a ConfigMap or Secret that is not there.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        kind: &'static str,
        key: String,
        namespace: String,
        name: String,
    },
    /// The CRI carries variables as UTF-8 strings, so the kubelet's runtime
    /// call fails on such a value; podrun says why before.
    #[error(
        "key {key} of Secret {namespace}/{name} is not UTF-8 text, which an environment variable cannot carry"
    )]
    NotText {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("env {name:?}: {source}")]
    Downward { name: String, source: DownwardError },
    #[error("env {name:?}: {what} is not available in podrun")]
    Unavailable { name: String, what: String },
}

/// A Secret's value as a variable's text.
fn text(bytes: &[u8], key: &str, namespace: &str, name: &str) -> Result<String, ConfigError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ConfigError::NotText {
        key: key.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// A `valueFrom` this pod can answer, as the kubelet's
/// `makeEnvironmentVariables` resolves it; `None` leaves the variable out
/// (an optional reference to what is not there).
fn value_from(
    f: &PodFacts,
    given: &Given,
    c: &Container,
    e: &EnvVar,
    from: &EnvVarSource,
) -> Result<Option<String>, ConfigError> {
    let namespace = f.pod.namespace.as_str();
    if let Some(r) = &from.field_ref {
        let value = match r.field_path.as_str() {
            // `spec.host` is what old clients call spec.nodeName.
            "spec.nodeName" | "spec.host" => f.node_name.to_owned(),
            // As the kubelet gives them: the first address, or all of
            // them joined by commas.
            "status.podIP" => f.addresses.pod_ips.first().cloned().unwrap_or_default(),
            "status.podIPs" => f.addresses.pod_ips.join(","),
            "status.hostIP" => f.addresses.host_ips.first().cloned().unwrap_or_default(),
            "status.hostIPs" => f.addresses.host_ips.join(","),
            "spec.serviceAccountName" => f
                .pod
                .spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            path => projection::object_field(f.pod, f.uid, path).map_err(|source| {
                ConfigError::Downward {
                    name: e.name.clone(),
                    source,
                }
            })?,
        };
        return Ok(Some(value));
    }
    if let Some(r) = &from.resource_field_ref {
        // Without a container name, the variable's own container.
        let container = r
            .container_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&c.name);
        return projection::resource_value(f.pod, container, r, given.node)
            .map(Some)
            .map_err(|source| ConfigError::Downward {
                name: e.name.clone(),
                source,
            });
    }
    let key = |kind: &'static str, name: &str, key: &str, optional: Option<bool>, value| match value
    {
        Some(value) => Result::map(value, Some),
        None if optional == Some(true) => Ok(None),
        None => Err(ConfigError::MissingKey {
            kind,
            key: key.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    };
    if let Some(r) = &from.config_map_key_ref {
        let Some(cm) = given.objects.config_map(namespace, &r.name) else {
            return missing("configmap", &r.name, r.optional).map(|()| None);
        };
        // Only `data`: the kubelet does not read binaryData here.
        let value = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .cloned()
            .map(Ok);
        return key("ConfigMap", &r.name, &r.key, r.optional, value);
    }
    if let Some(r) = &from.secret_key_ref {
        let Some(secret) = given.objects.secret(namespace, &r.name) else {
            return missing("secret", &r.name, r.optional).map(|()| None);
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|v| text(&v.0, &r.key, namespace, &r.name));
        return key("Secret", &r.name, &r.key, r.optional, value);
    }
    Err(ConfigError::Unavailable {
        name: e.name.clone(),
        what: "fileKeyRef".to_owned(),
    })
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

/// Variables in the order of their first definition; a later definition
/// of a name replaces its value.
#[derive(Default)]
struct Variables(Vec<(String, String)>);

impl Variables {
    fn set(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// PATH and HOSTNAME, then the variables of `envFrom` (in its order, each
/// source's keys sorted, with its prefix), then `env` in order over them,
/// as the kubelet makes them: an `env` entry replaces a variable of the
/// same name, a `value` may refer to any variable defined before it
/// (`envFrom`'s included), and what a `valueFrom` gives is taken as it
/// is, unexpanded. With the names the container sets itself.
fn environment(f: &PodFacts, given: &Given, c: &Container) -> Result<Environment, ConfigError> {
    let mut vars = Variables::default();
    vars.set("PATH".to_owned(), DEFAULT_PATH.to_owned());
    // A hostNetwork pod has the node's hostname.
    let hostname = if f.pod.spec.host_network == Some(true) {
        f.node_name
    } else {
        f.hostname
    };
    vars.set("HOSTNAME".to_owned(), hostname.to_owned());
    let mut own = BTreeSet::new();
    let namespace = f.pod.namespace.as_str();
    // Every key is taken, prefixed: with Kubernetes' relaxed variable
    // names (the default since 1.32), the kubelet skips none, and a key
    // and prefix the API server accepts always make a valid name.
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match given.objects.config_map(namespace, &r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        own.insert(format!("{prefix}{k}"));
                        vars.set(format!("{prefix}{k}"), v.clone());
                    }
                }
                None => missing("configmap", &r.name, r.optional)?,
            }
        }
        if let Some(r) = &from.secret_ref {
            match given.objects.secret(namespace, &r.name) {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        own.insert(format!("{prefix}{k}"));
                        vars.set(format!("{prefix}{k}"), text(&v.0, k, namespace, &r.name)?);
                    }
                }
                None => missing("secret", &r.name, r.optional)?,
            }
        }
    }
    for e in c.env.iter().flatten() {
        let raw = e.value.as_deref().unwrap_or_default();
        let value = match &e.value_from {
            Some(from) if raw.is_empty() => value_from(f, given, c, e, from)?,
            _ => Some(expand(raw, |name| vars.get(name))),
        };
        if let Some(value) = value {
            own.insert(e.name.clone());
            vars.set(e.name.clone(), value);
        }
    }
    Ok(Environment { vars: vars.0, own })
}

/// A container's variables, resolved, and the names it sets itself.
struct Environment {
    vars: Vec<(String, String)>,
    own: BTreeSet<String>,
}

fn mounts(f: &PodFacts, c: &Container, env: &[(String, String)]) -> Vec<Mount> {
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
            // The kubelet mounts ConfigMap, Secret and downward API data
            // read-only, whatever the mount says.
            read_only: m.read_only == Some(true) || sandbox::is_api_data(&f.pod.spec, &m.name),
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
        strict_groups: pod.and_then(|p| p.supplemental_groups_policy.as_deref()) == Some("Strict"),
    }
}

/// The runtime's configuration of container `c`, its environment and
/// mounts from what is `given` (its cgroup values and oom_score_adj come
/// from the plan, filled in by the caller).
pub fn config(f: &PodFacts, given: &Given, c: &Container) -> Result<ContainerConfig, ConfigError> {
    let Environment {
        vars: env,
        own: own_env,
    } = environment(f, given, c)?;
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expanded = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|a| expand(a, lookup)).collect()
    };
    Ok(ContainerConfig {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        command: expanded(&c.command),
        args: expanded(&c.args),
        mounts: mounts(f, c, &env),
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
    // `hostnameOverride` is taken as it is (validated as a subdomain).
    if let Some(o) = pod
        .spec
        .hostname_override
        .as_deref()
        .filter(|o| !o.is_empty())
    {
        return o.to_owned();
    }
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
    use crate::manifest::{self, Objects};
    use crate::plan::NodeFacts;

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
        let c = config(&facts(&p), &Given::nothing(), &p.spec.containers[0]).unwrap();
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
                strict_groups: false,
            }
        );
    }

    fn objects() -> Objects {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |name: &str| ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let bytes = |pairs: &[(&str, &[u8])]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            )
        };
        Objects {
            config_maps: vec![ConfigMap {
                metadata: meta("cm"),
                data: Some(
                    [
                        ("LEVEL", "debug"),
                        ("PATH", "/opt/bin"),
                        ("with.dot", "ok"),
                        ("REF", "$(LEVEL)"),
                    ]
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ),
                binary_data: bytes(&[("blob", b"\x00\x01")]),
                ..Default::default()
            }],
            secrets: vec![
                Secret {
                    metadata: meta("s"),
                    data: bytes(&[("user", b"admin"), ("raw", &[0xff, 0xfe])]),
                    ..Default::default()
                },
                Secret {
                    metadata: meta("t"),
                    data: bytes(&[("user", b"root"), ("pass", b"x")]),
                    ..Default::default()
                },
            ],
        }
    }

    static NODE: NodeFacts = NodeFacts {
        memory_bytes: 8 << 30,
        cpus: 4,
        hugepage_sizes: Vec::new(),
    };

    /// Each container's configuration given `objects()` and `NODE`, or
    /// its error's text.
    fn configs(p: &Pod) -> Vec<Result<ContainerConfig, String>> {
        let objects = objects();
        let given = Given {
            objects: &objects,
            node: Some(&NODE),
        };
        p.init_containers()
            .iter()
            .chain(&p.spec.containers)
            .map(|c| config(&facts(p), &given, c).map_err(|e| e.to_string()))
            .collect()
    }

    fn value<'a>(c: &'a ContainerConfig, name: &str) -> Option<&'a str> {
        c.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn what_podrun_cannot_resolve_is_a_config_error() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: a, image: "rootfs:/", env: [{name: K, valueFrom: {secretKeyRef: {name: gone, key: k}}}]}
  - {name: b, image: "rootfs:/", envFrom: [{configMapRef: {name: gone}}]}
  - {name: c, image: "rootfs:/", env: [{name: K, valueFrom: {configMapKeyRef: {name: cm, key: nope}}}]}
  - {name: d, image: "rootfs:/", env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: nope}}}]}
  - {name: e, image: "rootfs:/", env: [{name: K, valueFrom: {configMapKeyRef: {name: cm, key: blob}}}]}
  - {name: f, image: "rootfs:/", env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: raw}}}]}
  - {name: g, image: "rootfs:/", envFrom: [{secretRef: {name: s}}]}
  - {name: h, image: "rootfs:/", env: [{name: R, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage}}}]}
  - {name: i, image: "rootfs:/", env: [{name: R, valueFrom: {resourceFieldRef: {containerName: nobody, resource: limits.cpu}}}]}
  - {name: j, image: "rootfs:/", envFrom: [{secretRef: {name: gone, optional: true}}]}
"#);
        let errors: Vec<String> = configs(&p)
            .into_iter()
            .map(|c| c.map_or_else(|e| e, |_| "ok".to_owned()))
            .collect();
        assert_eq!(
            errors,
            [
                "secret \"gone\" not found",
                "configmap \"gone\" not found",
                "couldn't find key nope in ConfigMap default/cm",
                "couldn't find key nope in Secret default/s",
                // binaryData is not the environment's.
                "couldn't find key blob in ConfigMap default/cm",
                "key raw of Secret default/s is not UTF-8 text, which an environment variable cannot carry",
                "key raw of Secret default/s is not UTF-8 text, which an environment variable cannot carry",
                "env \"R\": limits.ephemeral-storage of container \"h\": it sets no limit, and podrun does not know this node's ephemeral storage capacity to stand for it",
                "env \"R\": container nobody not found",
                "ok",
            ]
        );
        // Without objects or a node, as `config` is called.
        let c = &p.spec.containers[2];
        assert_eq!(
            config(&facts(&p), &Given::nothing(), c)
                .unwrap_err()
                .to_string(),
            "configmap \"cm\" not found"
        );
    }

    #[test]
    fn env_from_comes_first_and_env_overrides_it() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - name: side
    image: "rootfs:/"
    restartPolicy: Always
    resources: {limits: {memory: 64Mi}}
  containers:
  - name: app
    image: "rootfs:/"
    command: ["run", "$(CFG_LEVEL)", "$(USER)"]
    resources: {limits: {cpu: 500m}}
    envFrom:
    - {configMapRef: {name: cm}, prefix: CFG_}
    - {configMapRef: {name: cm}}
    - {secretRef: {name: t, optional: true}, prefix: "my-"}
    - {configMapRef: {name: absent, optional: true}}
    env:
    - {name: LEVEL, value: "info+$(LEVEL)"}
    - {name: USER, valueFrom: {secretKeyRef: {name: s, key: user}}}
    - {name: COPY, valueFrom: {configMapKeyRef: {name: cm, key: REF}}}
    - {name: GONE, valueFrom: {configMapKeyRef: {name: cm, key: nope, optional: true}}}
    - {name: GONE2, valueFrom: {secretKeyRef: {name: absent, key: k, optional: true}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: SIDE_MEM, valueFrom: {resourceFieldRef: {containerName: side, resource: limits.memory, divisor: 1Mi}}}
    - {name: NODE_ALIAS, valueFrom: {fieldRef: {fieldPath: spec.host}}}
"#);
        let all = configs(&p);
        // The sidecar's PATH is the default, no source of its own.
        let side = all[0].as_ref().unwrap();
        assert_eq!(value(side, "PATH"), Some(DEFAULT_PATH));
        let c = all[1].as_ref().unwrap();
        // Sources in order, each one's keys sorted, then env over them;
        // a name keeps its first place.
        let names: Vec<&str> = c.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOSTNAME",
                "CFG_LEVEL",
                "CFG_PATH",
                "CFG_REF",
                "CFG_with.dot",
                "LEVEL",
                "REF",
                "with.dot",
                "my-pass",
                "my-user",
                "USER",
                "COPY",
                "CPU",
                "MEM",
                "SIDE_MEM",
                "NODE_ALIAS",
            ]
        );
        // envFrom's PATH replaces the default.
        assert_eq!(value(c, "PATH"), Some("/opt/bin"));
        // A `value` refers to envFrom's variables; what a source gives is
        // taken as it is, unexpanded.
        assert_eq!(value(c, "LEVEL"), Some("info+debug"));
        assert_eq!(value(c, "REF"), Some("$(LEVEL)"));
        assert_eq!(value(c, "COPY"), Some("$(LEVEL)"));
        assert_eq!(value(c, "USER"), Some("admin"));
        assert_eq!(value(c, "my-user"), Some("root"));
        assert_eq!(value(c, "GONE"), None);
        assert_eq!(value(c, "GONE2"), None);
        assert_eq!(value(c, "CPU"), Some("500"));
        // No memory limit: the node's.
        assert_eq!(value(c, "MEM"), Some("8192"));
        assert_eq!(value(c, "SIDE_MEM"), Some("64"));
        assert_eq!(value(c, "NODE_ALIAS"), Some("node-1"));
        assert_eq!(c.command, ["run", "debug", "admin"]);
        assert!(c.own_env.contains("CFG_LEVEL") && c.own_env.contains("PATH"));
        assert!(!c.own_env.contains("GONE") && !c.own_env.contains("HOSTNAME"));
    }

    #[test]
    fn api_data_volumes_are_mounted_read_only() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: a
    image: "rootfs:/"
    volumeMounts:
    - {name: cm, mountPath: /cm, readOnly: false}
    - {name: sec, mountPath: /sec}
    - {name: down, mountPath: /down}
    - {name: proj, mountPath: /proj}
    - {name: scratch, mountPath: /scratch}
    - {name: ro, mountPath: /ro, readOnly: true}
  volumes:
  - {name: cm, configMap: {name: cm}}
  - {name: sec, secret: {secretName: s}}
  - {name: down, downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
  - {name: proj, projected: {sources: [{configMap: {name: cm}}]}}
  - {name: scratch, emptyDir: {}}
  - {name: ro, emptyDir: {}}
"#);
        let c = config(&facts(&p), &Given::nothing(), &p.spec.containers[0]).unwrap();
        let read_only: Vec<(&str, bool)> = c
            .mounts
            .iter()
            .map(|m| (m.volume.as_str(), m.read_only))
            .collect();
        assert_eq!(
            read_only,
            [
                ("cm", true),
                ("sec", true),
                ("down", true),
                ("proj", true),
                ("scratch", false),
                ("ro", true),
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
        p.spec.hostname_override = Some("db.example.test".to_owned());
        assert_eq!(hostname(&p), "db.example.test");
    }
}
