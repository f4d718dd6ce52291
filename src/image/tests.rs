//! Imports of layouts and archives built here with the tar crate, into
//! stores in temp directories. What needs root (owners other than ours,
//! whiteout devices, trusted.* xattrs) is checked only as root; the tests
//! say when they skip it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::digest::sha256;
use super::source::Source;
use super::unpack::Options;
use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One tar entry. Names and link targets go into the header as they are
/// (the tar crate's builder refuses `..`, which these tests need).
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
}

fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    let raw = h.as_old_mut();
    raw.name.fill(0);
    raw.name[..name.len()].copy_from_slice(name.as_bytes());
    h
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            E::Dir(p, mode) => (header(p, tar::EntryType::Directory, 0, *mode), b""),
            E::File(p, data, mode) => (
                header(p, tar::EntryType::Regular, data.len() as u64, *mode),
                data,
            ),
            E::Symlink(p, t) | E::Hardlink(p, t) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = header(p, kind, 0, 0o777);
                let raw = h.as_old_mut();
                raw.linkname.fill(0);
                raw.linkname[..t.len()].copy_from_slice(t.as_bytes());
                (h, b"")
            }
            E::Char(p, major, minor) => {
                let mut h = header(p, tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                (h, b"")
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A layer as stored (maybe compressed) and its uncompressed tar.
struct Layer {
    blob: Vec<u8>,
    tar: Vec<u8>,
    media_type: &'static str,
}

fn plain(entries: &[E]) -> Layer {
    let tar = tar_of(entries);
    Layer {
        blob: tar.clone(),
        tar,
        media_type: "application/vnd.oci.image.layer.v1.tar",
    }
}

fn gz(entries: &[E]) -> Layer {
    let tar = tar_of(entries);
    Layer {
        blob: gzip(&tar),
        tar,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "created": "2024-02-29T12:30:15Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// Writes a blob into a layout directory and returns its descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let d = sha256(bytes);
    fs::write(blobs.join(&d[7..]), bytes).unwrap();
    descriptor(media_type, bytes)
}

/// An OCI layout of one image; `tweak` may change the manifest JSON
/// (sizes, digests) before it is written.
fn layout(
    dir: &Path,
    layers: &[Layer],
    ref_name: Option<&str>,
    tweak: impl FnOnce(&mut serde_json::Value),
) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(&l.tar)).collect();
    let config = put_blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &config_json(&diff_ids),
    );
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| put_blob(dir, l.media_type, &l.blob))
        .collect();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layer_descs,
    });
    tweak(&mut manifest);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let mut desc = put_blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest_bytes,
    );
    if let Some(r) = ref_name {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": r});
    }
    write_index(dir, vec![desc]);
    sha256(&manifest_bytes)
}

fn write_index(dir: &Path, manifests: Vec<serde_json::Value>) {
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

struct TestStore {
    tmp: tempfile::TempDir,
    store: Store,
}

impl TestStore {
    fn new() -> TestStore {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("images"), &tmp.path().join("layers")).unwrap();
        TestStore { tmp, store }
    }

    /// `Store::remove`, told of the pods whose state is under the test's
    /// own run directory, as the CLI tells it of this machine's.
    fn remove(&self, names: &[String]) -> Result<Removed, ImageError> {
        let run = self.tmp.path().join("run");
        self.store.remove(names, &|| {
            crate::api::state::images_in_use_under(&run)
                .into_iter()
                .map(|(pod, image)| ImageUse { pod, image })
                .collect()
        })
    }

    /// A directory for sources, outside the store.
    fn source_dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join("sources").join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn import(&self, source: &str, name: Option<&str>) -> Result<Imported, ImageError> {
        self.store.import_with(
            &Source::parse(source).unwrap(),
            name,
            Options::for_this_process(),
        )
    }

    /// Everything of the store (layout, layer cache, lock, staging) as
    /// path → (type, mode, owner, size, content digest or link target).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for top in ["images", "layers", "images.lock"] {
            walk(&self.tmp.path().join(top), self.tmp.path(), &mut out);
        }
        for e in fs::read_dir(self.tmp.path()).unwrap() {
            let name = e.unwrap().file_name();
            if name.to_string_lossy().starts_with(".staging-") {
                out.insert(PathBuf::from(name), "staging dir".to_owned());
            }
        }
        out
    }
}

fn walk(path: &Path, base: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let rel = path.strip_prefix(base).unwrap().to_owned();
    let ft = meta.file_type();
    let what = if ft.is_symlink() {
        format!("link {:?}", fs::read_link(path).unwrap())
    } else if ft.is_file() {
        format!("file {}", sha256(&fs::read(path).unwrap()))
    } else if ft.is_dir() {
        "dir".to_owned()
    } else {
        format!("special {:x}", meta.rdev())
    };
    out.insert(
        rel,
        format!(
            "{what} mode {:o} owner {}:{} size {}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.len()
        ),
    );
    if ft.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            walk(&e.unwrap().path(), base, out);
        }
    }
}

fn base_entries() -> Vec<E<'static>> {
    vec![
        E::Dir("./", 0o755),
        E::Dir("bin/", 0o755),
        E::File("bin/busybox", b"#!/bin/true\n", 0o755),
        E::Symlink("bin/sh", "busybox"),
        E::Symlink("bin/abs", "/bin/busybox"),
        E::Hardlink("bin/ls", "bin/busybox"),
        E::File("bin/su", b"su", 0o4755),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644),
        E::Dir("tmp/", 0o1777),
        E::Char("dev/null", 1, 3),
    ]
}

#[test]
fn imports_an_oci_layout_and_resolves_it() {
    let t = TestStore::new();
    let src = t.source_dir("busybox");
    let digest = layout(&src, &[gz(&base_entries())], Some("busybox:1.36"), |_| {});
    let spec = format!("oci:{}", src.display());
    let imported = t.import(&spec, None).unwrap();
    assert_eq!(imported.reference, "docker.io/library/busybox:1.36");
    assert_eq!(imported.digest, digest);

    for name in [
        "busybox:1.36",
        "docker.io/library/busybox:1.36",
        "library/busybox:1.36",
    ] {
        let image = t.store.resolve(name).unwrap().expect(name);
        assert_eq!(image.digest, digest);
    }
    assert!(
        t.store.resolve("busybox").unwrap().is_none(),
        "busybox:latest is another image"
    );
    let image = t.store.resolve("busybox:1.36").unwrap().unwrap();
    assert_eq!(image.reference, "docker.io/library/busybox:1.36");
    assert_eq!(
        image
            .config
            .config()
            .as_ref()
            .unwrap()
            .entrypoint()
            .as_deref(),
        Some(&["/bin/sh".to_owned()][..])
    );
    assert_eq!(image.layers.len(), 1);
    let root = &image.layers[0];
    assert!(root.starts_with(t.tmp.path().join("layers/sha256")));
    let busybox = fs::symlink_metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o7777, 0o755);
    assert_eq!(busybox.mtime(), 1_700_000_000);
    assert_eq!(
        fs::read(root.join("bin/busybox")).unwrap(),
        b"#!/bin/true\n"
    );
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(root.join("bin/abs")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::symlink_metadata(root.join("bin/ls")).unwrap().ino(),
        busybox.ino()
    );
    assert_eq!(
        fs::metadata(root.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(root.join("bin")).unwrap().mtime(),
        1_700_000_000
    );
    assert!(
        !root.join("dev/null").exists(),
        "device nodes are not created"
    );
    assert_eq!(
        image.devices,
        [DeviceNode {
            path: "/dev/null".to_owned(),
            kind: DeviceKind::Char,
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0
        }]
    );
    if is_root() {
        assert_eq!(busybox.uid(), 0);
    }

    // The store is an OCI layout that names the image in full.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(t.tmp.path().join("images/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "docker.io/library/busybox:1.36"
    );
    assert!(t.tmp.path().join("images/oci-layout").is_file());
    assert!(
        t.tmp
            .path()
            .join("images/blobs/sha256")
            .join(&digest[7..])
            .is_file()
    );

    // Importing again changes nothing; another name shares the blobs and layers.
    let before = t.snapshot();
    assert_eq!(t.import(&spec, None).unwrap(), imported);
    assert_eq!(t.snapshot(), before);
    let other = t.import(&spec, Some("example.com/tools/box:v2")).unwrap();
    assert_eq!(other.reference, "example.com/tools/box:v2");
    let other = t
        .store
        .resolve("example.com/tools/box:v2")
        .unwrap()
        .unwrap();
    assert_eq!(other.layers, image.layers);
    let names: Vec<String> = t
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.reference)
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/busybox:1.36", "example.com/tools/box:v2"]
    );
    assert!(
        !t.snapshot()
            .keys()
            .any(|k| k.to_string_lossy().starts_with(".staging-"))
    );
}

#[test]
fn names_come_from_the_argument_the_ref_or_the_annotation() {
    let t = TestStore::new();
    let src = t.source_dir("unnamed");
    layout(&src, &[plain(&base_entries())], None, |_| {});
    let spec = format!("oci:{}", src.display());
    let e = t.import(&spec, None).unwrap_err();
    assert!(matches!(e, ImageError::NoName { .. }), "{e}");
    assert!(e.to_string().contains("NAME"), "{e}");
    assert_eq!(
        t.import(&spec, Some("app")).unwrap().reference,
        "docker.io/library/app:latest"
    );
    let e = t.import(&spec, Some("Bad Name")).unwrap_err();
    assert!(matches!(e, ImageError::InvalidName { .. }), "{e}");

    let named = t.source_dir("named");
    layout(
        &named,
        &[plain(&base_entries())],
        Some("quay.io/x/y:1"),
        |_| {},
    );
    let e = t
        .import(&format!("oci:{}:other", named.display()), None)
        .unwrap_err();
    assert!(e.to_string().contains("no image named \"other\""), "{e}");
    let r = t
        .import(&format!("oci:{}:quay.io/x/y:1", named.display()), None)
        .unwrap();
    assert_eq!(r.reference, "quay.io/x/y:1");
}

#[test]
fn a_multi_platform_index_gives_linux_amd64() {
    let t = TestStore::new();
    let src = t.source_dir("multi");
    let amd = layout(
        &src,
        &[plain(&[E::File("arch", b"amd64", 0o644)])],
        None,
        |_| {},
    );
    let arm = layout(
        &src,
        &[plain(&[E::File("arch", b"arm64", 0o644)])],
        None,
        |_| {},
    );
    let platform = |digest: &str, arch: &str| {
        let bytes = fs::read(src.join("blobs/sha256").join(&digest[7..])).unwrap();
        let mut d = descriptor("application/vnd.oci.image.manifest.v1+json", &bytes);
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [platform(&arm, "arm64"), platform(&amd, "amd64")],
    }))
    .unwrap();
    let mut top = put_blob(&src, "application/vnd.oci.image.index.v1+json", &nested);
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "multi:1"});
    write_index(&src, vec![top]);
    let r = t.import(&format!("oci:{}", src.display()), None).unwrap();
    assert_eq!(r.digest, amd);
    let image = t.store.resolve("multi:1").unwrap().unwrap();
    assert_eq!(fs::read(image.layers[0].join("arch")).unwrap(), b"amd64");
}

#[test]
fn zstd_and_plain_layers_unpack() {
    let t = TestStore::new();
    let src = t.source_dir("zstd");
    let tar = tar_of(&[E::File("z", b"zstd content", 0o600)]);
    let zstd_layer = Layer {
        blob: zstd::stream::encode_all(&tar[..], 3).unwrap(),
        tar,
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let p = plain(&[E::File("p", b"plain", 0o640)]);
    layout(&src, &[zstd_layer, p], Some("z"), |_| {});
    t.import(&format!("oci:{}", src.display()), None).unwrap();
    let image = t.store.resolve("z").unwrap().unwrap();
    assert_eq!(
        fs::read(image.layers[0].join("z")).unwrap(),
        b"zstd content"
    );
    assert_eq!(fs::read(image.layers[1].join("p")).unwrap(), b"plain");
    assert_eq!(
        fs::metadata(image.layers[1].join("p")).unwrap().mode() & 0o777,
        0o640
    );
}

/// Each bad source is refused with a message naming what is wrong, and
/// leaves the store and the layer cache exactly as they were.
fn refused(t: &TestStore, spec: &str, expect: &[&str]) {
    let before = t.snapshot();
    let e = t.import(spec, Some("bad:1")).expect_err(spec);
    let msg = e.to_string();
    eprintln!("{spec}: refused: {msg}");
    for want in expect {
        assert!(msg.contains(want), "{spec}: {msg:?} does not say {want:?}");
    }
    assert!(e.is_input(), "{msg}");
    assert_eq!(t.snapshot(), before, "{spec} changed the store");
}

fn store_with_an_image() -> TestStore {
    let t = TestStore::new();
    let src = t.source_dir("good");
    layout(&src, &[gz(&base_entries())], Some("good:1"), |_| {});
    t.import(&format!("oci:{}", src.display()), None).unwrap();
    t
}

#[test]
fn refuses_escapes_through_symlinks_hardlinks_and_dotdot() {
    let t = store_with_an_image();
    let outside = t.source_dir("outside");
    let outside_str = outside.to_str().unwrap().to_owned();
    // A symlink escape would write here (never /etc: these tests may run as root).
    fs::write(outside.join("passwd"), b"theirs").unwrap();
    let cases: Vec<(&str, Vec<E>, Vec<&str>)> = vec![
        (
            "symlink-abs",
            vec![
                E::Symlink("evil", &outside_str),
                E::File("evil/passwd", b"pwned", 0o644),
            ],
            vec!["entry \"evil/passwd\"", "symlink /evil"],
        ),
        (
            "symlink-rel",
            vec![
                E::Dir("a/", 0o755),
                E::Symlink("a/evil", "../../../../../../../.."),
                E::File("a/evil/tmp/pwned", b"pwned", 0o644),
            ],
            vec!["entry \"a/evil/tmp/pwned\"", "symlink /a/evil"],
        ),
        (
            "hardlink-through-symlink",
            vec![
                E::Symlink("evil", &outside_str),
                E::Hardlink("stolen", "evil/passwd"),
            ],
            vec!["entry \"stolen\"", "hardlink target", "symlink /evil"],
        ),
        (
            "hardlink-dotdot",
            vec![E::Hardlink("stolen", "../../../etc/passwd")],
            vec!["entry \"stolen\"", "outside the layer"],
        ),
        (
            "hardlink-missing",
            vec![E::Hardlink("stolen", "/etc/passwd")],
            vec!["entry \"stolen\"", "in this layer"],
        ),
        (
            "dotdot",
            vec![E::File("../escaped", b"pwned", 0o644)],
            vec!["entry \"../escaped\"", "climbs above the layer root"],
        ),
        (
            "dotdot-inner",
            vec![E::File("a/../../escaped", b"pwned", 0o644)],
            vec!["climbs above the layer root"],
        ),
    ];
    for (name, entries, expect) in cases {
        let src = t.source_dir(name);
        layout(&src, &[gz(&entries)], None, |_| {});
        let mut expect = expect;
        expect.push("layer sha256:");
        refused(&t, &format!("oci:{}", src.display()), &expect);
    }
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "something was written outside"
    );
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"theirs");
    assert!(!t.tmp.path().join("escaped").exists());
    assert!(!t.tmp.path().join("sources/escaped").exists());
}

#[test]
fn refuses_blobs_that_are_not_what_the_manifest_promises() {
    let t = store_with_an_image();
    let entries = [E::File("f", b"content", 0o644)];

    // A blob whose content changed after its digest was taken.
    let src = t.source_dir("digest");
    let layer = gz(&entries);
    let layer_digest = sha256(&layer.blob);
    layout(&src, &[layer], None, |_| {});
    let path = src.join("blobs/sha256").join(&layer_digest[7..]);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    refused(
        &t,
        &format!("oci:{}", src.display()),
        &["digest mismatch", &layer_digest],
    );

    // A descriptor with the wrong size (both ways).
    for delta in [1i64, -1] {
        let src = t.source_dir(&format!("size{delta}"));
        layout(&src, &[gz(&entries)], None, |m| {
            let size = m["layers"][0]["size"].as_i64().unwrap();
            m["layers"][0]["size"] = json!(size + delta);
        });
        refused(&t, &format!("oci:{}", src.display()), &["size mismatch"]);
    }

    // A config whose diff_id is not the layer's.
    let src = t.source_dir("diffid");
    let layer = gz(&entries);
    let wrong = sha256(b"another layer");
    let config = put_blob(
        &src,
        "application/vnd.oci.image.config.v1+json",
        &config_json(std::slice::from_ref(&wrong)),
    );
    let l = put_blob(&src, layer.media_type, &layer.blob);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [l]}))
    .unwrap();
    let desc = put_blob(
        &src,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    write_index(&src, vec![desc]);
    refused(
        &t,
        &format!("oci:{}", src.display()),
        &["diff_id mismatch", &wrong],
    );

    // A blob the layout does not have.
    let src = t.source_dir("missing");
    let layer = gz(&entries);
    let d = sha256(&layer.blob);
    layout(&src, &[layer], None, |_| {});
    fs::remove_file(src.join("blobs/sha256").join(&d[7..])).unwrap();
    refused(
        &t,
        &format!("oci:{}", src.display()),
        &["does not hold this blob", &d],
    );
}

#[test]
fn refuses_truncated_layers() {
    let t = store_with_an_image();
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let entries = [
        E::File("a", b"first", 0o644),
        E::File("big", &big, 0o644),
        E::File("z", b"last", 0o644),
    ];
    let tar = tar_of(&entries);

    // A gzip stream cut in the middle, described honestly by the manifest.
    let full = gzip(&tar);
    let cut = Layer {
        blob: full[..full.len() / 2].to_vec(),
        tar: tar.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let src = t.source_dir("gzip");
    layout(&src, &[cut], None, |_| {});
    refused(&t, &format!("oci:{}", src.display()), &["layer sha256:"]);

    // A gzip stream without its trailer (the tar inside is whole).
    let cut = Layer {
        blob: full[..full.len() - 8].to_vec(),
        tar: tar.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let src = t.source_dir("gzip-trailer");
    layout(&src, &[cut], None, |_| {});
    refused(&t, &format!("oci:{}", src.display()), &["layer sha256:"]);

    // A plain tar cut inside a file's content.
    let cut_tar = tar[..tar.len() / 2].to_vec();
    let cut = Layer {
        blob: cut_tar.clone(),
        tar: cut_tar,
        media_type: "application/vnd.oci.image.layer.v1.tar",
    };
    let src = t.source_dir("tar");
    layout(&src, &[cut], None, |_| {});
    refused(
        &t,
        &format!("oci:{}", src.display()),
        &["entry \"big\"", "truncated"],
    );

    // A plain tar cut at an entry boundary: no end-of-archive blocks.
    let boundary = 512 + 512 + 512 + big.len().div_ceil(512) * 512;
    let cut_tar = tar[..boundary].to_vec();
    let cut = Layer {
        blob: cut_tar.clone(),
        tar: cut_tar,
        media_type: "application/vnd.oci.image.layer.v1.tar",
    };
    let src = t.source_dir("tar-boundary");
    layout(&src, &[cut], None, |_| {});
    refused(
        &t,
        &format!("oci:{}", src.display()),
        &["truncated tar", "after entry \"big\""],
    );
}

#[test]
fn whiteouts_across_two_layers() {
    let t = TestStore::new();
    let src = t.source_dir("whiteouts");
    let lower = gz(&[
        E::File("a/1", b"1", 0o644),
        E::File("a/2", b"2", 0o644),
        E::File("b/x", b"x", 0o644),
        E::Char("b/dev", 1, 3),
        E::File("c/keep", b"keep", 0o644),
    ]);
    let upper = gz(&[
        E::File("a/.wh.1", b"", 0o644),
        E::File("b/.wh..wh..opq", b"", 0o644),
        E::File("b/new", b"new", 0o644),
        E::File("c/.wh..wh.plnk", b"", 0o644),
    ]);
    layout(&src, &[lower, upper], Some("wh:1"), |_| {});
    let spec = format!("oci:{}", src.display());
    if !is_root() {
        eprintln!(
            "whiteouts_across_two_layers: not root: checking only that whiteouts are refused cleanly (they need mknod and trusted.* xattrs)"
        );
        refused(&t, &spec, &["layer sha256:", ".wh.", "needs root"]);
        return;
    }
    t.import(&spec, None).unwrap();
    let image = t.store.resolve("wh:1").unwrap().unwrap();
    let upper = &image.layers[1];
    let wh = fs::symlink_metadata(upper.join("a/1")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!upper.join("a/.wh.1").exists());
    assert!(!upper.join("b/.wh..wh..opq").exists());
    assert!(!upper.join("c/.wh..wh.plnk").exists());
    assert_eq!(
        xattr(&upper.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(
        image.devices.is_empty(),
        "the opaque b/ hides the lower b/dev"
    );

    // Stacked by overlayfs, the two layers give the expected tree.
    let merged = t.tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lower = format!(
        "{}:{}",
        image.layers[1].display(),
        image.layers[0].display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lower}").as_str()),
    )
    .unwrap();
    let mut seen = Vec::new();
    for dir in ["a", "b", "c"] {
        let mut names: Vec<String> = fs::read_dir(merged.join(dir))
            .unwrap()
            .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        names.sort();
        seen.extend(names);
    }
    nix::mount::umount(&merged).unwrap();
    assert_eq!(seen, ["a/2", "b/new", "c/keep"]);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated strings and a buffer of the size given.
    let r =
        unsafe { nix::libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// `docker save` output: manifest.json, the config named by its digest,
/// one plain and one gzip layer.
fn docker_archive(
    path: &Path,
    layers: &[Layer],
    tags: &[&str],
    diff_ids: Option<Vec<String>>,
) -> Vec<u8> {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256(&l.tar)).collect());
    let config = config_json(&diff_ids);
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        add(&name, &l.blob);
        names.push(name);
    }
    add(&config_name, &config);
    let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
    config
}

#[test]
fn converts_a_docker_archive() {
    let t = TestStore::new();
    let file = t.source_dir("docker").join("save.tar");
    let layers = [
        plain(&[E::File("one", b"1", 0o644)]),
        gz(&[E::File("two", b"2", 0o644)]),
    ];
    let config = docker_archive(&file, &layers, &["example.com/app:v1", "app:latest"], None);
    let r = t
        .import(&format!("docker-archive:{}", file.display()), None)
        .unwrap();
    assert_eq!(r.reference, "example.com/app:v1");
    let image = t.store.resolve("example.com/app:v1").unwrap().unwrap();
    assert_eq!(fs::read(image.layers[0].join("one")).unwrap(), b"1");
    assert_eq!(fs::read(image.layers[1].join("two")).unwrap(), b"2");

    // The stored manifest is OCI, with the config kept byte for byte and
    // media types from the layers' real compression.
    let blobs = t.tmp.path().join("images/blobs/sha256");
    let manifest_bytes = fs::read(blobs.join(&r.digest[7..])).unwrap();
    assert_eq!(sha256(&manifest_bytes), r.digest);
    let m: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(m["config"]["digest"], sha256(&config));
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(m["layers"][1]["digest"], sha256(&layers[1].blob));
    assert_eq!(
        fs::read(blobs.join(&sha256(&config)[7..])).unwrap(),
        config,
        "the config is kept as it was"
    );

    // Another tag of the archive, chosen by name.
    let r2 = t
        .import(&format!("docker-archive:{}:app", file.display()), None)
        .unwrap();
    assert_eq!(
        (r2.reference.as_str(), r2.digest.as_str()),
        ("docker.io/library/app:latest", r.digest.as_str())
    );

    // diff_ids that are not the layers' are refused, leaving nothing.
    let bad = t.source_dir("docker-bad").join("save.tar");
    let wrong = vec![sha256(&layers[0].tar), sha256(b"not it")];
    docker_archive(&bad, &layers, &["bad:1"], Some(wrong));
    refused(
        &t,
        &format!("docker-archive:{}", bad.display()),
        &["diff_id mismatch"],
    );
}

#[test]
fn imports_an_oci_archive() {
    let t = TestStore::new();
    let src = t.source_dir("layout");
    let digest = layout(&src, &[gz(&base_entries())], Some("arch:1"), |_| {});
    let file = t.source_dir("archive").join("image.tar");
    let mut b = tar::Builder::new(fs::File::create(&file).unwrap());
    b.append_dir_all(".", &src).unwrap();
    b.finish().unwrap();
    drop(b);
    let r = t
        .import(&format!("oci-archive:{}", file.display()), None)
        .unwrap();
    assert_eq!(
        (r.reference.as_str(), r.digest.as_str()),
        ("docker.io/library/arch:1", digest.as_str())
    );
    // Gzipped archives too.
    let gz_file = t.source_dir("archive").join("image.tar.gz");
    fs::write(&gz_file, gzip(&fs::read(&file).unwrap())).unwrap();
    let r = t
        .import(
            &format!("oci-archive:{}:arch:1", gz_file.display()),
            Some("arch:2"),
        )
        .unwrap();
    assert_eq!(r.digest, digest);
    assert!(
        !t.snapshot()
            .keys()
            .any(|k| k.to_string_lossy().starts_with(".staging-"))
    );
}

fn write_state(t: &TestStore, pod: &str, image: &str, finished: bool) {
    let dir = t.tmp.path().join("run").join(pod);
    fs::create_dir_all(&dir).unwrap();
    let state = json!({
        "name": pod, "namespace": "default", "uid": "u", "supervisorPid": 1,
        "dirs": {"run": dir, "data": "/nonexistent", "logs": "/nonexistent"},
        "cgroup": "/nonexistent", "limits": {"enforced": false}, "containers": {},
        "pod": {"metadata": {"name": pod}, "spec": {"containers": [{"name": "c", "image": image}]}},
        "status": {}, "finished": finished, "tornDown": finished,
    });
    fs::write(dir.join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
}

#[test]
fn rm_refuses_an_image_in_use_and_removes_only_what_no_other_image_uses() {
    let t = TestStore::new();
    let shared = gz(&[E::File("shared", b"s", 0o644)]);
    let own = gz(&[E::File("own", b"o", 0o644)]);
    let a = t.source_dir("a");
    layout(&a, &[shared, own], Some("a:1"), |_| {});
    let b = t.source_dir("b");
    layout(
        &b,
        &[gz(&[E::File("shared", b"s", 0o644)])],
        Some("b:1"),
        |_| {},
    );
    let ra = t.import(&format!("oci:{}", a.display()), None).unwrap();
    t.import(&format!("oci:{}", b.display()), None).unwrap();
    let image_a = t.store.resolve("a:1").unwrap().unwrap();

    write_state(&t, "web", "docker.io/library/a:1", false);
    let before = t.snapshot();
    let e = t.remove(&["a:1".to_owned()]).unwrap_err();
    assert!(
        matches!(&e, ImageError::InUse { pod, .. } if pod == "web"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
    // By digest too.
    write_state(&t, "web", &format!("a@{}", ra.digest), false);
    assert!(matches!(
        t.remove(&["a".to_owned() + ":1"]),
        Err(ImageError::InUse { .. })
    ));
    let e = t.remove(&["nothere".to_owned()]).unwrap_err();
    assert!(matches!(e, ImageError::NotFound(_)), "{e}");

    // Once the pod finished, the image goes; the layer b shares stays.
    write_state(&t, "web", "a:1", true);
    let removed = t.remove(&["a:1".to_owned()]).unwrap();
    assert_eq!(removed.untagged, ["docker.io/library/a:1"]);
    assert_eq!(removed.deleted, std::slice::from_ref(&ra.digest));
    assert!(t.store.resolve("a:1").unwrap().is_none());
    assert!(!image_a.layers[1].exists(), "a's own layer is removed");
    assert!(image_a.layers[0].exists(), "the layer b uses stays");
    assert!(
        !t.tmp
            .path()
            .join("images/blobs/sha256")
            .join(&ra.digest[7..])
            .exists()
    );
    let b_image = t.store.resolve("b:1").unwrap().unwrap();
    assert_eq!(fs::read(b_image.layers[0].join("shared")).unwrap(), b"s");
}

#[test]
fn prune_removes_what_nothing_references() {
    let t = store_with_an_image();
    let kept = t.snapshot();
    // Left by a process that is gone (no pid is this high).
    let leftover = t.tmp.path().join(".staging-2147483647-000000001");
    // A pull under way in a live process downloads without the lock.
    let live = t
        .tmp
        .path()
        .join(format!(".staging-{}-000000002", std::process::id()));
    fs::create_dir_all(live.join("blobs")).unwrap();
    fs::create_dir_all(leftover.join("layers/x/root/ro")).unwrap();
    fs::set_permissions(
        leftover.join("layers/x/root/ro"),
        fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    let stray_blob = t
        .tmp
        .path()
        .join("images/blobs/sha256")
        .join(&sha256(b"stray")[7..]);
    fs::write(&stray_blob, b"stray").unwrap();
    let stray_layer = t
        .tmp
        .path()
        .join("layers/sha256")
        .join(&sha256(b"layer")[7..]);
    fs::create_dir_all(stray_layer.join("root")).unwrap();
    let (removed, freed) = t.store.prune().unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(freed >= 5);
    assert!(!leftover.exists() && !stray_blob.exists() && !stray_layer.exists());
    assert!(live.is_dir(), "a live process's staging was pruned");
    fs::remove_dir_all(&live).unwrap();
    assert_eq!(t.snapshot(), kept);
    assert!(t.store.resolve("good:1").unwrap().is_some());
}

/// A layer unpacks however deep it nests (the unpacker walks by
/// descriptor): prune measures and removes one deeper than PATH_MAX.
#[test]
fn prune_removes_a_layer_deeper_than_path_max() {
    let t = store_with_an_image();
    let kept = t.snapshot();
    let outside = t.tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"keep").unwrap();
    let stray_layer = t
        .tmp
        .path()
        .join("layers/sha256")
        .join(&sha256(b"deep")[7..]);
    // Long names take the paths past PATH_MAX in a few levels, quickly.
    let name = "d".repeat(200);
    let bytes = tree::tests::deep_tree(&stray_layer, 30, &name, &outside);
    let (removed, freed) = t.store.prune().unwrap();
    assert_eq!(removed, std::slice::from_ref(&stray_layer));
    assert_eq!(freed, bytes);
    assert!(fs::symlink_metadata(&stray_layer).is_err());
    assert!(outside.join("keep").exists());
    assert_eq!(t.snapshot(), kept);
}

#[test]
fn layers_an_overlay_still_mounts_survive_rm_and_prune() {
    if !is_root() {
        eprintln!(
            "layers_an_overlay_still_mounts_survive_rm_and_prune: skipped: mounting an overlay needs root"
        );
        return;
    }
    let t = store_with_an_image();
    let image = t.store.resolve("good:1").unwrap().unwrap();
    let merged = t.tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    // Two lowers, as a container's read-only root would have them.
    let empty = t.source_dir("empty");
    let lower = format!("{}:{}", image.layers[0].display(), empty.display());
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lower}").as_str()),
    )
    .unwrap();
    let removed = t.remove(&["good:1".to_owned()]);
    let pruned = t.store.prune();
    let still_there = image.layers[0].join("bin/busybox").is_file();
    nix::mount::umount(&merged).unwrap();
    removed.unwrap();
    pruned.unwrap();
    assert!(still_there, "a mounted layer was removed");
    let (gone, _) = t.store.prune().unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(!image.layers[0].exists());
}

#[test]
fn a_store_made_readable_by_others_is_made_private_again() {
    let t = TestStore::new();
    let images = t.tmp.path().join("images");
    let layers = t.tmp.path().join("layers");
    for dir in [&images, &layers] {
        assert_eq!(
            fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Store::open(&images, &layers).unwrap();
    for dir in [&images, &layers] {
        assert_eq!(
            fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
