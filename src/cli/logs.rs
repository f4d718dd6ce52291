//! `podrun logs NAME [CONTAINER]`: a container's output from its CRI log
//! files, as `kubectl logs` shows it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use podrun::supervisor::state::State;

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// The container; may be left out when the pod has one app container
    container: Option<String>,
    /// Keep printing new output until the container's run ends
    #[arg(short, long)]
    follow: bool,
    /// The previous run of the container (before its last restart)
    #[arg(short, long)]
    previous: bool,
    /// Start each line with its RFC3339 timestamp
    #[arg(long)]
    timestamps: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
}

/// Whole lines of a CRI log: partial records joined up to their `F`.
#[derive(Default)]
struct Reader {
    pending: Vec<u8>,
    line: Vec<u8>,
    first_stamp: Option<String>,
}

impl Reader {
    /// Takes bytes of the file; returns the complete lines (timestamp, text).
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let record: Vec<u8> = self.pending.drain(..=nl).collect();
            let record = &record[..record.len() - 1];
            let mut parts = record.splitn(4, |b| *b == b' ');
            let (Some(stamp), Some(_stream), Some(tag)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let content = parts.next().unwrap_or_default();
            let stamp = String::from_utf8_lossy(stamp).into_owned();
            self.first_stamp.get_or_insert(stamp);
            self.line.extend_from_slice(content);
            if tag == b"F" {
                let stamp = self.first_stamp.take().unwrap_or_default();
                out.push((stamp, std::mem::take(&mut self.line)));
            }
        }
        out
    }
}

fn print(lines: &[(String, Vec<u8>)], timestamps: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (stamp, text) in lines {
        if timestamps {
            write!(out, "{stamp} ")?;
        }
        out.write_all(text)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

pub fn run(args: Args) -> Result<(), Failure> {
    super::check_name(&args.name)?;
    let state = State::load(&args.name).map_err(|e| Failure::Input(e.to_string()))?;
    let name = match args.container {
        Some(c) => c,
        None if state.apps.len() == 1 => state.apps[0].clone(),
        None => {
            let inits: Vec<String> = state
                .status
                .init_container_statuses
                .iter()
                .flatten()
                .map(|s| s.name.clone())
                .collect();
            return Err(Failure::Input(format!(
                "a container name must be specified for pod {}, choose one of: [{}] or one of the init containers: [{}]",
                state.name,
                state.apps.join(" "),
                inits.join(" ")
            )));
        }
    };
    let known = state.apps.contains(&name)
        || state
            .status
            .init_container_statuses
            .iter()
            .flatten()
            .any(|s| s.name == name);
    if !known {
        return Err(Failure::Input(format!(
            "container {name} is not valid for pod {}",
            state.name
        )));
    }
    let Some(run) = state.containers.get(&name) else {
        return Err(Failure::Input(format!(
            "container {name:?} in pod {:?} is waiting to start",
            state.name
        )));
    };
    let count = if args.previous {
        run.restart_count.checked_sub(1).ok_or_else(|| {
            Failure::Input(format!(
                "previous terminated container {name:?} in pod {:?} not found",
                state.name
            ))
        })?
    } else {
        run.restart_count
    };
    let path: PathBuf = state.dirs.logs.join(&name).join(format!("{count}.log"));
    let mut file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
    let mut reader = Reader::default();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("{}", path.display()))?;
    let mut lines = reader.feed(&bytes);
    if let Some(n) = args.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    print(&lines, args.timestamps).context("writing")?;
    if !args.follow || args.previous {
        return Ok(());
    }
    // Follow until this run has ended and its file is read to the end.
    loop {
        let ended = State::load(&args.name)
            .map(|s| {
                s.finished
                    || s.containers
                        .get(&name)
                        .is_none_or(|c| c.pid.is_none() || c.restart_count != count)
            })
            .unwrap_or(true);
        let pos = file.stream_position().unwrap_or(0);
        let mut more = Vec::new();
        let _ = file.seek(SeekFrom::Start(pos));
        let _ = file.read_to_end(&mut more);
        print(&reader.feed(&more), args.timestamps).context("writing")?;
        if ended && more.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_records_are_joined_and_split_reads_do_not_matter() {
        let text = b"2026-01-01T00:00:00.1Z stdout P hel\n2026-01-01T00:00:00.2Z stdout F lo\n2026-01-01T00:00:01Z stderr F oops\n";
        let mut r = Reader::default();
        let mut lines = Vec::new();
        for chunk in text.chunks(7) {
            lines.extend(r.feed(chunk));
        }
        assert_eq!(
            lines,
            [
                ("2026-01-01T00:00:00.1Z".to_owned(), b"hello".to_vec()),
                ("2026-01-01T00:00:01Z".to_owned(), b"oops".to_vec()),
            ]
        );
    }
}
