//! `podrun logs NAME [CONTAINER]`: a container's output from its CRI log
//! files, as `kubectl logs` shows it. While the pod runs, the file comes
//! from its supervisor over the socket API, which also says when a
//! followed run is over; after, it is read from disk.

use std::io::{Read, Write};

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use podrun::api::{self, client::Client};

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
    let state = super::load(&args.name)?;
    if !state.supervisor_alive() {
        // The pod is over: its files are all there is, and final.
        let target = state
            .log_target(args.container.as_deref(), args.previous)
            .map_err(|e| Failure::Input(e.to_string()))?;
        let file = std::fs::File::open(&target.path)
            .with_context(|| format!("{}", target.path.display()))?;
        return show(file, &args, None);
    }
    let mut client = super::connect(&state)?;
    let request = serde_json::json!({
        "version": api::VERSION,
        "op": "logs",
        "container": args.container,
        "previous": args.previous,
        "follow": args.follow,
    });
    let (reply, mut fds) = client.call(&request, &[])?;
    let file = fds
        .pop()
        .map(std::fs::File::from)
        .ok_or_else(|| anyhow!("the supervisor sent no log file"))?;
    let follow = (args.follow && reply.ended != Some(true)).then_some(&mut client);
    show(file, &args, follow)
}

/// Prints the log (its last `--tail` lines); with a client, keeps printing
/// what is added until the supervisor says the run has ended (or is gone).
fn show(mut file: std::fs::File, args: &Args, follow: Option<&mut Client>) -> Result<(), Failure> {
    let mut reader = Reader::default();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).context("reading the log")?;
    let mut lines = reader.feed(&bytes);
    if let Some(n) = args.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    print(&lines, args.timestamps).context("writing")?;
    let Some(client) = follow else {
        return Ok(());
    };
    loop {
        // The file grows as the container writes; the socket says when the
        // run is over (every line written is in the file by then).
        let mut fds = [PollFd::new(client.fd(), PollFlags::POLLIN)];
        let polled = if client.has_reply() {
            Ok(1)
        } else {
            poll(&mut fds, PollTimeout::from(100u8))
        };
        let ended = match polled {
            Ok(0) | Err(Errno::EINTR) => false,
            Ok(_) => match client.reply().map_err(anyhow::Error::from)? {
                Some((reply, _)) => reply.ended == Some(true),
                None => true,
            },
            Err(e) => return Err(anyhow!("poll: {e}").into()),
        };
        let mut more = Vec::new();
        file.read_to_end(&mut more).context("reading the log")?;
        print(&reader.feed(&more), args.timestamps).context("writing")?;
        if ended {
            return Ok(());
        }
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
