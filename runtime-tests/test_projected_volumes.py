"""configMap, secret, downwardAPI and projected volumes, as the kubelet
writes them (its atomic writer, pkg/volume/util/atomic_writer.go): the
payload in a timestamped `..YYYY_MM_DD_HH_MM_SS.N` directory, `..data` a
link to it, each top-level name a link into `..data`; modes from
`defaultMode` and `items[].mode`; secrets, downwardAPI and projected
volumes on a tmpfs; every such volume read-only in the container whatever
`readOnly` says; `fsGroup` owning them as SetVolumeOwnership makes it.
Each is checked from inside the container, with the image's busybox.

The manifests give their ConfigMaps and Secrets in the same file, as
multi-document YAML. These run on the host and in the VM.
"""

import base64
import json
import re
import subprocess
from pathlib import Path

from conftest import podrun_bin
from pods import (
    image_container,
    leftovers,
    manifest,
    mount_points,
    output_of,
    running,
    state,
    stop,
    wait_for,
)

# `..` + Go's "2006_01_02_15_04_05." in UTC + os.MkdirTemp's random uint32.
TIMESTAMP_DIR = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$")


def config_map(name, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name, data):
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": encoded,
    }


def write_documents(tmp_path: Path, name: str, *docs) -> Path:
    """The objects as one multi-document YAML file (each document in
    JSON, which is YAML)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text("".join(f"---\n{json.dumps(d, indent=1)}\n" for d in docs))
    return path


def up_documents(tmp_path, name, *docs, timeout=90):
    return subprocess.run(
        [str(podrun_bin()), "up", str(write_documents(tmp_path, name, *docs))],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def facts(lines):
    """`key=value` lines a container printed, as a dict."""
    found = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def describe(key, path):
    """Shell lines printing, for the volume at `path`: its names (`ls -1a`),
    the `..data` link, each top-level name's link, and its mount's type and
    options as the container's /proc/mounts has them."""
    return (
        f'echo "{key}:ls=$(ls -1a {path} | sort | tr "\\n" " ")"; '
        f'echo "{key}:data=$(readlink {path}/..data)"; '
        f'for n in $(ls -1 {path}); do echo "{key}:link:$n=$(readlink {path}/$n)"; done; '
        f'echo "{key}:mount=$(awk \'$2 == "{path}" {{print $3, $4}}\' /proc/mounts)"; '
        f'echo "{key}:mode=$(stat -c %a {path})"; '
        f'echo "{key}:tsmode=$(stat -c %a {path}/$(readlink {path}/..data))"; '
        f'if touch {path}/new 2>/dev/null; then echo "{key}:write=ok"; '
        f'else echo "{key}:write=refused"; fi; '
    )


def check_layout(f, key, top_names):
    """The kubelet's layout: `..data` -> a timestamped directory, each
    top-level name -> `..data/name`, and nothing else."""
    data = f[f"{key}:data"]
    assert TIMESTAMP_DIR.match(data), f"{key}: ..data -> {data!r}"
    assert f[f"{key}:ls"].split() == sorted([".", "..", "..data", data, *top_names]), f
    for n in top_names:
        assert f[f"{key}:link:{n}"] == f"..data/{n}", (n, f)
    assert f[f"{key}:tsmode"].endswith("755"), f
    # Read-only, whatever the mount asked.
    assert f[f"{key}:write"] == "refused", f
    fstype, options = f[f"{key}:mount"].split(maxsplit=1)
    assert options.split(",")[0] == "ro", f[f"{key}:mount"]
    return fstype


GAME = {
    "game.properties": "lives=3\nenemies=aliens\n",
    "ui.properties": "color=blue\n",
    "hello.sh": "#!/bin/sh\necho hello from a configMap\n",
}


def test_a_config_map_volume_is_written_as_the_kubelet_writes_it(tmp_path, name, busybox_image):
    script = (
        describe("all", "/etc/all")
        + describe("picked", "/etc/picked")
        + 'echo "all:content=$(tr "\\n" ";" < /etc/all/game.properties)"; '
        'echo "all:filemode=$(stat -c %a /etc/all/..data/game.properties)"; '
        'echo "picked:conf=$(stat -c %a /etc/picked/..data/conf)"; '
        'echo "picked:nested=$(stat -c %a /etc/picked/..data/conf/nested)"; '
        'echo "picked:game.conf=$(stat -c %a /etc/picked/..data/conf/nested/game.conf)"; '
        'echo "picked:hello.sh=$(stat -c %a /etc/picked/..data/hello.sh)"; '
        'echo "picked:content=$(tr "\\n" ";" < /etc/picked/conf/nested/game.conf)"; '
        'echo "picked:run=$(/etc/picked/hello.sh)"; '
        'echo "sub:content=$(tr "\\n" ";" < /etc/game.properties)"; '
        "echo \"sub:mount=$(awk '$2 == \"/etc/game.properties\" {print $4}' /proc/mounts)\"; "
        "true"
    )
    c = image_container("c", busybox_image, script)
    c["volumeMounts"] = [
        {"name": "all", "mountPath": "/etc/all", "readOnly": False},
        {"name": "picked", "mountPath": "/etc/picked"},
        {"name": "all", "mountPath": "/etc/game.properties", "subPath": "game.properties"},
    ]
    pod = manifest(
        name,
        [c],
        volumes=[
            {"name": "all", "configMap": {"name": "game"}},
            {
                "name": "picked",
                "configMap": {
                    "name": "game",
                    "defaultMode": 0o555,
                    "items": [
                        {"key": "game.properties", "path": "conf/nested/game.conf", "mode": 0o600},
                        {"key": "hello.sh", "path": "hello.sh"},
                    ],
                },
            },
        ],
    )
    result = up_documents(tmp_path, name, config_map("game", GAME), pod)
    assert result.returncode == 0, result.stderr
    f = facts(output_of(result.stdout, "c"))

    fstype = check_layout(f, "all", ["game.properties", "hello.sh", "ui.properties"])
    # A configMap is on the node's disk, not a tmpfs of its own (secrets
    # are): the filesystem podrun keeps pods on (a tmpfs in the VM, where
    # /var/lib/podrun is one), and not the 1777 root a volume's tmpfs has.
    assert fstype == node_fstype("/var/lib/podrun/pods"), f["all:mount"]
    assert "mode=1777" not in f["all:mount"], f["all:mount"]
    assert f["all:mode"] == "777", "the emptyDir the kubelet wraps"
    assert f["all:content"] == "lives=3;enemies=aliens;"
    assert f["all:filemode"] == "644", "defaultMode's default"

    check_layout(f, "picked", ["conf", "hello.sh"])
    assert f["picked:conf"] == f["picked:nested"] == "755"
    assert f["picked:game.conf"] == "600", "the item's own mode"
    assert f["picked:hello.sh"] == "555", "defaultMode"
    assert f["picked:content"] == "lives=3;enemies=aliens;"
    assert f["picked:run"] == "hello from a configMap"

    # A subPath of one key: the file itself, read-only too.
    assert f["sub:content"] == "lives=3;enemies=aliens;"
    assert f["sub:mount"].split(",")[0] == "ro", f["sub:mount"]


def test_a_secret_volume_is_a_read_only_tmpfs(tmp_path, name, busybox_image):
    script = (
        describe("sec", "/etc/creds")
        + 'echo "user=$(cat /etc/creds/username)"; '
        'echo "password=$(tr "\\n" ";" < /etc/creds/password)"; '
        'echo "filemode=$(stat -c %a /etc/creds/..data/password)"; '
        "true"
    )
    c = image_container("c", busybox_image, script)
    c["volumeMounts"] = [{"name": "creds", "mountPath": "/etc/creds", "readOnly": False}]
    pod = manifest(
        name,
        [c],
        volumes=[{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
    )
    docs = [secret("creds", {"username": "admin", "password": "s3cr3t\n"}), pod]
    result = up_documents(tmp_path, name, *docs)
    assert result.returncode == 0, result.stderr
    f = facts(output_of(result.stdout, "c"))
    assert check_layout(f, "sec", ["password", "username"]) == "tmpfs", f["sec:mount"]
    # A tmpfs's root as the kubelet leaves it: drwxrwxrwt.
    assert f["sec:mode"] == "1777"
    assert f["user"] == "admin"
    assert f["password"] == "s3cr3t;"
    assert f["filemode"] == "400"
    # The pod's end unmounted its tmpfs, as it does every mount of the pod.
    assert leftovers(state(name)) == []


def test_a_downward_api_volume_has_the_pods_labels_annotations_and_name(tmp_path, name, busybox_image):
    script = (
        describe("down", "/etc/podinfo")
        + 'echo "labels=$(tr "\\n" ";" < /etc/podinfo/labels)"; '
        'echo "annotations=$(tr "\\n" ";" < /etc/podinfo/annotations)"; '
        'echo "name=$(cat /etc/podinfo/podname)"; '
        'echo "namespace=$(cat /etc/podinfo/meta/namespace)"; '
        'echo "mode:labels=$(stat -c %a /etc/podinfo/..data/labels)"; '
        'echo "mode:namespace=$(stat -c %a /etc/podinfo/..data/meta/namespace)"; '
        "true"
    )
    c = image_container("c", busybox_image, script)
    c["volumeMounts"] = [{"name": "podinfo", "mountPath": "/etc/podinfo"}]
    pod = manifest(
        name,
        [c],
        volumes=[
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                        {"path": "podname", "fieldRef": {"fieldPath": "metadata.name"}},
                        {
                            "path": "meta/namespace",
                            "fieldRef": {"fieldPath": "metadata.namespace"},
                            "mode": 0o600,
                        },
                    ]
                },
            }
        ],
    )
    pod["metadata"]["labels"] = {"tier": "front", "app": "web"}
    pod["metadata"]["annotations"] = {"example.com/team": "a b"}
    result = up_documents(tmp_path, name, pod)
    assert result.returncode == 0, result.stderr
    f = facts(output_of(result.stdout, "c"))
    fstype = check_layout(f, "down", ["annotations", "labels", "meta", "podname"])
    assert fstype == "tmpfs", "the kubelet's downwardAPI volume is memory-backed"
    # The kubelet's format: key="value" (Go's %q), sorted, one a line.
    assert f["labels"].split(";") == ['app="web"', 'tier="front"']
    assert 'example.com/team="a b"' in f["annotations"].split(";")
    assert f["name"] == name
    assert f["namespace"] == "default"
    assert f["mode:labels"] == "644"
    assert f["mode:namespace"] == "600"


def test_a_projected_volume_gathers_its_sources(tmp_path, name, busybox_image):
    script = (
        describe("proj", "/etc/all-in-one")
        + 'echo "game=$(tr "\\n" ";" < /etc/all-in-one/app/game.conf)"; '
        'echo "user=$(cat /etc/all-in-one/creds/user)"; '
        'echo "labels=$(cat /etc/all-in-one/labels)"; '
        'echo "mode:game=$(stat -c %a /etc/all-in-one/..data/app/game.conf)"; '
        'echo "mode:user=$(stat -c %a /etc/all-in-one/..data/creds/user)"; '
        'echo "mode:labels=$(stat -c %a /etc/all-in-one/..data/labels)"; '
        'echo "mode:app=$(stat -c %a /etc/all-in-one/..data/app)"; '
        "true"
    )
    c = image_container("c", busybox_image, script)
    c["volumeMounts"] = [{"name": "all-in-one", "mountPath": "/etc/all-in-one"}]
    pod = manifest(
        name,
        [c],
        volumes=[
            {
                "name": "all-in-one",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "configMap": {
                                "name": "game",
                                "items": [{"key": "game.properties", "path": "app/game.conf"}],
                            }
                        },
                        {
                            "secret": {
                                "name": "creds",
                                "items": [{"key": "username", "path": "creds/user", "mode": 0o400}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                            }
                        },
                    ],
                },
            }
        ],
    )
    pod["metadata"]["labels"] = {"app": "web"}
    docs = [config_map("game", GAME), secret("creds", {"username": "admin"}), pod]
    result = up_documents(tmp_path, name, *docs)
    assert result.returncode == 0, result.stderr
    f = facts(output_of(result.stdout, "c"))
    fstype = check_layout(f, "proj", ["app", "creds", "labels"])
    assert fstype == "tmpfs", "the kubelet's projected volume is memory-backed"
    assert f["game"] == "lives=3;enemies=aliens;"
    assert f["user"] == "admin"
    assert f["labels"] == 'app="web"'
    assert f["mode:game"] == f["mode:labels"] == "440", "defaultMode"
    assert f["mode:user"] == "400"
    assert f["mode:app"] == "755"
    assert leftovers(state(name)) == []


def test_fs_group_owns_the_volumes_as_the_kubelet_makes_them(tmp_path, name, busybox_image):
    script = (
        'echo "id=$(id -u) $(id -G)"; '
        'echo "cfg:root=$(stat -c "%a %g" /etc/cfg)"; '
        'echo "cfg:ts=$(stat -c "%a %g" /etc/cfg/$(readlink /etc/cfg/..data))"; '
        'echo "cfg:dir=$(stat -c "%a %g" /etc/cfg/..data/conf)"; '
        'echo "cfg:file=$(stat -c "%a %g %u" /etc/cfg/..data/conf/game.conf)"; '
        'echo "cfg:datalink=$(stat -c %g /etc/cfg/..data)"; '
        'echo "cfg:toplink=$(stat -c %g /etc/cfg/conf)"; '
        'echo "cfg:read=$(tr "\\n" ";" < /etc/cfg/conf/game.conf)"; '
        'echo "sec:root=$(stat -c "%a %g" /etc/creds)"; '
        'echo "sec:file=$(stat -c "%a %g" /etc/creds/..data/username)"; '
        'echo "sec:read=$(cat /etc/creds/username)"; '
        'echo "scratch:root=$(stat -c "%a %g" /scratch)"; '
        'touch /scratch/made; echo "scratch:made=$(stat -c %g /scratch/made)"; '
        "true"
    )
    c = image_container("c", busybox_image, script)
    c["volumeMounts"] = [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "creds", "mountPath": "/etc/creds"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    pod = manifest(
        name,
        [c],
        securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
        volumes=[
            {
                "name": "cfg",
                "configMap": {
                    "name": "game",
                    "defaultMode": 0o400,
                    "items": [{"key": "game.properties", "path": "conf/game.conf"}],
                },
            },
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    docs = [config_map("game", GAME), secret("creds", {"username": "admin"}), pod]
    result = up_documents(tmp_path, name, *docs)
    assert result.returncode == 0, result.stderr
    f = facts(output_of(result.stdout, "c"))
    uid, *groups = f["id"].split()
    assert uid == "1000" and "2000" in groups, f["id"]
    # SetVolumeOwnership for a read-only volume: group fsGroup, files
    # mode | 0440, directories mode | 0550 and setgid; owners kept.
    assert f["cfg:root"] == "2777 2000"
    assert f["cfg:ts"] == "2755 2000"
    assert f["cfg:dir"] == "2755 2000"
    assert f["cfg:file"] == "440 2000 0"
    # The links, made after in a setgid directory, have the group too.
    assert f["cfg:datalink"] == f["cfg:toplink"] == "2000"
    # Readable by the pod's user through the group alone.
    assert f["cfg:read"] == "lives=3;enemies=aliens;"
    assert f["sec:root"] == "3777 2000", "a tmpfs's 1777, and setgid"
    assert f["sec:file"] == "644 2000"
    assert f["sec:read"] == "admin"
    # A writable emptyDir: the group's and setgid, so what the pod makes
    # there is the group's too.
    assert f["scratch:root"] == "2777 2000"
    assert f["scratch:made"] == "2000"


def node_fstype(path: str) -> str:
    """The type of the host's filesystem that holds `path` (the mount
    with the longest mount point above it)."""
    best = ("", "")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, *_ = line.split()
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, fstype)
    return best[1]


def volume_dir(s: dict, volume: str) -> Path:
    """Where the pod's volume is on the host: `<pod dir>/volumes/<plugin>/<volume>`."""
    (found,) = Path(s["dirs"]["data"], "volumes").glob(f"*/{volume}")
    return found


def test_down_leaves_none_of_these_volumes_mounted(tmp_path, name, busybox_image, podrun):
    c = image_container("c", busybox_image, "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    c["volumeMounts"] = [
        {"name": v, "mountPath": f"/etc/{v}"} for v in ("cfg", "sec", "down", "proj")
    ]
    pod = manifest(
        name,
        [c],
        volumes=[
            {"name": "cfg", "configMap": {"name": "game"}},
            {"name": "sec", "secret": {"secretName": "creds"}},
            {
                "name": "down",
                "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]},
            },
            {"name": "proj", "projected": {"sources": [{"secret": {"name": "creds"}}]}},
        ],
    )
    path = write_documents(tmp_path, name, config_map("game", GAME), secret("creds", {"username": "admin"}), pod)
    proc = subprocess.Popen(
        [str(podrun_bin()), "up", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: running(name, ["c"]), "the pod to run")
        s = state(name)
        # On the host: the kubelet's layout, and a tmpfs for each volume
        # but the configMap.
        mounted = set(mount_points())
        for v in ("cfg", "sec", "down", "proj"):
            d = volume_dir(s, v)
            assert TIMESTAMP_DIR.match(str((d / "..data").readlink())), d
            assert (str(d) in mounted) == (v != "cfg"), (v, d)
        result = podrun("down", name)
        assert result.returncode == 0, result.stderr
        assert leftovers(s) == []
        assert not [m for m in mount_points() if s["uid"] in m]
    finally:
        if proc.poll() is None:
            stop(proc)
        else:
            proc.communicate(timeout=30)
