"""Images for the image tests, made here from nothing.

- the test image: `scripts/build-test-image` (busybox-static) into a
  directory, read back as an `Image`;
- OCI layouts written here entry by entry: `layer()` makes a gzip layer from
  tar entries given in order (`file`, `directory`, `symlink`, `hardlink`,
  `whiteout`, `opaque`), `write_layout()` an image of such layers;
- the crafted bad images (`BAD`): escapes through a symlink or a hard link,
  a `../` path, a blob that is not what the manifest says (digest, size),
  a truncated gzip layer; and the two-layer image with whiteouts;
- `oci-archive:` and `docker-archive:` files made from a layout by skopeo,
  and an image's root filesystem unpacked by umoci, the reference unpacker;
- `tree()`: everything about a directory tree that an unpacker or a store
  could change (paths, types, modes, owners, link targets, contents, hard
  link groups, device numbers, xattrs), to compare two trees or one tree
  before and after.

Nothing here needs podrun; the tests drive podrun with these.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_TEST_IMAGE = REPO / "scripts" / "build-test-image"
TEST_IMAGE_REF = "podrun.local/busybox:1.35"

STORE = Path("/var/lib/podrun/images")
LAYERS = Path("/var/lib/podrun/layers")

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# --- tar entries ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tar entry, written with exactly this name (no cleaning: the bad
    archives need `../` and the like)."""

    name: str
    kind: bytes
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0


def file(name, data, mode=0o644, uid=0, gid=0):
    if isinstance(data, str):
        data = data.encode()
    return Entry(name, tarfile.REGTYPE, data, mode, uid=uid, gid=gid)


def directory(name, mode=0o755, uid=0, gid=0):
    return Entry(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)


def symlink(name, target):
    return Entry(name, tarfile.SYMTYPE, mode=0o777, linkname=target)


def hardlink(name, target):
    return Entry(name, tarfile.LNKTYPE, linkname=target)


def whiteout(path):
    """The OCI whiteout that deletes `path` of the layers below."""
    parent, base = os.path.split(path)
    return file(os.path.join(parent, ".wh." + base), b"")


def opaque(directory_path):
    """The OCI opaque whiteout: `directory_path` hides everything below."""
    return file(os.path.join(directory_path, ".wh..wh..opq"), b"")


def tar_bytes(entries) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            t = tarfile.TarInfo(e.name)
            t.type = e.kind
            t.mode = e.mode
            t.linkname = e.linkname
            t.uid, t.gid = e.uid, e.gid
            t.uname = t.gname = ""
            t.mtime = 0
            t.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            tar.addfile(t, io.BytesIO(e.data) if t.size else None)
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def noise(size: int, seed: str) -> bytes:
    """`size` bytes that do not compress, the same for the same seed."""
    out, block = bytearray(), seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


# --- layouts ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    """A layer blob as it is stored and the digest of its uncompressed tar."""

    blob: bytes
    diff_id: str
    media_type: str = LAYER_GZIP

    @property
    def digest(self) -> str:
        return sha256(self.blob)


def layer(entries) -> Layer:
    raw = tar_bytes(entries)
    return Layer(gzip_bytes(raw), sha256(raw))


@dataclasses.dataclass(frozen=True)
class Image:
    """An image in an OCI layout directory, under one ref name."""

    layout: Path
    ref: str
    manifest_digest: str
    config: dict
    config_digest: str
    layers: tuple

    @property
    def source(self) -> str:
        """The containers-transports name of the image: `oci:DIR:REF`."""
        return f"oci:{self.layout}:{self.ref}"

    @property
    def diff_ids(self):
        return [layer.diff_id for layer in self.layers]

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / hex_of(digest)


def image_config(diff_ids, **config) -> dict:
    """An OCI config like the test image's (Cmd sh, the usual PATH)."""
    body = {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"}
    body.update(config)
    return {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": body,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "runtime-tests/images.py"}]
        * len(diff_ids),
    }


def _descriptor(media_type, blob):
    return {"mediaType": media_type, "digest": sha256(blob), "size": len(blob)}


def _put_blob(layout: Path, blob: bytes) -> str:
    digest = sha256(blob)
    path = layout / "blobs" / "sha256" / hex_of(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return digest


def write_layout(layout, layers, ref, config=None) -> Image:
    """Writes an OCI layout at `layout` holding one image, `ref`, of these
    layers (bottom first) and `config` (default: `image_config`)."""
    layout = Path(layout)
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    layers = tuple(layers)
    config = config if config is not None else image_config([x.diff_id for x in layers])
    config_blob = canonical(config)
    for x in layers:
        _put_blob(layout, x.blob)
    _put_blob(layout, config_blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _descriptor(CONFIG, config_blob),
        "layers": [
            {"mediaType": x.media_type, "digest": x.digest, "size": len(x.blob)} for x in layers
        ],
    }
    return _write_manifest(layout, ref, manifest, config, layers)


def _write_manifest(layout: Path, ref, manifest: dict, config: dict, layers) -> Image:
    blob = canonical(manifest)
    digest = _put_blob(layout, blob)
    entry = _descriptor(MANIFEST, blob)
    entry["platform"] = {"architecture": "amd64", "os": "linux"}
    entry["annotations"] = {REF_NAME: ref}
    (layout / "index.json").write_bytes(
        canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]})
    )
    return Image(layout, ref, digest, config, manifest["config"]["digest"], tuple(layers))


def read_layout(layout, ref) -> Image:
    """The image `ref` of an OCI layout (one made by build-test-image)."""
    layout = Path(layout)
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == ref]
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / hex_of(entry["digest"])).read_bytes())
    config = json.loads((blobs / hex_of(manifest["config"]["digest"])).read_bytes())
    layers = tuple(
        Layer((blobs / hex_of(d["digest"])).read_bytes(), diff_id, d["mediaType"])
        for d, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)
    )
    return Image(layout, ref, entry["digest"], config, manifest["config"]["digest"], layers)


def build_test_image(out_dir, tag=TEST_IMAGE_REF, env=None) -> Image:
    """Runs scripts/build-test-image into `out_dir`; the image it made."""
    result = subprocess.run(
        [str(BUILD_TEST_IMAGE), "--tag", tag, str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, f"scripts/build-test-image failed: {result.stderr}"
    image = read_layout(out_dir, tag)
    assert result.stdout.split() == [tag, image.manifest_digest], result.stdout
    return image


# --- the crafted images --------------------------------------------------------


def fresh_layer(tag: str) -> Layer:
    """A harmless layer no store has yet: its content names `tag`."""
    return layer([directory("fresh"), file(f"fresh/{tag}", f"{tag}\n")])


def whiteout_layers():
    """Two layers over a base: the first makes /data and /opq, the second
    deletes a file and a directory with `.wh.` files, makes /opq opaque,
    changes a file and adds two. What a container must see:
    `WHITEOUT_TREE` and `WHITEOUT_CONTENTS`."""
    lower = layer(
        [
            directory("data"),
            file("data/keep", "kept\n"),
            file("data/gone", "gone\n"),
            file("data/changed", "old\n"),
            directory("data/dir"),
            file("data/dir/old", "old\n"),
            directory("opq"),
            file("opq/a", "a\n"),
            directory("opq/sub"),
            file("opq/sub/b", "b\n"),
        ]
    )
    upper = layer(
        [
            directory("data"),
            whiteout("data/gone"),
            whiteout("data/dir"),
            file("data/changed", "new\n"),
            file("data/added", "added\n"),
            directory("opq"),
            opaque("opq"),
            file("opq/new", "new\n"),
        ]
    )
    return lower, upper


WHITEOUT_TREE = ["/data", "/data/added", "/data/changed", "/data/keep", "/opq", "/opq/new"]
WHITEOUT_CONTENTS = {"/data/keep": "kept", "/data/changed": "new", "/data/added": "added", "/opq/new": "new"}

# Enough `..` to reach / from wherever an unpacker puts a layer.
UP = "/".join([".."] * 16)


@dataclasses.dataclass(frozen=True)
class Bad:
    """A crafted image that an import must refuse: the error must contain
    `named` (the bad entry's name, or the bad blob's digest), and none of
    `outside` (paths a broken unpacker would write) may exist afterwards;
    `links` are host files whose link count must not change."""

    image: Image
    named: str
    outside: tuple = ()
    links: tuple = ()


def _two_layer(work: Path, tag: str, bad: Layer, ref: str) -> Image:
    # A good, new layer first: a refused import must not keep it either.
    return write_layout(work / "layout", [fresh_layer(tag), bad], ref)


def bad_symlink_absolute(work: Path, tag: str, ref: str) -> Bad:
    """`evil -> /…/outside` (an absolute symlink), then `evil/passwd`: a
    file written through the link lands outside the layer."""
    outside = work / "outside"
    outside.mkdir()
    bad = layer([directory("data"), file("data/before", "x"), symlink("evil", str(outside)),
                 file("evil/passwd", "pwned\n"), file("data/after", "x")])
    return Bad(_two_layer(work, tag, bad, ref), "evil", outside=(outside / "passwd",))


def bad_symlink_relative(work: Path, tag: str, ref: str) -> Bad:
    """`evil -> ../../../..…` (up past the root), then a file under it that
    names the outside directory."""
    outside = work / "outside"
    outside.mkdir()
    through = "evil/" + str(outside).lstrip("/") + "/passwd"
    bad = layer([directory("data"), file("data/before", "x"), symlink("evil", UP),
                 file(through, "pwned\n"), file("data/after", "x")])
    return Bad(_two_layer(work, tag, bad, ref), "evil", outside=(outside / "passwd",))


def bad_hardlink_etc_shadow(work: Path, tag: str, ref: str) -> Bad:
    """A hard link `innocent` to `../../etc/shadow`."""
    bad = layer([directory("data"), file("data/before", "x"), hardlink("innocent", "../../etc/shadow"),
                 file("data/after", "x")])
    links = (Path("/etc/shadow"),) if Path("/etc/shadow").exists() else ()
    return Bad(_two_layer(work, tag, bad, ref), "innocent", links=links)


def bad_hardlink_host_file(work: Path, tag: str, ref: str) -> Bad:
    """A hard link `innocent` to a host file, by enough `..` to reach it
    from any directory."""
    outside = work / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("host secret\n")
    target = UP + str(secret)
    bad = layer([directory("data"), file("data/before", "x"), hardlink("innocent", target),
                 file("data/after", "x")])
    return Bad(_two_layer(work, tag, bad, ref), "innocent", links=(secret,))


def bad_dotdot_path(work: Path, tag: str, ref: str) -> Bad:
    """An entry named `../../tmp/pwned`."""
    bad = layer([directory("data"), file("data/before", "x"), file("../../tmp/pwned", "pwned\n"),
                 file("data/after", "x")])
    outside = (Path("/tmp/pwned"), LAYERS / "tmp" / "pwned", LAYERS.parent / "tmp" / "pwned")
    return Bad(_two_layer(work, tag, bad, ref), "../../tmp/pwned", outside=outside)


def bad_dotdot_path_deep(work: Path, tag: str, ref: str) -> Bad:
    """An entry that climbs past the root into a host directory."""
    outside = work / "outside"
    outside.mkdir()
    name = UP + str(outside / "pwned")
    bad = layer([directory("data"), file("data/before", "x"), file(name, "pwned\n"),
                 file("data/after", "x")])
    return Bad(_two_layer(work, tag, bad, ref), "pwned", outside=(outside / "pwned",))


def _big_layer(tag: str) -> Layer:
    """A layer with an incompressible file, so that cutting or changing its
    blob lands inside a file's data."""
    return layer([directory("data"), file("data/before", "x"),
                  file("data/noise", noise(256 * 1024, tag)), file("data/after", "x")])


def bad_digest_mismatch(work: Path, tag: str, ref: str) -> Bad:
    """The layer blob changed (one byte, same size) after the manifest
    was written."""
    good = _big_layer(tag)
    image = _two_layer(work, tag, good, ref)
    blob = bytearray(good.blob)
    blob[len(blob) // 2] ^= 0xFF
    image.blob(good.digest).write_bytes(bytes(blob))
    return Bad(image, hex_of(good.digest))


def bad_size_mismatch(work: Path, tag: str, ref: str) -> Bad:
    """The manifest gives the layer one byte more than its blob has."""
    good = _big_layer(tag)
    image = _two_layer(work, tag, good, ref)
    manifest = json.loads(image.blob(image.manifest_digest).read_bytes())
    manifest["layers"][1]["size"] += 1
    image.blob(image.manifest_digest).unlink()
    image = _write_manifest(image.layout, ref, manifest, image.config, image.layers)
    return Bad(image, hex_of(good.digest))


def bad_truncated_gzip(work: Path, tag: str, ref: str) -> Bad:
    """A gzip layer cut in half; the manifest has the digest and size of
    what is left, so only reading the layer finds it."""
    good = _big_layer(tag)
    cut = Layer(good.blob[: len(good.blob) // 2], good.diff_id)
    image = _two_layer(work, tag, cut, ref)
    return Bad(image, hex_of(cut.digest))


BAD = {
    "symlink-escape-absolute": bad_symlink_absolute,
    "symlink-escape-relative": bad_symlink_relative,
    "hardlink-escape-etc-shadow": bad_hardlink_etc_shadow,
    "hardlink-escape-host-file": bad_hardlink_host_file,
    "dotdot-path": bad_dotdot_path,
    "dotdot-path-deep": bad_dotdot_path_deep,
    "digest-mismatch": bad_digest_mismatch,
    "size-mismatch": bad_size_mismatch,
    "truncated-gzip": bad_truncated_gzip,
}


# --- skopeo and umoci ----------------------------------------------------------


def _run(*argv, timeout=120):
    result = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed: {result.stderr}"
    return result


def oci_archive(image: Image, path) -> str:
    """An oci-archive of the image made by skopeo; its source name,
    `oci-archive:FILE:REF`."""
    _run("skopeo", "copy", "-q", image.source, f"oci-archive:{path}:{image.ref}")
    return f"oci-archive:{path}:{image.ref}"


def docker_archive(image: Image, path) -> str:
    """A docker-archive (the `docker save` format) of the image made by
    skopeo, tagged with the image's ref; its source name,
    `docker-archive:FILE`."""
    _run("skopeo", "copy", "-q", image.source, f"docker-archive:{path}:{image.ref}")
    return f"docker-archive:{path}"


def umoci_unpack(image: Image, rootfs) -> Path:
    """The image's root filesystem as umoci unpacks it, into `rootfs`.
    `umoci raw unpack`: the layers through the same unpacker as `umoci
    unpack`, without the runtime bundle's config.json and mtree manifest
    (hashing every file for the mtree takes a minute in the VM)."""
    _run("umoci", "raw", "unpack", "--image", f"{image.layout}:{image.ref}", rootfs)
    return Path(rootfs)


# --- trees ----------------------------------------------------------------------


def _xattrs(path: str):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    found = []
    for n in sorted(names):
        try:
            found.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError as e:
            found.append((n, f"unreadable: {e.strerror}"))
    return tuple(found)


def _digest_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree(root, include_root=True):
    """{relative path: what an unpacker decides about it}, for every path
    under `root` (and `.` itself unless include_root=False): the type,
    permission bits (with setuid, setgid, sticky), uid, gid, and then the
    link target, the sha256 of a file's content and the first path of its
    hard link group, a device's numbers; and the xattrs. Times are left
    out. None when `root` does not exist."""
    root = str(root)
    if not os.path.lexists(root):
        return None
    # A hard link group is read once (the test image has 268 links to one
    # busybox: hashing each would take minutes in the VM).
    out, inodes, contents = {}, {}, {}

    def describe(path, rel):
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        what = [stat.filemode(st.st_mode)[0], oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid]
        if stat.S_ISLNK(st.st_mode):
            what.append(os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            inode = (st.st_dev, st.st_ino)
            if inode not in contents:
                contents[inode] = _digest_file(path)
            what.append(contents[inode])
            if st.st_nlink > 1:
                what.append("linked with " + inodes.setdefault((st.st_dev, st.st_ino), rel))
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            what.append((os.major(st.st_rdev), os.minor(st.st_rdev)))
        what.append(_xattrs(path))
        out[rel] = tuple(what)

    if include_root:
        describe(root, ".")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            path = os.path.join(dirpath, n)
            describe(path, os.path.relpath(path, root))
    return out


def store_trees():
    """The trees of podrun's image store and layer cache, and the names in
    /var/lib/podrun (where a staging directory could be left behind)."""
    top = STORE.parent
    names = sorted(os.listdir(top)) if top.is_dir() else None
    return {"images": tree(STORE), "layers": tree(LAYERS), "top": names}


def unpacked_layer(layer: Layer) -> Path:
    """The tree podrun unpacked `layer` into, the overlayfs lower its
    containers use: `/var/lib/podrun/layers/sha256/<diff_id hex>/root`
    (beside it, podrun's own `layer.json`)."""
    root = LAYERS / "sha256" / hex_of(layer.diff_id) / "root"
    assert root.is_dir(), f"podrun has no unpacked layer {layer.diff_id} (blob {layer.digest}): no {root}"
    return root


def tree_diff(before, after, limit=20):
    """What differs between two `tree()`s, a line per path (at most `limit`)."""
    if before is None or after is None:
        return [] if before == after else [f"tree {'appeared' if before is None else 'vanished'}"]
    lines = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a != b:
            lines.append(f"{path}: {a} -> {b}")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
