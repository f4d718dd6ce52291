"""Container images: scripts/build-test-image, `podrun image import` from
`oci:`, `oci-archive:` and `docker-archive:` (the archives made by skopeo),
`image ls`, `inspect`, `rm` and `prune`, name normalisation, safe
unpacking (podrun's unpacked layer against umoci's; whiteouts across two
layers seen from a running container; crafted bad images refused, naming
the bad entry, with the store and layer cache byte-for-byte unchanged),
and pods on images: two pods sharing one image's unpacked layers but not
their writes, the image config under the container's own settings,
`image rm` refused while a pod uses the image, and the kubelet's waiting
reasons for an image a container cannot have (ErrImageNeverPull,
ErrImagePull from a registry that is down, `Always` pulling even an image
the store holds) while the pod runs. Pulls from real registries are
test_registry.py's.
These run on the host and in the VM.

The tests never touch a user's images: every image they import has a name
of their own (`podrun.local/podrun-test-<hex>/...`, `podrun-test-<hex>`)
and is removed at the end; the store's trees are compared around each
refused import.
"""

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import podrun_bin
from images import (
    BAD,
    PATH_ENV,
    STORE,
    WHITEOUT_CONTENTS,
    WHITEOUT_TREE,
    build_test_image,
    docker_archive,
    fresh_layer,
    hex_of,
    oci_archive,
    store_trees,
    tree,
    tree_diff,
    umoci_unpack,
    unpacked_layer,
    whiteout_layers,
    write_layout,
)
from pods import (
    RUN_ROOT,
    image_container,
    manifest,
    output_of,
    root_overlay,
    running,
    state,
    up,
    wait_for,
    write,
)

LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def unique() -> str:
    return uuid.uuid4().hex[:12]


class Names:
    """Unique image names for one test; each is removed at its end."""

    def __init__(self):
        self.made = []

    def new(self, stem="image", tag="1.0"):
        return self.keep(f"podrun.local/podrun-test-{unique()}/{stem}:{tag}")

    def keep(self, ref):
        self.made.append(ref)
        return ref


@pytest.fixture
def images(podrun):
    names = Names()
    yield names
    # Refused or never-made imports answer 2 here: nothing to remove.
    for ref in names.made:
        podrun("image", "rm", ref)


@pytest.fixture
def pods(request, images):
    """new() -> a unique pod name; every pod made is removed (`rm --force`)
    at the end, before the test's images (this fixture needs `images`, so
    it ends first)."""
    made = []
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:30].strip("-")

    def new():
        made.append(f"{stem}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield new
    for pod in made:
        subprocess.run([str(podrun_bin()), "rm", "--force", pod], capture_output=True, timeout=60)


def imported(podrun, source, ref):
    """Imports `source` as `ref`; the digest podrun printed."""
    result = podrun("image", "import", source, ref, timeout=120)
    assert result.returncode == 0, f"podrun image import {source} {ref}: {result.stderr}"
    printed = result.stdout.split()
    assert len(printed) == 2 and printed[0] == ref, result.stdout
    assert printed[1].startswith("sha256:") and len(hex_of(printed[1])) == 64, result.stdout
    return printed[1]


def inspect(podrun, ref):
    result = podrun("image", "inspect", ref)
    assert result.returncode == 0, f"podrun image inspect {ref}: {result.stderr}"
    return json.loads(result.stdout)


def assert_store_unchanged(before, what):
    after = store_trees()
    for part in ("images", "layers"):
        diff = tree_diff(before[part], after[part])
        assert not diff, f"{what} changed /var/lib/podrun/{part}:\n" + "\n".join(diff)
    assert after["top"] == before["top"], f"{what} left something in /var/lib/podrun"


def cgroup_dirs():
    return sorted(str(p) for p in Path("/sys/fs/cgroup").rglob("podrun/*") if p.is_dir())


# --- the test image --------------------------------------------------------------


def test_build_test_image_is_deterministic_and_read_by_skopeo_and_umoci(tmp_path, test_image):
    again = build_test_image(tmp_path / "again")
    assert again.manifest_digest == test_image.manifest_digest
    assert not tree_diff(tree(test_image.layout), tree(again.layout))
    later = build_test_image(
        tmp_path / "later", env={**os.environ, "SOURCE_DATE_EPOCH": "86400"}
    )
    assert later.manifest_digest != test_image.manifest_digest
    assert later.config["created"] == "1970-01-02T00:00:00Z"

    assert test_image.config["architecture"] == "amd64" and test_image.config["os"] == "linux"
    assert test_image.config["config"] == {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"}
    (layer,) = test_image.layers
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer.blob[:2] == b"\x1f\x8b"

    inspected = subprocess.run(
        ["skopeo", "inspect", test_image.source], capture_output=True, text=True, timeout=60
    )
    assert inspected.returncode == 0, inspected.stderr
    facts = json.loads(inspected.stdout)
    assert facts["Digest"] == test_image.manifest_digest
    assert facts["Layers"] == [layer.digest]
    assert (facts["Architecture"], facts["Os"]) == ("amd64", "linux")
    config = subprocess.run(
        ["skopeo", "inspect", "--config", test_image.source], capture_output=True, text=True, timeout=60
    )
    assert config.returncode == 0, config.stderr
    assert json.loads(config.stdout) == test_image.config

    rootfs = umoci_unpack(test_image, tmp_path / "rootfs")
    busybox = rootfs / "bin" / "busybox"
    assert busybox.read_bytes() == Path("/bin/busybox").read_bytes()
    assert oct(busybox.stat().st_mode & 0o7777) == "0o755"
    applets = subprocess.run(
        ["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    linked = [a for a in applets if a.rsplit("/", 1)[0] in ("bin", "sbin", "usr/bin", "usr/sbin")]
    assert "bin/sh" in linked and len(linked) > 200
    for applet in linked:
        assert os.path.samefile(rootfs / applet, busybox), applet
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert oct((rootfs / "root").stat().st_mode & 0o7777) == "0o700"
    assert (rootfs / "home").is_dir()
    passwd = (rootfs / "etc" / "passwd").read_text().splitlines()
    assert [line.split(":")[:4] for line in passwd] == [
        ["root", "x", "0", "0"],
        ["nobody", "x", "65534", "65534"],
    ]
    group = (rootfs / "etc" / "group").read_text().splitlines()
    assert [line.split(":")[:3] for line in group] == [["root", "x", "0"], ["nobody", "x", "65534"]]
    owners = {(uid, gid) for _, _, uid, gid, *_ in tree(rootfs, include_root=False).values()}
    assert owners == {(0, 0)}
    # The image's busybox runs on its own, without the host's libraries.
    ran = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "busybox | head -n 1; echo $((6 * 7))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("BusyBox v1.35") and ran.stdout.splitlines()[-1] == "42"


# --- import, ls, inspect, rm, prune ------------------------------------------------


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive"])
def test_an_image_imported_from_each_transport_runs_as_a_pod(
    transport, tmp_path, podrun, images, pods, test_image
):
    source = {
        "oci": lambda: test_image.source,
        "oci-archive": lambda: oci_archive(test_image, tmp_path / "image.oci.tar"),
        "docker-archive": lambda: docker_archive(test_image, tmp_path / "image.docker.tar"),
    }[transport]()
    ref = images.new(transport)
    digest = imported(podrun, source, ref)
    config = inspect(podrun, ref)
    if transport == "docker-archive":
        # podrun writes the manifest itself: its digest is podrun's. The
        # config is the image's.
        for key in ("architecture", "os", "config", "rootfs"):
            assert config[key] == test_image.config[key], key
    else:
        assert digest == test_image.manifest_digest
        assert config == test_image.config

    pod = pods()
    script = "busybox | head -n 1; cat /etc/passwd; id -u; pwd"
    result = up(tmp_path, manifest(pod, [image_container("c", ref, script)]))
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "c")
    assert out[0].startswith("BusyBox v1.35"), out
    assert out[1:] == [
        "root:x:0:0:root:/root:/bin/sh",
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
        "0",
        "/",
    ]


def test_import_without_a_name_takes_the_name_the_source_carries(tmp_path, podrun, images):
    ref = images.new("carried", "2.0")
    image = build_test_image(tmp_path / "layout", tag=ref)
    oci_archive(image, tmp_path / "image.oci.tar")
    sources = [
        # The layout's (and the archive's) only image, named by its ref
        # annotation.
        f"oci:{image.layout}",
        f"oci-archive:{tmp_path / 'image.oci.tar'}",
        # The archive's RepoTags.
        docker_archive(image, tmp_path / "image.docker.tar"),
    ]
    for source in sources:
        result = podrun("image", "import", source, timeout=120)
        assert result.returncode == 0, f"{source}: {result.stderr}"
        assert result.stdout.split()[0] == ref, (source, result.stdout)
        removed = podrun("image", "rm", ref)
        assert removed.returncode == 0, removed.stderr


def test_short_names_are_normalised_as_docker_does_and_found_in_either_form(
    podrun, images, test_image
):
    short = f"podrun-test-{unique()}"
    full = images.keep(f"docker.io/library/{short}:latest")
    v1 = images.keep(f"docker.io/library/{short}:v1")
    for name, normalised in ((short, full), (f"{short}:v1", v1)):
        result = podrun("image", "import", test_image.source, name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [normalised, test_image.manifest_digest]
    for form in (short, f"{short}:latest", f"docker.io/library/{short}", full, f"library/{short}"):
        assert inspect(podrun, form) == test_image.config, form

    removed = podrun("image", "rm", short)
    assert removed.returncode == 0, removed.stderr
    gone = podrun("image", "inspect", full)
    assert gone.returncode == 2, gone.stdout
    assert short in gone.stderr
    assert inspect(podrun, f"{short}:v1") == test_image.config


def test_image_ls_lists_each_image_with_its_digest_and_size(podrun, busybox_image, test_image):
    table = podrun("image", "ls")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED", "SOURCE"]
    repository, tag = busybox_image.rsplit(":", 1)
    rows = [line.split() for line in lines[1:] if line.split()[:2] == [repository, tag]]
    assert len(rows) == 1, table.stdout
    shown = rows[0][2].removeprefix("sha256:")
    assert len(shown) >= 12 and hex_of(test_image.manifest_digest).startswith(shown), rows[0]

    listed = podrun("image", "ls", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    mine = [i for i in json.loads(listed.stdout) if (i["repository"], i["tag"]) == (repository, tag)]
    assert len(mine) == 1, listed.stdout
    assert mine[0]["digest"] == test_image.manifest_digest
    assert isinstance(mine[0]["size"], int) and mine[0]["size"] > 0
    assert mine[0]["created"]
    assert mine[0]["source"], "an imported image names the source it came from"


def test_the_store_is_an_oci_layout_skopeo_reads(tmp_path, busybox_image, test_image):
    assert json.loads((STORE / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    index = json.loads((STORE / "index.json").read_text())
    named = [
        m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == busybox_image
    ]
    assert [m["digest"] for m in named] == [test_image.manifest_digest]
    # Root's alone: layers keep setuid files and owners no host user may
    # reach (containers see them through their overlay mounts only).
    for private in (STORE, STORE.parent / "layers"):
        assert private.stat().st_mode & 0o777 == 0o700, private
    # skopeo checks every blob's digest as it copies: the store holds the
    # image whole. (Reading only: the store is left alone.)
    copied = subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{STORE}:{busybox_image}", f"oci:{tmp_path / 'copy'}:x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [test_image.manifest_digest]


def test_podruns_unpacked_layer_is_the_tree_umoci_unpacks(tmp_path, busybox_image, test_image):
    (layer,) = test_image.layers
    ours = tree(unpacked_layer(layer), include_root=False)
    theirs = tree(umoci_unpack(test_image, tmp_path / "rootfs"), include_root=False)
    diff = tree_diff(theirs, ours)
    assert not diff, "podrun's unpacked layer (right) differs from umoci's rootfs (left):\n" + "\n".join(diff)


def test_prune_removes_what_only_a_removed_image_used_and_keeps_the_rest(
    tmp_path, podrun, images, busybox_image, test_image
):
    fresh = fresh_layer(unique())
    ref = images.new("prune")
    image = write_layout(tmp_path / "layout", [*test_image.layers, fresh], ref)
    imported(podrun, image.source, ref)
    (base,) = test_image.layers
    fresh_dir, base_dir = unpacked_layer(fresh), unpacked_layer(base)
    blobs = STORE / "blobs" / "sha256"
    own = [fresh.digest, image.config_digest, image.manifest_digest]
    for digest in own:
        assert (blobs / hex_of(digest)).is_file(), digest

    removed = podrun("image", "rm", ref)
    assert removed.returncode == 0, removed.stderr
    pruned = podrun("image", "prune")
    assert pruned.returncode == 0, pruned.stderr
    for digest in own:
        assert not (blobs / hex_of(digest)).exists(), digest
    assert not fresh_dir.parent.exists()
    # What the session's image uses stays, and it still runs.
    assert base_dir.is_dir() and (blobs / hex_of(base.digest)).is_file()
    assert inspect(podrun, busybox_image) == test_image.config


# --- unpacking ------------------------------------------------------------------------


def test_whiteouts_across_two_layers_give_the_expected_tree_in_a_running_container(
    tmp_path, podrun, images, pods, test_image
):
    ref = images.new("whiteouts")
    lower, upper = whiteout_layers()
    image = write_layout(tmp_path / "layout", [*test_image.layers, lower, upper], ref)
    # umoci, the reference, agrees on what the layers mean.
    rootfs = umoci_unpack(image, tmp_path / "rootfs")
    seen = sorted(
        "/" + str(p.relative_to(rootfs))
        for top in ("data", "opq")
        for p in [rootfs / top, *(rootfs / top).rglob("*")]
    )
    assert seen == WHITEOUT_TREE

    imported(podrun, image.source, ref)
    script = "find /data /opq | sort; for f in " + " ".join(sorted(WHITEOUT_CONTENTS)) + '; do echo "$f=$(cat $f)"; done'
    result = up(tmp_path, manifest(pods(), [image_container("c", ref, script)]))
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "c")
    assert out[: len(WHITEOUT_TREE)] == WHITEOUT_TREE, out
    assert out[len(WHITEOUT_TREE):] == [f"{f}={WHITEOUT_CONTENTS[f]}" for f in sorted(WHITEOUT_CONTENTS)]


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_crafted_bad_image_is_refused_naming_the_entry_with_the_store_unchanged(
    case, tmp_path, podrun, images, busybox_image
):
    ref = images.new("bad")
    bad = BAD[case](tmp_path, unique(), ref)
    for path in bad.outside:
        assert not path.exists(), f"{path} exists before the test: remove it"
    links = {path: os.stat(path).st_nlink for path in bad.links}
    before = store_trees()

    result = podrun("image", "import", bad.image.source, ref, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert bad.named in result.stderr, result.stderr
    assert_store_unchanged(before, f"the refused import ({case})")
    for path in bad.outside:
        assert not path.exists(), f"the import wrote {path}"
    for path, count in links.items():
        assert os.stat(path).st_nlink == count, f"the import linked {path}"
    assert podrun("image", "inspect", ref).returncode == 2


# --- pods on images ----------------------------------------------------------------


def test_two_pods_from_one_image_share_its_layers_and_not_their_writes(
    tmp_path, podrun, pods, busybox_image, test_image
):
    (layer,) = test_image.layers
    layer_dir = unpacked_layer(layer)
    # The whole of podrun's directory for the layer, its metadata too.
    layer_before = tree(layer_dir.parent)
    a, b = pods(), pods()
    writes = "echo mine > /tmp/mine; " + LOOP
    for pod, script in ((a, writes), (b, LOOP)):
        started = podrun("up", "-d", write(tmp_path, manifest(pod, [image_container("c", busybox_image, script)])))
        assert started.returncode == 0, started.stderr
    wait_for(lambda: running(a, ["c"]) and running(b, ["c"]), "both pods to run")
    pid_a, pid_b = (state(p)["containers"]["c"]["pid"] for p in (a, b))
    wait_for(lambda: Path(f"/proc/{pid_a}/root/tmp/mine").exists(), "a to write /tmp/mine")

    assert Path(f"/proc/{pid_a}/root/tmp/mine").read_text() == "mine\n"
    assert not Path(f"/proc/{pid_b}/root/tmp/mine").exists()
    root_a, root_b = root_overlay(pid_a), root_overlay(pid_b)
    assert str(layer_dir) in root_a["lowerdir"], root_a
    assert str(layer_dir) in root_b["lowerdir"], root_b
    assert root_a["upperdir"] != root_b["upperdir"]
    assert not (layer_dir / "tmp" / "mine").exists()
    assert not tree_diff(layer_before, tree(layer_dir.parent))

    for pod in (a, b):
        down = podrun("down", pod)
        assert down.returncode == 0, down.stderr


def test_a_container_runs_with_the_image_config_under_its_own_settings(tmp_path, pods, busybox_image):
    show = ["sh", "-c", 'echo "$PATH"; pwd; id -un; echo "${EXTRA:-unset}"']
    default = image_container("default", busybox_image, args=show)
    tuned = image_container(
        "tuned",
        busybox_image,
        args=show,
        env=[{"name": "PATH", "value": "/bin:/usr/bin"}, {"name": "EXTRA", "value": "x"}],
        workingDir="/tmp",
        securityContext={"runAsUser": 65534},
    )
    result = up(tmp_path, manifest(pods(), [default, tuned]))
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "default") == [PATH_ENV.split("=", 1)[1], "/", "root", "unset"]
    assert output_of(result.stdout, "tuned") == ["/bin:/usr/bin", "/tmp", "nobody", "x"]


def test_image_rm_refuses_an_image_a_pod_uses_and_removes_it_once_the_pod_is_gone(
    tmp_path, podrun, images, pods, busybox_image, test_image
):
    ref = images.new("in-use")
    imported(podrun, test_image.source, ref)
    pod = pods()
    started = podrun("up", "-d", write(tmp_path, manifest(pod, [image_container("c", ref, LOOP)])))
    assert started.returncode == 0, started.stderr

    refused = podrun("image", "rm", ref)
    assert refused.returncode == 2, refused.stderr
    assert pod in refused.stderr
    assert inspect(podrun, ref) == test_image.config

    for verb in ("down", "rm"):
        done = podrun(verb, pod)
        assert done.returncode == 0, (verb, done.stderr)
    removed = podrun("image", "rm", ref)
    assert removed.returncode == 0, removed.stderr
    assert podrun("image", "inspect", ref).returncode == 2
    # The session's image, the same blobs under another name, is whole.
    assert inspect(podrun, busybox_image) == test_image.config
    assert unpacked_layer(test_image.layers[0]).is_dir()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: a registry that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waiting_reason(pod, container):
    status = json.loads(subprocess.run(
        [str(podrun_bin()), "status", pod, "-o", "json"], capture_output=True, text=True, check=True
    ).stdout)
    for c in status.get("containerStatuses") or []:
        if c["name"] == container:
            return (c["state"].get("waiting") or {}).get("reason")
    return None


def waits_for_its_image(tmp_path, podrun, pod, containers, reason):
    """`up -d` of a pod whose container "c" cannot have its image: `up -d`
    says the pod is held up (Pending, with c's waiting reason) and exits 1,
    leaving it; its other containers run, "c" waits with the kubelet's
    `reason`, and the store is as it was."""
    before = store_trees()
    started = podrun("up", "-d", write(tmp_path, manifest(pod, containers)))
    try:
        assert started.returncode == 1, started.stdout + started.stderr
        assert f"pod/{pod} Pending" in started.stderr and "c: " in started.stderr, started.stderr
        others = [c["name"] for c in containers if c["name"] != "c"]
        assert not others or running(pod, others), state(pod)
        wait_for(lambda: waiting_reason(pod, "c") == reason, f"c waiting in {reason}", timeout=60)
        assert_store_unchanged(before, f"a pod in {reason}")
        return podrun("events", pod).stdout
    finally:
        podrun("down", pod)
        podrun("rm", pod)


def test_a_missing_image_with_pull_policy_never_waits_in_err_image_never_pull(
    tmp_path, podrun, pods, busybox_image
):
    missing = f"podrun.local/podrun-test-{unique()}/absent:1.0"
    others = image_container("other", busybox_image, LOOP)
    events = waits_for_its_image(
        tmp_path, podrun, pods(),
        [image_container("c", missing, "true", pull="Never"), others], "ErrImageNeverPull",
    )
    assert f'Container image "{missing}" is not present with pull policy of Never' in events


def test_a_missing_image_from_a_registry_that_is_down_waits_in_err_image_pull(
    tmp_path, podrun, pods, busybox_image
):
    missing = f"127.0.0.1:{closed_port()}/podrun-test-{unique()}/absent:1.0"
    others = image_container("other", busybox_image, LOOP)
    events = waits_for_its_image(
        tmp_path, podrun, pods(),
        [image_container("c", missing, "true", pull="IfNotPresent"), others], "ErrImagePull",
    )
    assert f'Pulling image "{missing}"' in events
    assert f'Failed to pull image "{missing}"' in events
    assert "connect" in events.lower(), events


@pytest.mark.parametrize("how", ["Always", "latest-by-default"])
def test_pull_policy_always_pulls_even_an_image_the_store_holds(
    how, tmp_path, podrun, images, pods, test_image
):
    # The image is in the store, named for a registry that is down: only
    # the policy makes the kubelet pull it, and the pull fails.
    repo = f"127.0.0.1:{closed_port()}/podrun-test-{unique()}/always"
    if how == "Always":
        ref = images.keep(f"{repo}:1.0")
        c = image_container("c", ref, "true", pull="Always")
    else:
        ref = images.keep(f"{repo}:latest")
        c = image_container("c", repo, "true", pull=None)
    imported(podrun, test_image.source, ref)
    events = waits_for_its_image(tmp_path, podrun, pods(), [c], "ErrImagePull")
    assert "Pulling image" in events
