//! sha256 digests of what goes through a reader or writer, and the blob
//! paths they name.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// Counts and hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `sha256:<hex>` of what was read, and how many bytes.
    pub fn finish(self) -> (String, u64) {
        (format_digest(&self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Counts and hashes every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format_digest(&self.hasher.finalize()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format_digest(&Sha256::digest(bytes))
}

pub fn format_digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The hex part of a `sha256:<hex>` digest, checked so that it can be a
/// file name; `None` for another algorithm or a malformed digest.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

/// `sha256:0123456789ab`: the 12-digit short form Docker prints.
pub fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_values() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut r = HashingReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(
            r.finish(),
            (
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                    .to_owned(),
                3
            )
        );
        assert!(sha256_hex(&sha256(b"x")).is_some());
        assert!(sha256_hex("sha256:../../etc").is_none());
        assert!(sha256_hex("sha512:00").is_none());
        assert_eq!(short(&sha256(b"")), "sha256:e3b0c44298fc");
    }
}
