//! The CRI log format the kubelet reads (`kubectl logs`):
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`, one record
//! per line of output; `P` marks a piece of a line too long to hold (or cut
//! by the stream's end), `F` the piece that ends it.

use std::fmt;

/// Longest piece of a line kept before it is written as a partial record
/// (containerd's and conmon's buffer size).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// One CRI record: a line (or a piece of one) without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub content: Vec<u8>,
    pub partial: bool,
}

impl Record {
    /// The record as the log file holds it, stamped with `timestamp`
    /// (RFC3339 with nanoseconds, trailing zeros trimmed, as Go writes it).
    pub fn encode(&self, timestamp: &str, stream: Stream) -> Vec<u8> {
        let tag = if self.partial { "P" } else { "F" };
        let mut out = Vec::with_capacity(self.content.len() + timestamp.len() + 12);
        out.extend_from_slice(format!("{timestamp} {stream} {tag} ").as_bytes());
        out.extend_from_slice(&self.content);
        out.push(b'\n');
        out
    }
}

/// Cuts a stream's bytes into records, however the reads happen to split it.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Takes the next chunk read from the stream; returns the records it
    /// completes. A line longer than [`MAX_LINE`] is given out in pieces.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<Record> {
        let mut records = Vec::new();
        while !chunk.is_empty() {
            match chunk.iter().position(|b| *b == b'\n') {
                Some(nl) if self.pending.len() + nl <= MAX_LINE => {
                    let mut content = std::mem::take(&mut self.pending);
                    content.extend_from_slice(&chunk[..nl]);
                    records.push(Record {
                        content,
                        partial: false,
                    });
                    chunk = &chunk[nl + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.pending.len();
                    let take = room.min(chunk.len());
                    self.pending.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if self.pending.len() == MAX_LINE {
                        records.push(Record {
                            content: std::mem::take(&mut self.pending),
                            partial: true,
                        });
                    }
                }
            }
        }
        records
    }

    /// The stream has ended: what is left is its last line.
    pub fn finish(&mut self) -> Option<Record> {
        (!self.pending.is_empty()).then(|| Record {
            content: std::mem::take(&mut self.pending),
            partial: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(records: &[Record]) -> Vec<(String, bool)> {
        records
            .iter()
            .map(|r| (String::from_utf8_lossy(&r.content).into_owned(), r.partial))
            .collect()
    }

    #[test]
    fn lines_survive_any_split_of_the_reads() {
        let text = b"hello\nworld\n\nlast";
        for cut in 0..text.len() {
            let mut s = LineSplitter::default();
            let mut records = s.feed(&text[..cut]);
            records.extend(s.feed(&text[cut..]));
            records.extend(s.finish());
            assert_eq!(
                lines(&records),
                [
                    ("hello".into(), false),
                    ("world".into(), false),
                    ("".into(), false),
                    ("last".into(), false)
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn long_lines_come_in_partial_pieces() {
        let mut s = LineSplitter::default();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut records = s.feed(&long);
        records.extend(s.feed(b"\n"));
        assert_eq!(records.len(), 3);
        assert!(records[0].partial && records[1].partial && !records[2].partial);
        assert_eq!(records[2].content.len(), 10);
        assert_eq!(
            records.iter().map(|r| r.content.len()).sum::<usize>(),
            long.len()
        );
    }

    #[test]
    fn encodes_the_cri_format() {
        let r = Record {
            content: b"hello".to_vec(),
            partial: false,
        };
        assert_eq!(
            r.encode("2016-10-06T00:17:09.669794202Z", Stream::Stdout),
            b"2016-10-06T00:17:09.669794202Z stdout F hello\n"
        );
        let p = Record {
            content: b"par".to_vec(),
            partial: true,
        };
        assert_eq!(
            p.encode("2016-10-06T00:17:10Z", Stream::Stderr),
            b"2016-10-06T00:17:10Z stderr P par\n"
        );
    }
}
