//! The pod's state on disk (`/run/podrun/<name>/state.json`), written
//! atomically on every change, so `status` and `down` work from it even
//! when the supervisor is gone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::PodStatus;
use serde::{Deserialize, Serialize};

use crate::sandbox::pod::PodDirs;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

    pub fn load(name: &str) -> Result<State, StateError> {
        let path = PodDirs::state_file(name);
        load_from(name, &path)
    }
}

fn load_from(name: &str, path: &Path) -> Result<State, StateError> {
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
    let mut names: Vec<String> = fs::read_dir(crate::sandbox::pod::RUN_ROOT)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("state.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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

    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_none() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
