//! Kubernetes-style events of a pod (Scheduled, Pulled, Created, Started,
//! Killing, Unhealthy, Failed, ...), kept as JSON lines in the pod's run
//! directory for `podrun events`, beside the lines `up` prints.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub const EVENTS_FILE: &str = "events.jsonl";

/// The most recent events kept in memory for the API (a crash-looping pod
/// records events for as long as it runs; the file keeps them all).
const KEPT: usize = 1024;

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
    /// The latest events, for the API's watchers.
    kept: VecDeque<Record>,
    /// How many events were recorded in all.
    total: usize,
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
            kept: VecDeque::new(),
            total: 0,
        }
    }

    /// How many events were recorded in all (a watcher's position).
    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept events from position `from` on (the oldest kept when
    /// `from` is older).
    pub fn since(&self, from: usize) -> impl Iterator<Item = &Record> {
        let first = self.total - self.kept.len();
        self.kept.iter().skip(from.saturating_sub(first))
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
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(record);
        self.total += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_and_counts_all() {
        let dir = std::env::temp_dir().join(format!("podrun-events-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut r = Recorder::open(&dir);
        for i in 0..KEPT + 5 {
            r.record(false, "Started", "pod/p".to_owned(), i.to_string());
        }
        assert_eq!(r.total(), KEPT + 5);
        let first: Vec<_> = r.since(0).map(|e| e.message.clone()).collect();
        assert_eq!(first.len(), KEPT);
        assert_eq!(first[0], "5");
        let last: Vec<_> = r.since(KEPT + 3).map(|e| e.message.clone()).collect();
        assert_eq!(last, [(KEPT + 3).to_string(), (KEPT + 4).to_string()]);
        assert_eq!(r.since(KEPT + 5).count(), 0);
        assert_eq!(read(&dir).len(), KEPT + 5);
        fs::remove_dir_all(&dir).unwrap();
    }
}
