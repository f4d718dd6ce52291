//! Kubernetes-style events of a pod (Scheduled, Pulled, Created, Started,
//! Killing, Unhealthy, Failed, ...), kept as JSON lines in the pod's run
//! directory for `podrun events`, beside the lines `up` prints.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub const EVENTS_FILE: &str = "events.jsonl";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub time: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `pod/NAME` or `spec.containers{NAME}` as kubectl shows the object.
    pub object: String,
    pub message: String,
}

/// Appends events to the pod's file; a write that fails is logged, never
/// fatal.
pub struct Recorder {
    file: Option<fs::File>,
    /// Every event so far, for the API's watchers.
    recorded: Vec<Record>,
}

impl Recorder {
    pub fn open(run_dir: &Path) -> Recorder {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join(EVENTS_FILE))
            .map_err(|e| tracing::warn!("events: {e}"))
            .ok();
        Recorder {
            file,
            recorded: Vec::new(),
        }
    }

    pub fn recorded(&self) -> &[Record] {
        &self.recorded
    }

    pub fn record(&mut self, warning: bool, reason: &str, object: String, message: String) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| Timestamp::from_second(d.as_secs() as i64).ok())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let record = Record {
            time,
            type_: if warning { "Warning" } else { "Normal" }.to_owned(),
            reason: reason.to_owned(),
            object,
            message,
        };
        if let Some(f) = &mut self.file {
            let mut line = serde_json::to_vec(&record).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = f.write_all(&line) {
                tracing::warn!("events: {e}");
            }
        }
        self.recorded.push(record);
    }
}

/// The events of a pod's run directory, oldest first.
pub fn read(run_dir: &Path) -> Vec<Record> {
    fs::read_to_string(run_dir.join(EVENTS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
