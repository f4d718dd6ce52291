//! What a container's process runs as, from the runtime's configuration of
//! it (`api::runtime::ContainerConfig`, already resolved by the kubelet
//! half) and its image: the command line and environment with the image's
//! defaults under the container's own, the working directory, identity
//! (users and groups looked up in the root), capabilities and the volume
//! mounts on the host. An error here is a `CreateContainerError`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::caps::{self, CapsError};
use super::rootfs::{BindMount, Propagation, Root, RootfsError};
use super::spawn::Creds;
use crate::api::runtime::{self, ContainerConfig, Security, is_rootfs};
use crate::sandbox::volumes::{VolumeError, is_projected, resolve_subpath};

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

/// What the sandbox gives each of its containers.
#[derive(Debug, Clone)]
pub struct SandboxFacts<'a> {
    /// Volume name → where its data is on the host.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// Every capability podrun can pass on.
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

/// The image's environment under the container's, as the runtime sets it
/// (after `$(VAR)` expansion, which sees only the container's own
/// variables): it replaces the defaults (PATH) and adds what the container
/// does not set.
fn with_image_env(c: &ContainerConfig, image: Option<&ImageDefaults>) -> Vec<(String, String)> {
    let mut out = c.env.clone();
    let mut at = 2; // after PATH and HOSTNAME
    for (name, value) in image.map(|i| i.env.as_slice()).unwrap_or_default() {
        if c.own_env.contains(name) {
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
    security: &Security,
    image_user_spec: Option<&str>,
) -> Result<Creds, ConfigError> {
    let run_as_user = security.run_as_user;
    let non_root = security.run_as_non_root;
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
    let gid = security
        .run_as_group
        .or(image_gid)
        .or(entry.as_ref().map(|(_, gid)| *gid))
        .unwrap_or(0);
    let from_group_file = entry
        .filter(|_| !security.strict_groups)
        .map(|(name, _)| member_groups(root, &name))
        .unwrap_or_default();
    if non_root && uid == 0 {
        return Err(ConfigError::RunAsRoot);
    }
    let mut groups: Vec<u32> = security
        .supplemental_groups
        .iter()
        .copied()
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

/// The volume mounts, on the host: each volume's data, or a subPath
/// resolved inside it (which must not leave it).
fn mounts(f: &SandboxFacts, c: &ContainerConfig) -> Result<Vec<BindMount>, ConfigError> {
    let mut out = Vec::new();
    for m in &c.mounts {
        let root = f
            .volumes
            .get(&m.volume)
            .ok_or_else(|| ConfigError::UnknownVolume(m.volume.clone()))?;
        // A subPath into a configMap, secret, downwardAPI or projected
        // volume follows its `..data` links, inside the volume.
        let source = match &m.sub_path {
            Some(sub) => resolve_subpath(root, sub)?,
            None => root.clone(),
        };
        // Those volumes are always read-only, as the kubelet mounts them;
        // podrun may still make mount points in one for the volumes
        // mounted beneath it (not in a subPath of it).
        let projected = is_projected(root);
        out.push(BindMount {
            source,
            target: m.container_path.clone(),
            read_only: m.read_only || projected,
            mount_points: projected && m.sub_path.is_none(),
            propagation: match m.propagation {
                runtime::Propagation::None => Propagation::Private,
                runtime::Propagation::HostToContainer => Propagation::Slave,
                runtime::Propagation::Bidirectional => Propagation::Shared,
            },
            optional: false,
            sub_path: m.sub_path.is_some(),
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

/// How container `c` runs; `image` is its run's root when its image is
/// one of the store's (not `rootfs:`).
pub fn config(
    f: &SandboxFacts,
    c: &ContainerConfig,
    image: Option<&ImageRun>,
) -> Result<Config, ConfigError> {
    let root = match (is_rootfs(&c.image), image) {
        (true, _) => Root::from_image(&c.image)?,
        (false, Some(run)) => Root::Dir(run.rootfs.clone()),
        (false, None) => return Err(ConfigError::ImageNotReady(c.image.clone())),
    };
    let defaults = image.filter(|_| !is_rootfs(&c.image)).map(|i| &i.defaults);
    let argv = command_line(c.command.clone(), c.args.clone(), defaults);
    if argv.is_empty() {
        return Err(match defaults {
            Some(_) => ConfigError::NoImageCommand,
            None => ConfigError::NoCommand,
        });
    }
    if defaults.is_none() && c.command.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    let sc = &c.security;
    let mut mounts = mounts(f, c)?;
    let env = with_image_env(c, defaults);
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
                mount_points: false,
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
        .or_else(|| defaults.and_then(|d| d.working_dir.clone()))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(Config {
        argv,
        cwd,
        creds: creds(root.path(), sc, defaults.and_then(|d| d.user.as_deref()))?,
        caps: caps::effective(sc, f.all_caps)?,
        no_new_privs: sc.no_new_privs,
        read_only_root: sc.read_only_root,
        privileged: sc.privileged,
        root,
        mounts,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, Pod};
    use crate::pod::container::PodFacts;

    fn pod(yaml: &str) -> Pod {
        manifest::parse(yaml).unwrap().pod
    }

    fn facts<'a>(volumes: &'a BTreeMap<String, PathBuf>) -> SandboxFacts<'a> {
        SandboxFacts {
            volumes,
            all_caps: (1 << 41) - 1,
            etc_files: &[],
        }
    }

    /// Container `c` of pod `p` as the kubelet half compiles it and this
    /// runtime configures it.
    fn configure(
        f: &SandboxFacts,
        p: &Pod,
        i: usize,
        run: Option<&ImageRun>,
    ) -> Result<Config, String> {
        let c = &p.spec.containers[i];
        let pod_facts = PodFacts {
            pod: p,
            uid: "1234",
            hostname: "web",
            node_name: "node-1",
            addresses: &Default::default(),
        };
        let compiled =
            crate::pod::container::config(&pod_facts, &crate::pod::projection::Given::nothing(), c)
                .map_err(|e| e.to_string())?;
        config(f, &compiled, run).map_err(|e| e.to_string())
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
        let c = configure(&facts(&volumes), &p, 0, None).unwrap();
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
        // Strict: the pod's groups only, not the image's /etc/group too.
        let strict = yaml.replace(
            "fsGroup: 4}",
            "fsGroup: 4, supplementalGroupsPolicy: Strict}",
        );
        let p = pod(&strict.replace("ROOT", &format!("rootfs:{}", root.display())));
        let c = configure(&facts(&volumes), &p, 0, None).unwrap();
        assert_eq!(c.creds.groups, [4, 5]);
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
        let f = facts(&volumes);
        let errors: Vec<String> = (0..p.spec.containers.len())
            .map(|i| configure(&f, &p, i, None).unwrap_err())
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
        let f = SandboxFacts {
            etc_files: &etc,
            ..facts(&volumes)
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
        let cfg = |i: usize| configure(&f, &p, i, Some(&run));
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
            cfg(5).unwrap_err(),
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
            configure(&f, &p, 3, Some(&unknown)).unwrap_err(),
            "unable to find user nobody-here: no matching entries in passwd file"
        );
        let empty = ImageRun {
            defaults: ImageDefaults::default(),
            ..run.clone()
        };
        assert_eq!(
            configure(&f, &p, 3, Some(&empty)).unwrap_err(),
            "no command specified"
        );
        assert_eq!(
            configure(&f, &p, 3, None).unwrap_err(),
            "image \"busybox:1.36\" is not ready for this container"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_projected_volume_is_mounted_read_only_whatever_the_mount_says() {
        let pod_dir = tempfile::tempdir().unwrap();
        let volume = crate::api::runtime::Volume {
            name: "cfg".to_owned(),
            source: crate::api::runtime::VolumeSource::Projected {
                files: vec![crate::api::runtime::ProjectedFile {
                    path: "app.conf".to_owned(),
                    mode: 0o644,
                    data: b"x=1".to_vec(),
                }],
                memory: false,
                fs_group: None,
            },
        };
        let cfg = crate::sandbox::volumes::set_up(pod_dir.path(), &volume).unwrap();
        let scratch = pod_dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let volumes = BTreeMap::from([
            ("cfg".to_owned(), cfg.host_path.clone()),
            ("scratch".to_owned(), scratch.clone()),
        ]);
        let p = pod(r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes: [{name: cfg, emptyDir: {}}, {name: scratch, emptyDir: {}}]
  containers:
  - name: c
    image: "rootfs:/"
    command: [x]
    volumeMounts:
    - {name: cfg, mountPath: /etc/app, readOnly: false}
    - {name: cfg, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: scratch, mountPath: /scratch}
"#);
        let c = configure(&facts(&volumes), &p, 0, None).unwrap();
        let at = |target: &str| c.mounts.iter().find(|m| m.target == target).unwrap();
        assert!(at("/etc/app").read_only && at("/etc/app").mount_points);
        let sub = at("/etc/app.conf");
        assert!(sub.read_only && sub.sub_path && !sub.mount_points);
        let data = std::fs::read_link(cfg.host_path.join("..data")).unwrap();
        assert_eq!(
            sub.source,
            std::fs::canonicalize(cfg.host_path.join(data).join("app.conf")).unwrap(),
            "the file in the timestamped directory"
        );
        assert!(!at("/scratch").read_only && !at("/scratch").mount_points);
    }
}
