//! The image layer unpacker: a layer blob, arbitrary bytes or a tar built
//! from the input (so that the fuzzer gets past header checksums with
//! `..`, absolute paths, symlinks and hard links pointing out, whiteouts,
//! device nodes, long names, PAX records), is unpacked into a fresh
//! directory, and afterwards nothing exists outside it: a sibling canary
//! directory stays empty, the directory holding both holds nothing else,
//! no hard link leads out, and no device node but a whiteout's 0:0 exists.
//! A layer that unpacks has the diff_id `diff_id` computes for it.
//!
//! Input: the first byte's low bit picks the form (0: the rest is the
//! blob; 1: the rest describes entries, see `Layer`).
//!
//! As root, unpacking really chowns, mknods and sets trusted.* xattrs, so
//! the target first moves into a mount namespace of its own where every
//! mount is read-only but /tmp (libFuzzer's merge files) and this crate's
//! directory (corpus, artifacts), and unpacks into a tmpfs mounted there:
//! an escape the check would report cannot damage the host meanwhile.
#![no_main]

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use podrun::image::tree;
use podrun::image::unpack::{self, Options};

/// Where layers are unpacked as root: a tmpfs in the target's own mount
/// namespace (the host sees an empty directory).
const SANDBOX: &str = "/tmp/podrun-fuzz-unpack";

struct Work {
    /// Holds `layer` (the destination) and `canary` during a run, and
    /// nothing else.
    dir: PathBuf,
    options: Options,
}

static WORK: OnceLock<Work> = OnceLock::new();

fuzz_target!(
    init: {
        let _ = WORK.set(work());
    },
    |data: &[u8]| {
        let Some(work) = WORK.get() else {
            return;
        };
        let Some((&form, rest)) = data.split_first() else {
            return;
        };
        let layer = work.dir.join("layer");
        let canary = work.dir.join("canary");
        let blob = if form & 1 == 0 {
            rest.to_vec()
        } else {
            let Ok(l) = Layer::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            l.build(&canary)
        };
        if too_big(&blob) {
            return;
        }
        fs::create_dir(&layer).expect("creating the layer directory");
        fs::create_dir(&canary).expect("creating the canary directory");
        let result = unpack::unpack(&blob[..], "sha256:fuzz", &layer, work.options);
        check(&work.dir, &layer, &canary);
        if let Ok(info) = &result {
            let again = unpack::diff_id(&blob[..]).expect("a blob that unpacked decompresses");
            assert_eq!(info.diff_id, again, "unpack and diff_id disagree");
        } else {
            // The decompressor alone, on whatever the unpacker refused.
            let _ = unpack::diff_id(&blob[..]);
        }
        tree::remove(&layer).expect("removing the layer");
        fs::remove_dir_all(&canary).expect("removing the canary");
    }
);

/// The most tar a run unpacks. A few bytes of gzip or zstd can stand for
/// gigabytes, or for a million nested directories: they only cost time.
const MAX_TAR: u64 = 64 << 10;

fn too_big(blob: &[u8]) -> bool {
    let Ok((_, stream)) = unpack::decompress(blob) else {
        return false;
    };
    // Counted up to a read error too: the unpacker reads as far.
    let mut stream = stream.take(MAX_TAR + 1);
    let mut buf = [0; 8192];
    let mut n = 0;
    while let Ok(k @ 1..) = stream.read(&mut buf) {
        n += k as u64;
    }
    n > MAX_TAR
}

fn work() -> Work {
    let options = Options::for_this_process();
    if !options.rootless {
        sandbox();
        Work {
            dir: PathBuf::from(SANDBOX),
            options,
        }
    } else {
        // Without root nothing privileged happens (ownership, whiteouts and
        // trusted.* xattrs are refused or skipped): a plain temp dir will do.
        let dir = tempfile::Builder::new()
            .prefix("podrun-fuzz-unpack.")
            .tempdir()
            .expect("making a temp dir")
            .keep();
        // libFuzzer ends with exit(), which drops nothing.
        // SAFETY: remove_temp_dir is an extern "C" fn without arguments.
        unsafe { libc::atexit(remove_temp_dir) };
        Work { dir, options }
    }
}

extern "C" fn remove_temp_dir() {
    if let Some(work) = WORK.get() {
        let _ = tree::remove(&work.dir);
    }
}

fn cstr(p: &str) -> CString {
    CString::new(p).expect("a path without NUL")
}

fn fail(what: &str) -> ! {
    panic!(
        "image_unpack sandbox: {what}: {}",
        std::io::Error::last_os_error()
    );
}

fn is_tmpfs(path: &str) -> bool {
    let p = cstr(path);
    // SAFETY: p is NUL-terminated; st is written by the kernel.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(p.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    }
}

fn root_is_read_only() -> bool {
    let p = cstr("/");
    // SAFETY: p is NUL-terminated; st is written by the kernel.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(p.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    }
}

fn bind_to_itself(path: &str) {
    let p = cstr(path);
    // SAFETY: every pointer is a NUL-terminated string or null.
    let r = unsafe {
        libc::mount(
            p.as_ptr(),
            p.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if r != 0 {
        fail(&format!("bind-mounting {path}"));
    }
}

/// mount_setattr(2) on `path` and every mount below it.
fn set_read_only(path: &str, read_only: bool) {
    let p = cstr(path);
    let flag = libc::MOUNT_ATTR_RDONLY;
    let attr = libc::mount_attr {
        attr_set: if read_only { flag } else { 0 },
        attr_clr: if read_only { 0 } else { flag },
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: p is NUL-terminated; attr lives through the call and its size
    // is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        fail(&format!(
            "making {path} read-{}",
            if read_only { "only" } else { "write" }
        ));
    }
}

fn sandbox() {
    let _ = fs::create_dir(SANDBOX);
    // libFuzzer runs a merge (cmin) in a child of this very process: it
    // inherits the namespace, and must keep the parent's view of /tmp.
    if is_tmpfs(SANDBOX) && root_is_read_only() {
        return;
    }
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    // SAFETY: plain syscalls on constant arguments and NUL-terminated paths.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            fail("unshare(CLONE_NEWNS)");
        }
        let root = cstr("/");
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            fail("making / private");
        }
    }
    bind_to_itself("/tmp");
    bind_to_itself(crate_dir);
    let (dir, fstype, options) = (cstr(SANDBOX), cstr("tmpfs"), cstr("size=256m,mode=0700"));
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if r != 0 {
        fail("mounting a tmpfs");
    }
    set_read_only("/", true);
    set_read_only("/tmp", false);
    set_read_only(crate_dir, false);
    if !is_tmpfs(SANDBOX) || !root_is_read_only() {
        panic!("image_unpack sandbox: the mounts are not as made");
    }
}

/// Nothing of the layer exists outside `layer`.
fn check(dir: &Path, layer: &Path, canary: &Path) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("listing the work dir")
        .map(|e| e.expect("a work dir entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["canary", "layer"],
        "something was made beside the layer"
    );
    assert_eq!(
        fs::read_dir(canary).expect("listing the canary").count(),
        0,
        "something was made in the canary directory"
    );
    let root = fs::symlink_metadata(layer).expect("the layer directory");
    assert!(root.is_dir(), "the layer directory was replaced");
    // Hard links: every link of an inode in the layer is in the layer.
    let mut links: HashMap<u64, (u64, u64)> = HashMap::new();
    tree::walk(layer, |path, st| {
        assert_eq!(st.st_dev, root.dev(), "{path:?} is on another filesystem");
        let kind = st.st_mode & libc::S_IFMT;
        if matches!(kind, libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK) {
            panic!("{path:?}: a device node, FIFO or socket was created");
        }
        if kind == libc::S_IFCHR {
            assert_eq!(
                st.st_rdev, 0,
                "{path:?}: a character device that is no whiteout"
            );
        }
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            links.entry(st.st_ino).or_insert((st.st_nlink, 0)).1 += 1;
        }
    })
    .expect("walking the layer");
    for (ino, (nlink, seen)) in links {
        assert_eq!(nlink, seen, "inode {ino} has links outside the layer");
    }
}

// --- layers built from the input -----------------------------------------

#[derive(Arbitrary, Debug)]
struct Layer {
    entries: Vec<Entry>,
    /// The two zero blocks that end an archive.
    end_marker: bool,
    compression: Compression,
}

#[derive(Arbitrary, Debug)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    path: Name,
    kind: Kind,
    mode: u16,
    uid: Id,
    gid: Id,
    mtime: u64,
    link: Name,
    content: Vec<u8>,
    /// Claim a size other than the content's (a truncated archive).
    size_delta: Option<i8>,
    device: (u8, u8),
    long_names: LongNames,
    pax: Vec<(PaxKey, Value)>,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Regular,
    Directory,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    Continuous,
    Sparse,
    Other(u8),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Root,
    Small(u16),
    Any(u64),
}

/// How a name over 100 bytes is written.
#[derive(Arbitrary, Debug)]
enum LongNames {
    Gnu,
    Pax,
    /// Cut to the header's 100 bytes.
    Cut,
}

#[derive(Arbitrary, Debug)]
struct Name {
    absolute: bool,
    parts: Vec<Part>,
}

#[derive(Arbitrary, Debug)]
enum Part {
    Word(Word),
    Dot,
    DotDot,
    Empty,
    Whiteout(Word),
    Opaque,
    /// aufs' own `.wh..wh.plnk`.
    AufsMeta,
    /// A name of 1 to 256 bytes.
    Long(u8),
    Bytes(Vec<u8>),
    /// The canary directory's absolute path (only where it ends up in a
    /// link target, it reaches outside).
    Canary,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Word {
    A,
    B,
    Etc,
    Passwd,
    /// The names beside the layer: `../canary` from the layer's root.
    Canary,
    Layer,
}

#[derive(Arbitrary, Debug)]
enum PaxKey {
    Path,
    Linkpath,
    Uid,
    Gid,
    Mtime,
    Size,
    UserXattr,
    SecurityCapability,
    TrustedOverlayOpaque,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Name(Name),
    Number(u64),
    Time(i64, u32),
    Bytes(Vec<u8>),
}

impl Word {
    fn bytes(self) -> &'static [u8] {
        match self {
            Word::A => b"a",
            Word::B => b"b",
            Word::Etc => b"etc",
            Word::Passwd => b"passwd",
            Word::Canary => b"canary",
            Word::Layer => b"layer",
        }
    }
}

impl Name {
    fn render(&self, canary: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        if self.absolute {
            out.push(b'/');
        }
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            match part {
                Part::Word(w) => out.extend_from_slice(w.bytes()),
                Part::Dot => out.push(b'.'),
                Part::DotDot => out.extend_from_slice(b".."),
                Part::Empty => {}
                Part::Whiteout(w) => {
                    out.extend_from_slice(b".wh.");
                    out.extend_from_slice(w.bytes());
                }
                Part::Opaque => out.extend_from_slice(b".wh..wh..opq"),
                Part::AufsMeta => out.extend_from_slice(b".wh..wh.plnk"),
                Part::Long(n) => out.extend(std::iter::repeat_n(b'l', usize::from(*n) + 1)),
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Canary => out.extend_from_slice(canary.as_os_str().as_encoded_bytes()),
            }
        }
        out
    }
}

impl Id {
    fn get(&self) -> u64 {
        match self {
            Id::Root => 0,
            Id::Small(n) => u64::from(*n),
            Id::Any(n) => *n,
        }
    }
}

/// One PAX record: "LEN key=value\n", LEN counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn block_pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A header with its raw name and link name (the tar crate's setters refuse
/// `..`, which is the point here).
fn header(kind: tar::EntryType, name: &[u8], link: &[u8], size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    let raw = h.as_old_mut();
    let n = name.len().min(100);
    raw.name[..n].copy_from_slice(&name[..n]);
    let n = link.len().min(100);
    raw.linkname[..n].copy_from_slice(&link[..n]);
    h
}

fn append(out: &mut Vec<u8>, mut h: tar::Header, data: &[u8]) {
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    block_pad(out);
}

impl Layer {
    fn build(&self, canary: &Path) -> Vec<u8> {
        let mut tar = Vec::new();
        for e in &self.entries {
            e.write(&mut tar, canary);
        }
        if self.end_marker {
            tar.resize(tar.len() + 1024, 0);
        }
        match self.compression {
            Compression::None => tar,
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).expect("gzip into memory");
                gz.finish().expect("gzip into memory")
            }
            Compression::Zstd => zstd::stream::encode_all(&tar[..], 1).expect("zstd into memory"),
        }
    }
}

impl Entry {
    fn write(&self, out: &mut Vec<u8>, canary: &Path) {
        let name = self.path.render(canary);
        let link = self.link.render(canary);
        let kind = match self.kind {
            Kind::Regular => tar::EntryType::Regular,
            Kind::Directory => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Continuous => tar::EntryType::Continuous,
            Kind::Sparse => tar::EntryType::GNUSparse,
            Kind::Other(b) => tar::EntryType::new(b),
        };
        let mut records = Vec::new();
        let long = |s: &[u8]| s.len() > 100;
        match self.long_names {
            LongNames::Gnu => {
                for (s, k) in [
                    (&name, tar::EntryType::GNULongName),
                    (&link, tar::EntryType::GNULongLink),
                ] {
                    if long(s) {
                        let mut data = s.clone();
                        data.push(0);
                        append(
                            out,
                            header(k, b"././@LongLink", b"", data.len() as u64),
                            &data,
                        );
                    }
                }
            }
            LongNames::Pax => {
                if long(&name) {
                    pax_record(&mut records, b"path", &name);
                }
                if long(&link) {
                    pax_record(&mut records, b"linkpath", &link);
                }
            }
            LongNames::Cut => {}
        }
        for (key, value) in &self.pax {
            let key: Vec<u8> = match key {
                PaxKey::Path => b"path".to_vec(),
                PaxKey::Linkpath => b"linkpath".to_vec(),
                PaxKey::Uid => b"uid".to_vec(),
                PaxKey::Gid => b"gid".to_vec(),
                PaxKey::Mtime => b"mtime".to_vec(),
                PaxKey::Size => b"size".to_vec(),
                PaxKey::UserXattr => b"SCHILY.xattr.user.fuzz".to_vec(),
                PaxKey::SecurityCapability => b"SCHILY.xattr.security.capability".to_vec(),
                PaxKey::TrustedOverlayOpaque => b"SCHILY.xattr.trusted.overlay.opaque".to_vec(),
                PaxKey::Other(k) => k.as_bytes().to_vec(),
            };
            let value = match value {
                Value::Name(n) => n.render(canary),
                Value::Number(n) => n.to_string().into_bytes(),
                Value::Time(s, ns) => format!("{s}.{ns}").into_bytes(),
                Value::Bytes(b) => b.clone(),
            };
            pax_record(&mut records, &key, &value);
        }
        if !records.is_empty() {
            let h = header(
                tar::EntryType::XHeader,
                b"PaxHeaders/x",
                b"",
                records.len() as u64,
            );
            append(out, h, &records);
        }
        let size = match self.size_delta {
            None => self.content.len() as u64,
            Some(d) => (self.content.len() as u64).saturating_add_signed(i64::from(d)),
        };
        let mut h = header(kind, &name, &link, size);
        h.set_mode(u32::from(self.mode));
        h.set_uid(self.uid.get());
        h.set_gid(self.gid.get());
        h.set_mtime(self.mtime);
        let _ = h.set_device_major(u32::from(self.device.0));
        let _ = h.set_device_minor(u32::from(self.device.1));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&self.content);
        block_pad(out);
    }
}
