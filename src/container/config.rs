//! What a container runs as, taken from its manifest: command and args with
//! `$(VAR)` expansion, the environment, working directory, identity,
//! capabilities, no_new_privs and its volume mounts. An error here is the
//! kubelet's `CreateContainerConfigError`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSecurityContext, SecurityContext};

use super::caps::{self, CapsError};
use super::expand::{expand, resolve_env};
use super::rootfs::{BindMount, Propagation, Root, RootfsError};
use super::spawn::{Creds, DEFAULT_PATH};
use crate::manifest::Pod;
use crate::sandbox::volumes::{VolumeError, resolve_subpath};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Caps(#[from] CapsError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("the container has no command and a rootfs image has no entrypoint")]
    NoCommand,
    #[error("no command specified")]
    NoImageCommand,
    #[error("container has runAsNonRoot and image will run as root")]
    RunAsRoot,
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({0}), cannot verify user is non-root"
    )]
    NonNumericUser(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    #[error("image {0:?} is not ready for this container")]
    ImageNotReady(String),
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("env {name:?}: {what} is not available in podrun")]
    Unavailable { name: String, what: String },
    #[error("volume {0:?} is not mounted in the pod")]
    UnknownVolume(String),
}

/// What an image's config says about running it: defaults under the
/// container's own fields, as Kubernetes applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries, in order.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
}

/// A container run's root from an image: its mounted root directory and
/// the image's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRun {
    pub rootfs: PathBuf,
    pub defaults: ImageDefaults,
}

/// The pod-wide facts a container's configuration uses.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    /// The pod's hostname (its UTS namespace's).
    pub hostname: &'a str,
    /// This machine's hostname: the node's name.
    pub node_name: &'a str,
    /// Volume name → where its data is on the host.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// Every capability the kernel has.
    pub all_caps: u64,
    /// Files the pod gives each container (`/etc/hosts`, `/etc/hostname`,
    /// `/etc/resolv.conf`): source on the host, path in the container.
    pub etc_files: &'a [(PathBuf, String)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub creds: Creds,
    pub caps: u64,
    pub no_new_privs: bool,
    pub read_only_root: bool,
    pub privileged: bool,
    pub root: Root,
    pub mounts: Vec<BindMount>,
}

/// A `valueFrom` this pod can answer.
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
    let missing = |kind, name: &str, optional: Option<bool>| {
        if optional == Some(true) {
            Ok(None)
        } else {
            Err(ConfigError::NotFound {
                kind,
                name: name.to_owned(),
            })
        }
    };
    // podrun has no ConfigMaps or Secrets: a reference finds nothing.
    if let Some(r) = &from.config_map_key_ref {
        return missing("configmap", &r.name, r.optional);
    }
    if let Some(r) = &from.secret_key_ref {
        return missing("secret", &r.name, r.optional);
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
            missing_source("configmap", &r.name, r.optional)?;
        }
        if let Some(r) = &from.secret_ref {
            missing_source("secret", &r.name, r.optional)?;
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

/// The image's environment under the container's, as the runtime sets it
/// (after `$(VAR)` expansion, which sees only the container's own
/// variables): it replaces the defaults (PATH) and adds what the container
/// does not set.
fn with_image_env(
    own: Vec<(String, String)>,
    c: &Container,
    image: Option<&ImageDefaults>,
) -> Vec<(String, String)> {
    let mut out = own;
    let mut at = 2; // after PATH and HOSTNAME
    for (name, value) in image.map(|i| i.env.as_slice()).unwrap_or_default() {
        if c.env.iter().flatten().any(|e| e.name == *name) {
            continue;
        }
        match out.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.clone(),
            None => {
                out.insert(at.min(out.len()), (name.clone(), value.clone()));
                at += 1;
            }
        }
    }
    out
}

fn missing_source(
    kind: &'static str,
    name: &str,
    optional: Option<bool>,
) -> Result<(), ConfigError> {
    if optional == Some(true) {
        Ok(())
    } else {
        Err(ConfigError::NotFound {
            kind,
            name: name.to_owned(),
        })
    }
}

/// A user's name and primary group in the root's `/etc/passwd`.
fn passwd_entry(root: &Path, uid: i64) -> Option<(String, i64)> {
    let path = super::rootfs::secure_join(root, "/etc/passwd").ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[2].parse() != Ok(uid) {
            return None;
        }
        Some((f[0].to_owned(), f[3].parse().ok()?))
    })
}

/// The groups that list `user` as a member in the root's `/etc/group`.
fn member_groups(root: &Path, user: &str) -> Vec<i64> {
    let Ok(path) = super::rootfs::secure_join(root, "/etc/group") else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 4 && f[3].split(',').any(|m| m == user))
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .collect()
}

/// A name's id in the root's `/etc/passwd` or `/etc/group` (field 3).
fn id_of(root: &Path, file: &str, name: &str) -> Option<i64> {
    let path = super::rootfs::secure_join(root, file).ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

/// An image's `User` (`user`, `uid`, `user:group`, `uid:gid`): the uid
/// and the group it names, resolved in the image's root as the runtime
/// resolves them.
fn image_user(root: &Path, spec: &str) -> Result<(i64, Option<i64>), ConfigError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse() {
        Ok(uid) => uid,
        Err(_) => id_of(root, "/etc/passwd", user)
            .ok_or_else(|| ConfigError::NoSuchUser(user.to_owned()))?,
    };
    let gid = match group {
        None => None,
        Some(g) => Some(match g.parse() {
            Ok(gid) => gid,
            Err(_) => id_of(root, "/etc/group", g)
                .ok_or_else(|| ConfigError::NoSuchGroup(g.to_owned()))?,
        }),
    };
    Ok((uid, gid))
}

/// The container's identity: its own securityContext over the pod's, over
/// the image's `User`. As containerd does, without `runAsGroup` (or a group
/// in the image's user) the primary group is the user's in the root's
/// `/etc/passwd`, and the groups listing the user in its `/etc/group` are
/// added.
fn creds(
    root: &Path,
    pod: Option<&PodSecurityContext>,
    own: Option<&SecurityContext>,
    image_user_spec: Option<&str>,
) -> Result<Creds, ConfigError> {
    let run_as_user = own
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    let non_root = own
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let image_user_spec = image_user_spec.filter(|u| !u.is_empty());
    if non_root && run_as_user.is_none() {
        // The kubelet's check: a name cannot be verified before the
        // container runs.
        if let Some(spec) = image_user_spec {
            let user = spec.split(':').next().unwrap_or_default();
            if user.parse::<i64>().is_err() {
                return Err(ConfigError::NonNumericUser(user.to_owned()));
            }
        }
    }
    let (image_uid, image_gid) = match (run_as_user, image_user_spec) {
        (None, Some(spec)) => image_user(root, spec)?,
        _ => (0, None),
    };
    let uid = run_as_user.unwrap_or(image_uid);
    let entry = passwd_entry(root, uid);
    let gid = own
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|p| p.run_as_group))
        .or(image_gid)
        .or(entry.as_ref().map(|(_, gid)| *gid))
        .unwrap_or(0);
    let from_group_file = entry
        .map(|(name, _)| member_groups(root, &name))
        .unwrap_or_default();
    if non_root && uid == 0 {
        return Err(ConfigError::RunAsRoot);
    }
    let mut groups: Vec<u32> = pod
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(pod.and_then(|p| p.fs_group))
        .chain(from_group_file)
        .map(|g| g as u32)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(Creds {
        uid: uid as u32,
        gid: gid as u32,
        groups,
    })
}

fn mounts(
    f: &PodFacts,
    c: &Container,
    env: &[(String, String)],
) -> Result<Vec<BindMount>, ConfigError> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let root = f
            .volumes
            .get(&m.name)
            .ok_or_else(|| ConfigError::UnknownVolume(m.name.clone()))?;
        let sub = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(s), _) if !s.is_empty() => Some(s.to_owned()),
            (_, Some(e)) if !e.is_empty() => Some(expand(e, lookup)),
            _ => None,
        };
        let sub_path = sub.is_some();
        let source = match sub {
            Some(sub) => resolve_subpath(root, &sub)?,
            None => root.clone(),
        };
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => Propagation::Slave,
            Some("Bidirectional") => Propagation::Shared,
            _ => Propagation::Private,
        };
        out.push(BindMount {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
            propagation,
            optional: false,
            sub_path,
            tree: None,
        });
    }
    Ok(out)
}

/// What the container runs, as Kubernetes combines its `command` and
/// `args` (already expanded) with the image's Entrypoint and Cmd (taken as
/// they are): `command` replaces the Entrypoint (and drops the Cmd), `args`
/// replaces the Cmd.
fn command_line(
    command: Vec<String>,
    args: Vec<String>,
    image: Option<&ImageDefaults>,
) -> Vec<String> {
    let Some(image) = image else {
        return command.into_iter().chain(args).collect();
    };
    match (command.is_empty(), args.is_empty()) {
        (false, _) => command.into_iter().chain(args).collect(),
        (true, false) => image.entrypoint.iter().cloned().chain(args).collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The configuration of one container of the pod; `image` is its run's
/// root when the container's image is one of the store's (not `rootfs:`).
pub fn config(
    f: &PodFacts,
    c: &Container,
    image: Option<&ImageRun>,
) -> Result<Config, ConfigError> {
    let name = c.image.as_deref().unwrap_or_default();
    let root = match (Root::is_rootfs(name), image) {
        (true, _) => Root::from_image(name)?,
        (false, Some(run)) => Root::Dir(run.rootfs.clone()),
        (false, None) => return Err(ConfigError::ImageNotReady(name.to_owned())),
    };
    let defaults = image
        .filter(|_| !Root::is_rootfs(name))
        .map(|i| &i.defaults);
    let own = environment(f, c)?;
    let lookup = |name: &str| {
        own.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expanded = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|a| expand(a, lookup)).collect()
    };
    let argv = command_line(expanded(&c.command), expanded(&c.args), defaults);
    if argv.is_empty() {
        return Err(match defaults {
            Some(_) => ConfigError::NoImageCommand,
            None => ConfigError::NoCommand,
        });
    }
    if defaults.is_none() && c.command.as_ref().is_none_or(Vec::is_empty) {
        return Err(ConfigError::NoCommand);
    }
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let mut mounts = mounts(f, c, &own)?;
    let env = with_image_env(own, c, defaults);
    // The pod's own /etc files, unless a volume already mounts there (as
    // the kubelet leaves a container's own /etc/hosts mount alone).
    for (source, target) in f.etc_files {
        if !mounts
            .iter()
            .any(|m| Path::new(&m.target) == Path::new(target))
        {
            mounts.push(BindMount {
                source: source.clone(),
                target: target.clone(),
                read_only: false,
                propagation: Propagation::Private,
                optional: true,
                sub_path: false,
                tree: None,
            });
        }
    }
    let cwd = c
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| defaults.and_then(|d| d.working_dir.clone()))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(Config {
        argv,
        cwd,
        creds: creds(
            root.path(),
            f.pod.spec.security_context.as_ref(),
            sc,
            defaults.and_then(|d| d.user.as_deref()),
        )?,
        caps: caps::effective(sc, f.all_caps)?,
        // Kubernetes allows escalation unless told not to.
        no_new_privs: !privileged && sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        privileged,
        root,
        mounts,
        env,
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

/// Where a container's root is as the parent sees it, for PATH lookups.
pub fn root_path(config: &Config) -> &Path {
    config.root.path()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;

    fn pod(yaml: &str) -> Pod {
        manifest::parse(yaml).unwrap().pod
    }

    fn facts<'a>(pod: &'a Pod, volumes: &'a BTreeMap<String, PathBuf>) -> PodFacts<'a> {
        PodFacts {
            pod,
            uid: "1234",
            hostname: "web",
            node_name: "node-1",
            volumes,
            all_caps: (1 << 41) - 1,
            etc_files: &[],
        }
    }

    #[test]
    fn command_args_and_env_expand_as_kubernetes_does() {
        // A root of its own, so the user lookup does not read the host's.
        let root = std::env::temp_dir().join(format!("podrun-config-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1500::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nextra:x:77:other,app\nnone:x:78:other\n",
        )
        .unwrap();
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: shop}}
spec:
  securityContext: {runAsUser: 1000, supplementalGroups: [5, 4], fsGroup: 4}
  containers:
  - name: c
    image: ROOT
    command: ["sh", "-c"]
    args: ["echo $(GREETING) $(MISSING) $$(GREETING)"]
    workingDir: /tmp
    env:
    - {name: WHO, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: GREETING, value: "hello $(WHO)"}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: OPT, valueFrom: {configMapKeyRef: {name: cm, key: k, optional: true}}}
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
"#;
        let p = pod(&yaml.replace("ROOT", &format!("rootfs:{}", root.display())));
        let volumes = BTreeMap::new();
        let c = config(&facts(&p, &volumes), &p.spec.containers[0], None).unwrap();
        assert_eq!(
            c.argv,
            ["sh", "-c", "echo hello web $(MISSING) $(GREETING)"]
        );
        assert!(c.env.contains(&("APP".to_owned(), "shop".to_owned())));
        assert!(c.env.contains(&("HOSTNAME".to_owned(), "web".to_owned())));
        assert!(!c.env.iter().any(|(k, _)| k == "OPT"));
        assert_eq!(c.cwd, "/tmp");
        assert_eq!(
            c.creds,
            Creds {
                uid: 1000,
                gid: 1500,
                groups: vec![4, 5, 77]
            }
        );
        assert_eq!(c.caps, 1 << 10);
        assert!(c.no_new_privs);
        assert_eq!(c.root, Root::Dir(root.clone()));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn what_podrun_cannot_give_is_a_config_error() {
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: a, image: "rootfs:/", command: [x], env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: k}}}]}
  - {name: b, image: "rootfs:/", command: [x], securityContext: {runAsNonRoot: true}}
  - {name: c, image: "rootfs:/"}
  - {name: d, image: "nginx", command: [x]}
"#);
        let volumes = BTreeMap::new();
        let f = facts(&p, &volumes);
        let errors: Vec<String> = p
            .spec
            .containers
            .iter()
            .map(|c| config(&f, c, None).unwrap_err().to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "secret \"s\" not found",
                "container has runAsNonRoot and image will run as root",
                "the container has no command and a rootfs image has no entrypoint",
                "image \"nginx\" is not ready for this container",
            ]
        );
    }

    #[test]
    fn an_images_config_gives_the_defaults_kubernetes_keeps() {
        let root = std::env::temp_dir().join(format!("podrun-image-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nwww:x:33:33::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: both, image: "busybox:1.36", command: [echo], args: [hi]}
  - {name: command, image: "busybox:1.36", command: [echo]}
  - {name: args, image: "busybox:1.36", args: [-c, "echo $(GREETING)"], env: [{name: GREETING, value: "hi $(HOME)"}, {name: HOME, value: /home/x}]}
  - {name: neither, image: "busybox:1.36", workingDir: /srv}
  - {name: uid, image: "busybox:1.36", securityContext: {runAsUser: 7, runAsNonRoot: true}}
  - {name: nonroot, image: "busybox:1.36", securityContext: {runAsNonRoot: true}}
"#);
        let volumes = BTreeMap::new();
        let etc = [(PathBuf::from("/pod/etc/hosts"), "/etc/hosts".to_owned())];
        let f = PodFacts {
            etc_files: &etc,
            ..facts(&p, &volumes)
        };
        let run = ImageRun {
            rootfs: root.clone(),
            defaults: ImageDefaults {
                entrypoint: vec!["/bin/sh".to_owned()],
                // Taken as it is: no $(VAR) expansion of the image's own.
                cmd: vec!["-c".to_owned(), "echo default $(HOME) $$".to_owned()],
                env: vec![
                    ("PATH".to_owned(), "/image/bin".to_owned()),
                    ("HOME".to_owned(), "/root".to_owned()),
                    ("LANG".to_owned(), "C".to_owned()),
                ],
                working_dir: Some("/work".to_owned()),
                user: Some("www:staff".to_owned()),
            },
        };
        let cfg = |i: usize| config(&f, &p.spec.containers[i], Some(&run));
        assert_eq!(cfg(0).unwrap().argv, ["echo", "hi"]);
        assert_eq!(
            cfg(1).unwrap().argv,
            ["echo"],
            "command drops the image's Cmd"
        );
        let args = cfg(2).unwrap();
        assert_eq!(args.argv, ["/bin/sh", "-c", "echo hi $(HOME)"]);
        // The image's environment under the container's, one entry each.
        let env: BTreeMap<_, _> = args.env.iter().cloned().collect();
        assert_eq!(env.len(), args.env.len());
        assert_eq!(env["PATH"], "/image/bin");
        assert_eq!(env["HOME"], "/home/x");
        assert_eq!(env["LANG"], "C");
        let neither = cfg(3).unwrap();
        assert_eq!(neither.argv, ["/bin/sh", "-c", "echo default $(HOME) $$"]);
        assert_eq!(neither.cwd, "/srv");
        assert_eq!(args.cwd, "/work");
        assert_eq!(neither.root, Root::Dir(root.clone()));
        assert_eq!((neither.creds.uid, neither.creds.gid), (33, 50));
        assert_eq!(cfg(4).unwrap().creds.uid, 7);
        assert_eq!(
            cfg(5).unwrap_err().to_string(),
            "container has runAsNonRoot and image has non-numeric user (www), cannot verify user is non-root"
        );
        assert!(neither.mounts.iter().any(|m| m.target == "/etc/hosts"));
        let unknown = ImageRun {
            defaults: ImageDefaults {
                user: Some("nobody-here".to_owned()),
                ..run.defaults.clone()
            },
            ..run.clone()
        };
        assert_eq!(
            config(&f, &p.spec.containers[3], Some(&unknown))
                .unwrap_err()
                .to_string(),
            "unable to find user nobody-here: no matching entries in passwd file"
        );
        let empty = ImageRun {
            defaults: ImageDefaults::default(),
            ..run.clone()
        };
        assert_eq!(
            config(&f, &p.spec.containers[3], Some(&empty))
                .unwrap_err()
                .to_string(),
            "no command specified"
        );
        assert_eq!(
            config(&f, &p.spec.containers[3], None)
                .unwrap_err()
                .to_string(),
            "image \"busybox:1.36\" is not ready for this container"
        );
        std::fs::remove_dir_all(&root).unwrap();
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
