//! Unpacking one layer (a gzip, zstd or plain tar) into its own directory,
//! in overlayfs form: layers are stacked by overlayfs and never merged, so
//! a whiteout `.wh.NAME` becomes a 0:0 character device `NAME` and an
//! opaque marker `.wh..wh..opq` the xattr `trusted.overlay.opaque=y`.
//!
//! Nothing is created by following a symlink: every entry is created
//! relative to a directory fd reached component by component with
//! `O_NOFOLLOW`, so an archive that plants `evil -> /etc` and then writes
//! `evil/passwd` is refused instead of writing the host's file.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::mkdirat;
use nix::sys::stat::{
    FileStat, Mode, SFlag, UtimensatFlags, fchmod, fstatat, futimens, makedev, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, linkat, symlinkat};
use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::digest::HashingReader;
use super::tree::{self, proc_path};
use super::{DeviceKind, DeviceNode, ImageError};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// What unpacking a layer found, kept beside the unpacked tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// The digest of the uncompressed tar.
    pub diff_id: String,
    /// The blob it was unpacked from.
    #[serde(default)]
    pub blob: String,
    /// Bytes of regular-file content.
    pub size: u64,
    /// Device nodes and FIFOs, not created.
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// Paths this layer deletes from the layers below (`/a/b`).
    #[serde(default)]
    pub whiteouts: Vec<String>,
    /// Directories this layer makes opaque (`/a`, or `/` for the root).
    #[serde(default)]
    pub opaques: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Not root: ownership, `trusted.*`/`security.*` xattrs the kernel
    /// refuses are skipped (so tests run unprivileged); whiteouts, which
    /// cannot be represented without them, are still an error.
    pub rootless: bool,
}

impl Options {
    pub fn for_this_process() -> Options {
        Options {
            rootless: !nix::unistd::geteuid().is_root(),
        }
    }
}

/// The compression a layer blob uses, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The uncompressed stream of a layer blob.
pub fn decompress<'a, R: Read + 'a>(blob: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(64 * 1024, blob);
    let compression = Compression::sniff(buffered.fill_buf()?);
    let stream: Box<dyn Read> = match compression {
        // Several gzip members in a row are one stream, as Go reads them.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    };
    Ok((compression, stream))
}

/// The digest of a layer blob's uncompressed tar (its diff_id), without
/// unpacking it.
pub fn diff_id<R: Read>(blob: R) -> io::Result<String> {
    let (_, stream) = decompress(blob)?;
    let mut hashing = HashingReader::new(stream);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish().0)
}

/// Unpacks the layer blob `blob` (named `layer`, its digest, in errors)
/// into the empty directory `dest`.
pub fn unpack<R: Read>(
    blob: R,
    layer: &str,
    dest: &Path,
    options: Options,
) -> Result<LayerInfo, ImageError> {
    let layer_err = |reason: String| ImageError::Layer {
        layer: layer.to_owned(),
        reason,
    };
    let (compression, stream) =
        decompress(blob).map_err(|e| layer_err(format!("reading the blob: {e}")))?;
    let root: OwnedFd = File::open(dest)
        .map_err(|source| ImageError::Io {
            path: dest.to_owned(),
            source,
        })?
        .into();
    let what = match compression {
        Compression::Gzip => "gzip-compressed tar",
        Compression::Zstd => "zstd-compressed tar",
        Compression::None => "tar",
    };
    let mut unpacker = Unpacker {
        layer: layer.to_owned(),
        what,
        root,
        options,
        info: LayerInfo::default(),
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(TailReader::new(stream));
    let mut last = String::new();
    let after = |last: &str| {
        if last.is_empty() {
            String::new()
        } else {
            format!(" after entry {last:?}")
        }
    };
    {
        let entries = archive
            .entries()
            .map_err(|e| layer_err(format!("reading the {what}: {e}")))?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| layer_err(format!("reading the {what}{}: {}", after(&last), e)))?;
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            unpacker.entry(&mut entry, &last)?;
        }
    }
    let mut tail = archive.into_inner();
    if !tail.ended_with_zero_block() {
        return Err(layer_err(format!(
            "truncated {what}: no end-of-archive marker{}",
            after(&last)
        )));
    }
    // The rest (record padding, and for gzip the trailer with its CRC)
    // is part of the diff_id and must be read whole.
    io::copy(&mut tail, &mut io::sink())
        .map_err(|e| layer_err(format!("reading the {what}{}: {e}", after(&last))))?;
    unpacker.finish_dirs()?;
    let mut info = unpacker.info;
    info.diff_id = tail.finish();
    Ok(info)
}

/// Hashes the uncompressed tar and remembers where its last non-zero byte
/// was, to tell an archive that ended with its zero block from one cut off.
struct TailReader<R> {
    inner: HashingReader<R>,
    end_of_data: u64,
}

impl<R: Read> TailReader<R> {
    fn new(inner: R) -> Self {
        TailReader {
            inner: HashingReader::new(inner),
            end_of_data: 0,
        }
    }

    fn ended_with_zero_block(&self) -> bool {
        self.inner.count() >= self.end_of_data + 512
    }

    fn finish(self) -> String {
        self.inner.finish().0
    }
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = self.inner.count();
        let n = self.inner.read(buf)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            self.end_of_data = start + i as u64 + 1;
        }
        Ok(n)
    }
}

/// A directory's metadata, applied once the whole layer is written
/// (creating children changes a directory's mtime, and a read-only mode
/// would stop an unprivileged unpack from writing them).
struct DirMeta {
    components: Vec<Vec<u8>>,
    owner: (u32, u32),
    mode: u32,
    mtime: TimeSpec,
}

struct Unpacker {
    layer: String,
    /// "gzip-compressed tar", ...: what the layer is, for messages.
    what: &'static str,
    root: OwnedFd,
    options: Options,
    info: LayerInfo,
    dirs: Vec<DirMeta>,
}

/// The entry's path split into clean components: a leading `/` and `.`
/// dropped, `..` applied lexically; climbing above the root is refused.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path climbs above the layer root".to_owned());
                }
            }
            c if c.contains(&0) => return Err("path holds a NUL byte".to_owned()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn image_path(components: &[Vec<u8>]) -> String {
    let mut s = String::from("/");
    s.push_str(
        &components
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

/// An entry's metadata from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

fn is_not_permitted(e: Errno) -> bool {
    matches!(e, Errno::EPERM | Errno::EACCES)
}

impl Unpacker {
    fn fail(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::Entry {
            layer: self.layer.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let comps = components(&entry.path_bytes()).map_err(|r| self.fail(name, r))?;
        let meta = self.meta(entry, name)?;
        if let Some(last) = comps.last()
            && last.starts_with(WHITEOUT_PREFIX)
        {
            return self.whiteout(&comps, name);
        }
        match kind {
            EntryType::Directory => self.directory(comps, meta, name),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let checked = !matches!(kind, EntryType::GNUSparse);
                self.regular(entry, &comps, &meta, checked, name)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.fail(name, "symlink without a target"))?
                    .into_owned();
                self.symlink(&comps, &target, &meta, name)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.fail(name, "hardlink without a target"))?
                    .into_owned();
                self.hardlink(&comps, &target, name)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                if comps.is_empty() {
                    return Err(self.fail(name, "the layer root cannot be a device"));
                }
                self.info.devices.push(DeviceNode {
                    path: image_path(&comps),
                    kind: match kind {
                        EntryType::Char => DeviceKind::Char,
                        EntryType::Block => DeviceKind::Block,
                        _ => DeviceKind::Fifo,
                    },
                    major,
                    minor,
                    mode: meta.mode,
                    uid: meta.uid,
                    gid: meta.gid,
                });
                Ok(())
            }
            other => Err(self.fail(name, format!("unsupported tar entry type {other:?}"))),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, ImageError> {
        let header = entry.header();
        let bad =
            |field: &str, e: io::Error| self.fail(name, format!("bad {field} in the header: {e}"));
        let id = |v: u64, field: &str| {
            u32::try_from(v).map_err(|_| self.fail(name, format!("{field} {v} is out of range")))
        };
        let mut uid = id(header.uid().map_err(|e| bad("uid", e))?, "uid")?;
        let mut gid = id(header.gid().map_err(|e| bad("gid", e))?, "gid")?;
        let mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let mut mtime = TimeSpec::new(
            i64::try_from(header.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX),
            0,
        );
        let mut xattrs = Vec::new();
        let pax = entry
            .pax_extensions()
            .map_err(|e| self.fail(name, format!("bad PAX header: {e}")))?;
        for ext in pax.into_iter().flatten() {
            let ext = ext.map_err(|e| self.fail(name, format!("bad PAX header: {e}")))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| self.fail(name, format!("bad PAX {key}")))
            };
            match key {
                "uid" => uid = number()?,
                "gid" => gid = number()?,
                "mtime" => {
                    mtime = pax_time(value).ok_or_else(|| self.fail(name, "bad PAX mtime"))?
                }
                _ => {
                    if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
                        // overlayfs reads its own xattrs from the layers: an
                        // image must not set them (only whiteouts do, above).
                        if xattr.starts_with("trusted.overlay.") {
                            continue;
                        }
                        let xattr = CString::new(xattr)
                            .map_err(|_| self.fail(name, "xattr name holds a NUL byte"))?;
                        xattrs.push((xattr, value.to_vec()));
                    }
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
        })
    }

    /// The directory `comps` names, reached without following a symlink;
    /// missing directories are created (0755, as tar does) when `create`.
    fn walk(&self, comps: &[Vec<u8>], create: bool, name: &str) -> Result<OwnedFd, ImageError> {
        let mut dir = self
            .open_dir(&self.root, b".")
            .map_err(|e| self.fail(name, format!("opening the layer root: {e}")))?;
        for (i, c) in comps.iter().enumerate() {
            let next = match self.open_dir(&dir, c) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(&dir, &c[..], Mode::from_bits_truncate(0o755)).map_err(|e| {
                        self.fail(name, format!("creating {}: {e}", image_path(&comps[..=i])))
                    })?;
                    self.open_dir(&dir, c).map_err(|e| {
                        self.fail(name, format!("opening {}: {e}", image_path(&comps[..=i])))
                    })?
                }
                Err(e) => {
                    let what = image_path(&comps[..=i]);
                    let reason = match fstatat(&dir, &c[..], AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st) if kind_of(&st) == SFlag::S_IFLNK => {
                            format!("its path goes through the symlink {what}")
                        }
                        Ok(_) => format!("{what} is not a directory"),
                        Err(Errno::ENOENT) => format!("{what} does not exist in this layer"),
                        Err(_) => format!("opening {what}: {e}"),
                    };
                    return Err(self.fail(name, reason));
                }
            };
            dir = next;
        }
        Ok(dir)
    }

    fn open_dir<Fd: AsFd>(&self, dir: Fd, name: &[u8]) -> Result<OwnedFd, Errno> {
        openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// Splits `comps` into the parent directory (opened, created as
    /// needed) and the last name; the root itself has no last name.
    fn parent(&self, comps: &[Vec<u8>], name: &str) -> Result<(OwnedFd, Vec<u8>), ImageError> {
        let Some((last, parents)) = comps.split_last() else {
            return Err(self.fail(name, "the layer root must be a directory"));
        };
        Ok((self.walk(parents, true, name)?, last.clone()))
    }

    /// Removes whatever `name` is in `dir` (a directory with its content),
    /// so the entry replaces it, as a later tar entry does.
    fn clear(&self, dir: &OwnedFd, last: &[u8], name: &str) -> Result<(), ImageError> {
        match fstatat(dir, last, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(self.fail(name, format!("inspecting what is there: {e}"))),
            Ok(st) if kind_of(&st) == SFlag::S_IFDIR => {
                // By descriptor, however deep the directory goes: std's
                // remove_dir_all holds one per level, and runs out.
                tree::remove_at(dir, OsStr::from_bytes(last))
                    .map_err(|e| self.fail(name, format!("replacing a directory: {e}")))
            }
            Ok(_) => nix::unistd::unlinkat(dir, last, nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(|e| self.fail(name, format!("replacing what is there: {e}"))),
        }
    }

    fn directory(&mut self, comps: Vec<Vec<u8>>, meta: Meta, name: &str) -> Result<(), ImageError> {
        let fd = if comps.is_empty() {
            self.walk(&[], false, name)?
        } else {
            let (parent, last) = self.parent(&comps, name)?;
            let is_dir = matches!(
                fstatat(&parent, &last[..], AtFlags::AT_SYMLINK_NOFOLLOW),
                Ok(st) if kind_of(&st) == SFlag::S_IFDIR
            );
            if !is_dir {
                self.clear(&parent, &last, name)?;
                mkdirat(&parent, &last[..], Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.fail(name, format!("creating the directory: {e}")))?;
            }
            self.open_dir(&parent, &last)
                .map_err(|e| self.fail(name, format!("opening the directory: {e}")))?
        };
        self.set_xattrs_fd(&fd, &meta.xattrs, name)?;
        self.dirs.push(DirMeta {
            components: comps,
            owner: (meta.uid, meta.gid),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        comps: &[Vec<u8>],
        meta: &Meta,
        check_size: bool,
        name: &str,
    ) -> Result<(), ImageError> {
        let (parent, last) = self.parent(comps, name)?;
        self.clear(&parent, &last, name)?;
        let fd = openat(
            &parent,
            &last[..],
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.fail(name, format!("creating the file: {e}")))?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let written = io::copy(entry, &mut file).map_err(|e| {
            self.fail(
                name,
                format!(
                    "reading its content: {e} (a truncated or corrupt {})",
                    self.what
                ),
            )
        })?;
        if check_size && written != expected {
            return Err(self.fail(
                name,
                format!("truncated: the archive holds {written} of its {expected} bytes"),
            ));
        }
        self.info.size += written;
        let fd = OwnedFd::from(file);
        self.chown_at(&fd, b"", meta, name)?;
        fchmod(&fd, Mode::from_bits_truncate(meta.mode))
            .map_err(|e| self.fail(name, format!("setting its mode: {e}")))?;
        self.set_xattrs_fd(&fd, &meta.xattrs, name)?;
        futimens(&fd, &meta.mtime, &meta.mtime)
            .map_err(|e| self.fail(name, format!("setting its mtime: {e}")))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        comps: &[Vec<u8>],
        target: &[u8],
        meta: &Meta,
        name: &str,
    ) -> Result<(), ImageError> {
        let (parent, last) = self.parent(comps, name)?;
        self.clear(&parent, &last, name)?;
        // Created as it is: an absolute target is resolved in the
        // container's root at run time, never here.
        symlinkat(target, &parent, &last[..])
            .map_err(|e| self.fail(name, format!("creating the symlink: {e}")))?;
        self.chown_at(&parent, &last, meta, name)?;
        if !meta.xattrs.is_empty() {
            let path = CString::new(proc_path(&parent, &last).into_os_string().into_vec())
                .map_err(|_| self.fail(name, "path holds a NUL byte"))?;
            for (key, value) in &meta.xattrs {
                // SAFETY: path and key are NUL-terminated; value is a live slice.
                let r = unsafe {
                    nix::libc::lsetxattr(
                        path.as_ptr(),
                        key.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                };
                if r != 0 {
                    self.xattr_failed(key, Errno::last(), name)?;
                }
            }
        }
        utimensat(
            &parent,
            &last[..],
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.fail(name, format!("setting its mtime: {e}")))?;
        Ok(())
    }

    fn hardlink(&mut self, comps: &[Vec<u8>], target: &[u8], name: &str) -> Result<(), ImageError> {
        let target_comps = components(target).map_err(|_| {
            self.fail(
                name,
                format!(
                    "hardlink target {:?} is outside the layer",
                    String::from_utf8_lossy(target)
                ),
            )
        })?;
        let Some((target_last, target_parents)) = target_comps.split_last() else {
            return Err(self.fail(name, "hardlink to the layer root"));
        };
        let target_dir = self
            .walk(target_parents, false, name)
            .map_err(|e| match e {
                ImageError::Entry { reason, .. } => {
                    self.fail(name, format!("hardlink target: {reason}"))
                }
                other => other,
            })?;
        match fstatat(&target_dir, &target_last[..], AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(&st) == SFlag::S_IFDIR => {
                return Err(self.fail(name, "hardlink to a directory"));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(self.fail(
                    name,
                    format!(
                        "hardlink target {} is not in this layer",
                        image_path(&target_comps)
                    ),
                ));
            }
        }
        if target_comps == comps {
            return Ok(());
        }
        let (parent, last) = self.parent(comps, name)?;
        self.clear(&parent, &last, name)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, not followed.
        linkat(
            &target_dir,
            &target_last[..],
            &parent,
            &last[..],
            AtFlags::empty(),
        )
        .map_err(|e| self.fail(name, format!("creating the hardlink: {e}")))?;
        Ok(())
    }

    fn whiteout(&mut self, comps: &[Vec<u8>], name: &str) -> Result<(), ImageError> {
        let Some((last, parents)) = comps.split_last() else {
            return Err(self.fail(name, "bad whiteout"));
        };
        let dir = self.walk(parents, true, name)?;
        if last.as_slice() == OPAQUE_MARKER {
            // SAFETY: dir is an open fd; name and value are valid for their lengths.
            let r = unsafe {
                nix::libc::fsetxattr(
                    dir.as_raw_fd(),
                    OPAQUE_XATTR.as_ptr(),
                    b"y".as_ptr().cast(),
                    1,
                    0,
                )
            };
            if r != 0 {
                let e = Errno::last();
                return Err(self.fail(
                    name,
                    format!(
                        "marking the directory opaque (trusted.overlay.opaque): {e}{}",
                        self.needs_root(e)
                    ),
                ));
            }
            self.info.opaques.push(image_path(parents));
            return Ok(());
        }
        if last.starts_with(b".wh..wh.") {
            // aufs' own bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        let hidden = &last[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.fail(name, "bad whiteout name"));
        }
        self.clear(&dir, hidden, name)?;
        mknodat(&dir, hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| {
            self.fail(
                name,
                format!(
                    "creating the overlay whiteout (a 0:0 character device): {e}{}",
                    self.needs_root(e)
                ),
            )
        })?;
        let mut path = parents.to_vec();
        path.push(hidden.to_vec());
        self.info.whiteouts.push(image_path(&path));
        Ok(())
    }

    fn needs_root(&self, e: Errno) -> &'static str {
        if self.options.rootless && is_not_permitted(e) {
            " (unpacking whiteouts needs root)"
        } else {
            ""
        }
    }

    /// lchown; `last` empty means `dir` itself.
    fn chown_at(
        &self,
        dir: &OwnedFd,
        last: &[u8],
        meta: &Meta,
        name: &str,
    ) -> Result<(), ImageError> {
        let owner = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
        let result = if last.is_empty() {
            nix::unistd::fchown(dir, owner.0, owner.1)
        } else {
            fchownat(dir, last, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW)
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if self.options.rootless && is_not_permitted(e) => Ok(()),
            Err(e) => Err(self.fail(
                name,
                format!("setting its owner {}:{}: {e}", meta.uid, meta.gid),
            )),
        }
    }

    fn set_xattrs_fd(
        &self,
        fd: &OwnedFd,
        xattrs: &[(CString, Vec<u8>)],
        name: &str,
    ) -> Result<(), ImageError> {
        for (key, value) in xattrs {
            // SAFETY: fd is open; key is NUL-terminated; value is a live slice.
            let r = unsafe {
                nix::libc::fsetxattr(
                    fd.as_raw_fd(),
                    key.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if r != 0 {
                self.xattr_failed(key, Errno::last(), name)?;
            }
        }
        Ok(())
    }

    fn xattr_failed(&self, key: &CStr, e: Errno, name: &str) -> Result<(), ImageError> {
        if self.options.rootless && (is_not_permitted(e) || e == Errno::EOPNOTSUPP) {
            return Ok(());
        }
        Err(self.fail(
            name,
            format!("setting xattr {}: {e}", key.to_string_lossy()),
        ))
    }

    /// Owners, modes and mtimes of the directories, now that nothing more
    /// is written into them. A directory a later entry replaced is skipped.
    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        let dirs = std::mem::take(&mut self.dirs);
        for d in &dirs {
            let name = String::from_utf8_lossy(
                image_path(&d.components).trim_start_matches('/').as_bytes(),
            )
            .into_owned();
            let Ok(fd) = self.walk(&d.components, false, &name) else {
                continue;
            };
            let meta = Meta {
                uid: d.owner.0,
                gid: d.owner.1,
                mode: d.mode,
                mtime: d.mtime,
                xattrs: Vec::new(),
            };
            self.chown_at(&fd, b"", &meta, &name)?;
            fchmod(&fd, Mode::from_bits_truncate(d.mode))
                .map_err(|e| self.fail(&name, format!("setting its mode: {e}")))?;
            futimens(&fd, &d.mtime, &d.mtime)
                .map_err(|e| self.fail(&name, format!("setting its mtime: {e}")))?;
        }
        Ok(())
    }
}

fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// A PAX time: seconds with an optional fraction (`1700000000.123456789`).
fn pax_time(value: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(TimeSpec::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths_inside_the_root() {
        let c = |s: &str| components(s.as_bytes()).map(|v| image_path(&v));
        assert_eq!(c("a/b").unwrap(), "/a/b");
        assert_eq!(c("/a//./b/").unwrap(), "/a/b");
        assert_eq!(c("./a/../b").unwrap(), "/b");
        assert_eq!(c("./").unwrap(), "/");
        assert!(c("../x").is_err());
        assert!(c("a/../../x").is_err());
        assert!(c("/../etc/passwd").is_err());
    }

    /// A directory deeper than PATH_MAX and than the open-file limit,
    /// which a later entry replaces: removing it takes a walk by
    /// descriptor that holds few of them.
    #[test]
    fn replaces_a_directory_deeper_than_path_max() {
        let deep = "d/".repeat(3000);
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in [
            (&deep[..], EntryType::Directory, &b""[..]),
            (&format!("{deep}f"), EntryType::Regular, b"abc"),
            ("d", EntryType::Regular, b"replaced"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            // Long names go in GNU long-name entries.
            b.append_data(&mut h, path, data).unwrap();
        }
        let blob = b.into_inner().unwrap();
        let tmp = super::tree::tests::fast_tempdir();
        unpack(
            &blob[..],
            "sha256:deep",
            tmp.path(),
            Options::for_this_process(),
        )
        .unwrap();
        assert_eq!(std::fs::read(tmp.path().join("d")).unwrap(), b"replaced");
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"12"), Some(TimeSpec::new(12, 0)));
        assert_eq!(pax_time(b"12.5"), Some(TimeSpec::new(12, 500_000_000)));
        assert_eq!(pax_time(b"x"), None);
    }
}
