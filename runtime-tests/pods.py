"""Running pods with `podrun up` from tests, and looking at what they leave.

Most pods run on `rootfs:/` (the host's own root, seen through each
container's private mount namespace), so the host's tools (busybox,
util-linux, python3) are there without an image store; `image_container`
runs on an image from podrun's store instead (test_images.py).
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from conftest import podrun_bin
# Shared with the soak and the bench; imported by tests from here.
from podrun_host import (  # noqa: F401
    RUN_ROOT,
    is_zombie,
    mount_points,
    network_leftovers,
    network_record,
    state,
    wait_for,
)


def container(name, script, **extra):
    """A container running `sh -c script` on the host's root."""
    c = {"name": name, "image": "rootfs:/", "command": ["sh", "-c", script]}
    c.update(extra)
    return c


def image_container(name, image, script=None, pull="IfNotPresent", **extra):
    """A container on `image` from podrun's store, running `sh -c script`
    (the image's own command when `script` is None); `pull` is its
    imagePullPolicy (None: not set, the Kubernetes default applies)."""
    c = {"name": name, "image": image}
    if pull is not None:
        c["imagePullPolicy"] = pull
    if script is not None:
        c["command"] = ["sh", "-c", script]
    c.update(extra)
    return c


def root_overlay(pid: int) -> dict:
    """The overlayfs mounted as the root of process `pid`, from its
    mountinfo: {"lowerdir": [...] (top first), "upperdir": ..., "workdir": ...}."""
    roots = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == "/":
            roots.append((fields[sep + 1], fields[sep + 3]))
    assert roots, f"process {pid} has no mount at /"
    fstype, options = roots[-1]
    assert fstype == "overlay", f"the root of process {pid} is {fstype}, not overlay"
    found = {"lowerdir": []}
    for option in re.split(r"(?<!\\),", options):
        key, _, value = option.partition("=")
        if key == "lowerdir":
            found["lowerdir"] += [unescape(p) for p in re.split(r"(?<!\\):", value)]
        elif key == "lowerdir+":
            found["lowerdir"].append(unescape(value))
        elif key in ("upperdir", "workdir"):
            found[key] = unescape(value)
    found["lowerdir"] = [os.path.normpath(p) for p in found["lowerdir"]]
    return found


def unoctal(field: str) -> str:
    """A field of mountinfo (or /proc/self/mounts) as the kernel escapes it:
    space, tab, newline and backslash as octal (\\040 for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unescape(path: str) -> str:
    """A path in overlayfs's options as mountinfo shows it: octal escapes
    and overlayfs's backslash before , and :."""
    return re.sub(r"\\([,:\\])", r"\1", unoctal(path))


def manifest(name, containers, init=(), restart="Never", **spec):
    body = {"restartPolicy": restart, "containers": list(containers)}
    if init:
        body["initContainers"] = list(init)
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def write(tmp_path: Path, pod: dict) -> Path:
    path = tmp_path / f"{pod['metadata']['name']}.json"
    path.write_text(json.dumps(pod))
    return path


def up(tmp_path, pod, timeout=90, args=()):
    """Runs the pod in the foreground to its end: CompletedProcess."""
    return subprocess.run(
        [str(podrun_bin()), "up", *args, str(write(tmp_path, pod))],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(tmp_path, pod, args=()):
    """Starts `podrun up` in the background: Popen."""
    return subprocess.Popen(
        [str(podrun_bin()), "up", *args, str(write(tmp_path, pod))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def output_of(stdout: str, name: str):
    """The lines container `name` printed (`name | line` on stdout)."""
    prefix = f"{name} | "
    return [line[len(prefix):] for line in stdout.splitlines() if line.startswith(prefix)]


def status(name: str) -> dict:
    result = subprocess.run(
        [str(podrun_bin()), "status", name, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def container_status(pod_status: dict, name: str) -> dict:
    for s in pod_status.get("initContainerStatuses", []) + pod_status.get(
        "containerStatuses", []
    ):
        if s["name"] == name:
            return s
    raise AssertionError(f"no status for container {name}: {pod_status}")


def running(name: str, containers) -> bool:
    """Every named container has a process."""
    try:
        s = state(name)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    pids = {n: c.get("pid") for n, c in s["containers"].items()}
    return all(pids.get(c) for c in containers)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout=60):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def processes_in(cgroup_rel: str):
    """PIDs whose cgroup (v2 line) contains `cgroup_rel`. Zombies do not
    count: they have ended and wait for their parent (init, once their
    supervisor is gone) to reap them."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path("/proc", entry, "cgroup").read_text()
        except OSError:
            continue
        if is_zombie(entry):
            continue
        if any(line.startswith("0::") and cgroup_rel in line for line in text.splitlines()):
            found.append(int(entry))
    return found


def leftovers(s: dict):
    """Everything of the pod the kernel still holds: mounts, cgroups,
    processes, pinned namespaces, volume and stage directories."""
    uid, run_dir = s["uid"], s["dirs"]["run"]
    data_dir = s["dirs"]["data"]
    found = []
    found += [f"mount {m}" for m in mount_points() if m.startswith(run_dir + "/") or uid in m]
    if Path(s["cgroup"]).exists():
        found.append(f"cgroup {s['cgroup']}")
    found += [f"process {p}" for p in processes_in(f"/podrun/{uid}")]
    for sub in ("ns", "shm", "containers", "network"):
        if Path(run_dir, sub).exists():
            found.append(f"{run_dir}/{sub}")
    if Path(data_dir).exists():
        found.append(data_dir)
    return found
