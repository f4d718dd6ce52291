//! Reading the files of an import source by their path in it: a directory
//! (`oci:`), or a tar file read in place through an index of where each
//! member's data starts (`oci-archive:`, `docker-archive:`), so nothing of
//! the archive is extracted before it is verified.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::unpack::{self, Compression};
use super::{ImageError, io_err};

/// A file of the source, opened, with its size.
pub type Opened<'a> = (Box<dyn Read + 'a>, u64);

pub enum Files {
    Dir(PathBuf),
    Tar(TarFiles),
}

pub struct TarFiles {
    file: PathBuf,
    /// Clean path → (offset of the data, size).
    members: HashMap<String, (u64, u64)>,
    /// Clean path → what it links to (symlinks as written, hardlinks as
    /// clean archive paths), resolved within the archive on open.
    links: HashMap<String, Link>,
}

enum Link {
    Symbolic(String),
    Hard(String),
}

/// `a/./b/../c` → `a/c`; `None` if it climbs above the root.
pub fn clean(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl Files {
    /// The archive `file`; a compressed one is first decompressed into
    /// `scratch` (a path in the import's staging directory).
    pub fn tar(file: &Path, scratch: &Path) -> Result<Files, ImageError> {
        let mut f = match File::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::Content {
                    what: file.display().to_string(),
                    reason: "no such file".to_owned(),
                });
            }
            Err(e) => return Err(io_err(file)(e)),
        };
        let mut head = [0u8; 4];
        let n = read_up_to(&mut f, &mut head).map_err(io_err(file))?;
        f.seek(SeekFrom::Start(0)).map_err(io_err(file))?;
        let path = if Compression::sniff(&head[..n]) == Compression::None {
            file.to_owned()
        } else {
            let (_, mut stream) = unpack::decompress(f).map_err(io_err(file))?;
            let mut out = File::create(scratch).map_err(io_err(scratch))?;
            io::copy(&mut stream, &mut out).map_err(|e| ImageError::Content {
                what: file.display().to_string(),
                reason: format!("decompressing the archive: {e}"),
            })?;
            scratch.to_owned()
        };
        TarFiles::index(&path).map(Files::Tar)
    }

    /// Opens `path` (a clean relative path) with its size; `Ok(None)` when
    /// the source has no such file.
    pub fn open(&self, path: &str) -> Result<Option<Opened<'_>>, ImageError> {
        match self {
            Files::Dir(root) => {
                let Some(rel) = clean(path) else {
                    return Ok(None);
                };
                let full = root.join(rel);
                match File::open(&full) {
                    Ok(f) => {
                        let meta = f.metadata().map_err(io_err(&full))?;
                        if !meta.is_file() {
                            return Ok(None);
                        }
                        Ok(Some((Box::new(f), meta.len())))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(full)(e)),
                }
            }
            Files::Tar(t) => t.open(path),
        }
    }

    /// Reads a small file whole (index.json, manifest.json), up to `limit` bytes.
    pub fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, ImageError> {
        let Some((mut r, size)) = self.open(path)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(ImageError::Content {
                what: path.to_owned(),
                reason: format!("{size} bytes is more than the {limit} allowed"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf).map_err(|e| ImageError::Content {
            what: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Some(buf))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl TarFiles {
    fn index(path: &Path) -> Result<TarFiles, ImageError> {
        let bad = |e: io::Error| ImageError::Content {
            what: path.display().to_string(),
            reason: format!("reading the archive: {e}"),
        };
        let f = File::open(path).map_err(io_err(path))?;
        let mut archive = tar::Archive::new(f);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = clean(&raw) else { continue };
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    links.remove(&name);
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink => {
                    if let Some(target) = link() {
                        members.remove(&name);
                        links.insert(name, Link::Symbolic(target));
                    }
                }
                tar::EntryType::Link => {
                    if let Some(target) = link().and_then(|t| clean(&t)) {
                        members.remove(&name);
                        links.insert(name, Link::Hard(target));
                    }
                }
                _ => {}
            }
        }
        Ok(TarFiles {
            file: path.to_owned(),
            members,
            links,
        })
    }

    /// Follows the archive's own links (old `docker save` links layers it
    /// holds twice), lexically and within the archive only.
    fn resolve(&self, path: &str) -> Option<(u64, u64)> {
        let mut current = clean(path)?;
        for _ in 0..40 {
            if let Some(found) = self.members.get(&current) {
                return Some(*found);
            }
            // A link in a parent directory counts too.
            let (prefix, rest) = self.link_prefix(&current)?;
            let base = match &self.links[&prefix] {
                Link::Hard(target) => target.clone(),
                Link::Symbolic(target) if target.starts_with('/') => target.clone(),
                Link::Symbolic(target) => {
                    let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
                    format!("{dir}/{target}")
                }
            };
            current = clean(&format!("{base}/{rest}"))?;
        }
        None
    }

    /// The longest leading part of `path` that is a link, and the rest.
    fn link_prefix(&self, path: &str) -> Option<(String, String)> {
        let parts: Vec<&str> = path.split('/').collect();
        (1..=parts.len()).find_map(|n| {
            let prefix = parts[..n].join("/");
            self.links
                .contains_key(&prefix)
                .then(|| (prefix, parts[n..].join("/")))
        })
    }

    fn open(&self, path: &str) -> Result<Option<Opened<'_>>, ImageError> {
        let Some((offset, size)) = self.resolve(path) else {
            return Ok(None);
        };
        let mut f = File::open(&self.file).map_err(io_err(&self.file))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err(&self.file))?;
        Ok(Some((Box::new(f.take(size)), size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_lexically() {
        assert_eq!(clean("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("/blobs//sha256/x").as_deref(), Some("blobs/sha256/x"));
        assert_eq!(clean("../x"), None);
    }

    #[test]
    fn reads_members_and_links_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h.clone(), "one/layer.tar", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "two/layer.tar", "../one/layer.tar")
            .unwrap();
        b.append_link(&mut l, "three", "one").unwrap();
        b.finish().unwrap();
        drop(b);
        let files = Files::tar(&path, &dir.path().join("scratch")).unwrap();
        for p in ["one/layer.tar", "./two/layer.tar", "three/layer.tar"] {
            let (mut r, size) = files.open(p).unwrap().unwrap();
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!((s.as_str(), size), ("hello", 5), "{p}");
        }
        assert!(files.open("missing").unwrap().is_none());
    }
}
