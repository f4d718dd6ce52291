//! The pod's state on disk (`/run/podrun/<name>/state.json`), written
//! atomically on every change, so `status` and `down` work from it even
//! when the supervisor is gone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::PodStatus;
use serde::{Deserialize, Serialize};

use crate::paths::PodDirs;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no pod named {0:?} (no {1})")]
    NoPod(String, PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a podrun state file: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A `logs` or `exec` that names no container of the pod, or one in no
/// state for it (as kubectl words it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "a container name must be specified for pod {pod}, choose one of: [{apps}] or one of the init containers: [{inits}]"
    )]
    Ambiguous {
        pod: String,
        apps: String,
        inits: String,
    },
    #[error("container {container} is not valid for pod {pod}")]
    Unknown { pod: String, container: String },
    #[error("container {container:?} in pod {pod:?} is waiting to start")]
    Waiting { pod: String, container: String },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
    #[error("container {container:?} in pod {pod:?} is not running")]
    NotRunning { pod: String, container: String },
    #[error("pod {0:?} has no containers")]
    Empty(String),
}

/// A container run's log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub container: String,
    pub restart_count: u32,
    pub path: PathBuf,
    /// That run is the current one and still running.
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// The current run's main process, while it runs.
    pub pid: Option<u32>,
    pub restart_count: u32,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub enforced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub supervisor_pid: u32,
    /// When the supervisor started (`/proc/<pid>/stat` starttime, in clock
    /// ticks since boot): with the pid, it names that process and no
    /// other that reuses the pid later.
    #[serde(default)]
    pub supervisor_start: u64,
    pub dirs: PodDirs,
    /// The pod's cgroup directory.
    pub cgroup: PathBuf,
    pub limits: Limits,
    pub containers: BTreeMap<String, ContainerState>,
    /// The init containers that are sidecars (`restartPolicy: Always`).
    #[serde(default)]
    pub sidecars: Vec<String>,
    /// The app containers, in order.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Volume name → where its data is on the host.
    #[serde(default)]
    pub volumes: BTreeMap<String, PathBuf>,
    /// The pod as a v1 Pod (its metadata and spec), for what needs the
    /// manifest later (`podrun exec`).
    #[serde(default)]
    pub pod: Option<serde_json::Value>,
    /// The plan the pod runs with (`podrun plan -o json`'s shape).
    #[serde(default)]
    pub plan: Option<serde_json::Value>,
    pub status: PodStatus,
    /// The pod reached a terminal phase.
    pub finished: bool,
    /// Everything but this state and the logs has been removed.
    pub torn_down: bool,
}

impl State {
    /// Whether this pod's supervisor is still running.
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor_pid != std::process::id()
            && start_time(self.supervisor_pid) == Some(self.supervisor_start)
    }

    /// Replaces the state file: a reader sees the old or the new file,
    /// never a partial one.
    pub fn save(&self) -> Result<(), StateError> {
        let path = PodDirs::state_file(&self.name);
        let tmp = path.with_extension("json.tmp");
        let io = |source| StateError::Io {
            path: tmp.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        fs::rename(&tmp, &path).map_err(|source| StateError::Io { path, source })
    }

    fn init_names(&self) -> impl Iterator<Item = &str> {
        self.status
            .init_container_statuses
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
    }

    /// The container a `logs` means: the one named, or the only app.
    fn named(&self, container: Option<&str>) -> Result<String, TargetError> {
        let name = match container {
            Some(c) => c.to_owned(),
            None if self.apps.len() == 1 => self.apps[0].clone(),
            None => {
                return Err(TargetError::Ambiguous {
                    pod: self.name.clone(),
                    apps: self.apps.join(" "),
                    inits: self.init_names().collect::<Vec<_>>().join(" "),
                });
            }
        };
        if self.apps.contains(&name) || self.init_names().any(|n| n == name) {
            Ok(name)
        } else {
            Err(TargetError::Unknown {
                pod: self.name.clone(),
                container: name,
            })
        }
    }

    /// The log `podrun logs` reads: the container's current run, or the
    /// one before it.
    pub fn log_target(
        &self,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogTarget, TargetError> {
        let name = self.named(container)?;
        let Some(run) = self.containers.get(&name) else {
            return Err(TargetError::Waiting {
                pod: self.name.clone(),
                container: name,
            });
        };
        let restart_count = if previous {
            run.restart_count
                .checked_sub(1)
                .ok_or_else(|| TargetError::NoPrevious {
                    pod: self.name.clone(),
                    container: name.clone(),
                })?
        } else {
            run.restart_count
        };
        Ok(LogTarget {
            path: self.dirs.log_file(&name, restart_count),
            running: !previous && run.pid.is_some() && !self.finished,
            container: name,
            restart_count,
        })
    }

    /// The container `podrun exec` runs in (the first app when none is
    /// named) and its main process.
    pub fn exec_target(&self, container: Option<&str>) -> Result<(String, u32), TargetError> {
        let name = match container {
            Some(c) => self.named(Some(c))?,
            None => self
                .apps
                .first()
                .cloned()
                .ok_or_else(|| TargetError::Empty(self.name.clone()))?,
        };
        match self.containers.get(&name).and_then(|c| c.pid) {
            Some(pid) if !self.finished => Ok((name, pid)),
            _ => Err(TargetError::NotRunning {
                pod: self.name.clone(),
                container: name,
            }),
        }
    }

    /// Records an applied image in the pod's spec, so that what reads the
    /// state (`podrun image rm`, `apply`) sees the image the pod uses now.
    pub fn set_image(&mut self, container: &str, image: &str) {
        let Some(spec) = self.pod.as_mut().and_then(|p| p.get_mut("spec")) else {
            return;
        };
        for list in ["initContainers", "containers"] {
            for c in spec
                .get_mut(list)
                .and_then(|l| l.as_array_mut())
                .into_iter()
                .flatten()
            {
                if c.get("name").and_then(|n| n.as_str()) == Some(container) {
                    c["image"] = serde_json::Value::String(image.to_owned());
                }
            }
        }
    }

    pub fn load(name: &str) -> Result<State, StateError> {
        let path = PodDirs::state_file(name);
        load_from(name, &path)
    }
}

/// The state of pod `name` from the state file at `path`.
pub(crate) fn load_from(name: &str, path: &Path) -> Result<State, StateError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::NoPod(name.to_owned(), path.to_owned()));
        }
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|source| StateError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// The pods that have state, by name.
pub fn names() -> Vec<String> {
    names_in(Path::new(crate::paths::RUN_ROOT))
}

/// The pods that have a state file under `run_root`, by name.
pub(crate) fn names_in(run_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(run_root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("state.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The images the pods under `run_root` may still use (every pod but those
/// finished and torn down: a finished pod whose teardown failed may still
/// have its overlays mounted on the layers), each with its pod's name.
pub fn images_in_use_under(run_root: &Path) -> Vec<(String, String)> {
    names_in(run_root)
        .iter()
        .filter_map(|name| load_from(name, &run_root.join(name).join("state.json")).ok())
        .filter(|s| !(s.finished && s.torn_down))
        .flat_map(|s| {
            pod_images(s.pod.as_ref())
                .into_iter()
                .map(move |image| (s.name.clone(), image))
        })
        .collect()
}

/// [`images_in_use_under`] the pods of this machine.
pub fn images_in_use() -> Vec<(String, String)> {
    images_in_use_under(Path::new(crate::paths::RUN_ROOT))
}

/// The images a pod's spec (as the state keeps it) names.
fn pod_images(pod: Option<&serde_json::Value>) -> Vec<String> {
    let Some(spec) = pod.and_then(|p| p.get("spec")) else {
        return Vec::new();
    };
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(k)?.as_array())
        .flatten()
        .filter_map(|c| c.get("image")?.as_str().map(str::to_owned))
        .collect()
}

/// A process's start time (field 22 of `/proc/<pid>/stat`); `None` once it
/// is gone (or a zombie).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    // starttime is field 22; the state just read was field 3.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(apps: &[&str], inits: &[&str], runs: &[(&str, Option<u32>, u32)]) -> State {
        let statuses = |names: &[&str]| {
            names
                .iter()
                .map(|n| crate::api::ContainerStatus {
                    name: (*n).to_owned(),
                    ..Default::default()
                })
                .collect()
        };
        State {
            name: "p".to_owned(),
            namespace: "default".to_owned(),
            uid: "u".to_owned(),
            supervisor_pid: 1,
            supervisor_start: 0,
            dirs: PodDirs::new("p", "u"),
            cgroup: PathBuf::from("/sys/fs/cgroup/podrun/u"),
            limits: Limits {
                enforced: true,
                reason: None,
            },
            containers: runs
                .iter()
                .map(|(n, pid, restarts)| {
                    let state = ContainerState {
                        pid: *pid,
                        restart_count: *restarts,
                        log: PathBuf::new(),
                    };
                    ((*n).to_owned(), state)
                })
                .collect(),
            sidecars: Vec::new(),
            apps: apps.iter().map(|a| (*a).to_owned()).collect(),
            volumes: BTreeMap::new(),
            pod: None,
            plan: None,
            status: PodStatus {
                init_container_statuses: Some(statuses(inits)),
                container_statuses: Some(statuses(apps)),
                ..Default::default()
            },
            finished: false,
            torn_down: false,
        }
    }

    #[test]
    fn logs_and_exec_find_their_container_as_kubectl_does() {
        let one = pod(
            &["app"],
            &["init"],
            &[("app", Some(10), 2), ("init", None, 0)],
        );
        let current = one.log_target(None, false).unwrap();
        assert_eq!(current.container, "app");
        assert_eq!(current.restart_count, 2);
        assert!(current.running);
        assert_eq!(
            current.path,
            Path::new("/var/log/podrun/p_u/app/2.log"),
            "the run's own file"
        );
        let previous = one.log_target(Some("app"), true).unwrap();
        assert_eq!((previous.restart_count, previous.running), (1, false));
        assert!(!one.log_target(Some("init"), false).unwrap().running);
        assert_eq!(
            one.log_target(Some("init"), true).unwrap_err().to_string(),
            "previous terminated container \"init\" in pod \"p\" not found"
        );
        assert_eq!(
            one.log_target(Some("nope"), false).unwrap_err().to_string(),
            "container nope is not valid for pod p"
        );
        assert_eq!(one.exec_target(None).unwrap(), ("app".to_owned(), 10));
        assert_eq!(
            one.exec_target(Some("init")).unwrap_err().to_string(),
            "container \"init\" in pod \"p\" is not running"
        );

        let two = pod(&["a", "b"], &["side"], &[("a", Some(1), 0)]);
        assert_eq!(
            two.log_target(None, false).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [side]"
        );
        assert_eq!(
            two.log_target(Some("b"), false).unwrap_err().to_string(),
            "container \"b\" in pod \"p\" is waiting to start"
        );
        assert_eq!(two.exec_target(None).unwrap(), ("a".to_owned(), 1));
        let mut over = two.clone();
        over.finished = true;
        assert!(over.exec_target(None).is_err());
        assert!(!over.log_target(Some("a"), false).unwrap().running);
        assert_eq!(
            pod(&[], &[], &[])
                .exec_target(None)
                .unwrap_err()
                .to_string(),
            "pod \"p\" has no containers"
        );
    }

    #[test]
    fn an_applied_image_is_recorded_in_the_spec() {
        let mut s = pod(&["app"], &["side"], &[]);
        s.pod = Some(serde_json::json!({"spec": {
            "initContainers": [{"name": "side", "image": "a:1"}],
            "containers": [{"name": "app", "image": "b:1"}]}}));
        s.set_image("side", "a:2");
        let spec = &s.pod.as_ref().unwrap()["spec"];
        assert_eq!(spec["initContainers"][0]["image"], "a:2");
        assert_eq!(spec["containers"][0]["image"], "b:1");
    }

    #[test]
    fn pod_images_from_the_pod_json() {
        let pod = serde_json::json!({"spec": {
            "initContainers": [{"name": "i", "image": "busybox:1.36"}],
            "containers": [{"name": "a", "image": "rootfs:/"}, {"name": "b"}]
        }});
        assert_eq!(pod_images(Some(&pod)), ["busybox:1.36", "rootfs:/"]);
        assert!(pod_images(None).is_empty());
    }

    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_none() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
