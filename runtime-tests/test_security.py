"""Attacks from inside a pod, and on podrun's names and socket from outside,
that would succeed against a careless runtime (issue 7). Each is checked
from the host's side too (what the host still has, mounts, processes,
files), not only by what the container prints, and where it is cheap the
same attack is shown to succeed once the protection is off (hostPID, no
allowPrivilegeEscalation: false, a symlink that stays inside), so that
each test can fail.

Containers run on the test image (`busybox_image`, the realistic case) and,
where the threat differs, on `rootfs:/` (the host's own root: the
filesystem is shared by design, but podrun's own directories and the
host's kernel knobs are not). On the host and in the VM.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import podrun_bin
from images import directory, file as file_entry, layer, symlink, write_layout
from pods import (
    container,
    container_status,
    image_container,
    manifest,
    mount_points,
    output_of,
    running,
    start,
    state,
    stop,
    unoctal,
    up,
    wait_for,
)

IDLE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
HOST = "rootfs:/"


def token() -> str:
    return f"sec{uuid.uuid4().hex[:10]}"


def on(root, name, script=None, **extra):
    """A container on `root`: the host's (`rootfs:/`) or an image of the
    store; `sh -c script`."""
    if root.startswith("rootfs:"):
        c = container(name, script, **extra)
        c["image"] = root
        return c
    return image_container(name, root, script, **extra)


@pytest.fixture(params=["image", "rootfs"])
def root(request, busybox_image):
    """The container's root: the test image, or the host's (`rootfs:/`)."""
    return busybox_image if request.param == "image" else HOST


def launch(tmp_path, pod):
    """Starts `podrun up` in the background and waits for the pod's state
    to be on disk: the Popen."""
    proc = start(tmp_path, pod)
    name = pod["metadata"]["name"]

    def started():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"podrun up exited {proc.returncode}: {err}")
        return (Path("/run/podrun") / name / "state.json").exists()

    wait_for(started, f"pod {name} to start", 120)
    return proc


def logs(name, container_name):
    """Every line container `container_name` wrote so far, all its runs in
    order, from its CRI log files on the host."""
    try:
        s = state(name)
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    run = s["containers"].get(container_name)
    if not run or not run.get("log"):
        return []
    folder = Path(run["log"]).parent
    lines = []
    for log in sorted(folder.glob("*.log"), key=lambda p: int(p.stem)):
        for record in log.read_text(errors="replace").splitlines():
            parts = record.split(" ", 3)
            lines.append(parts[3] if len(parts) == 4 else "")
    return lines


def waiting(name, container_name, reason="CreateContainerError"):
    """The container's waiting state ({reason, message}) if it waits for
    `reason`, else None."""
    try:
        s = container_status(state(name)["status"], container_name)
    except (AssertionError, FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    w = s["state"].get("waiting")
    return w if w and w.get("reason") == reason else None


def status_fields(lines):
    """`Key:\\tvalue` lines of /proc/PID/status as a dict."""
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def host_mounts_at(paths):
    """The host's mount points (this process's mountinfo) among `paths`
    and under them."""
    paths = [str(p) for p in paths]
    return [m for m in mount_points() if any(m == p or m.startswith(p.rstrip("/") + "/") for p in paths)]


def mountinfo(pid):
    """(mount root, mount point) of each mount of process `pid`."""
    out = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out.append((unoctal(fields[3]), unoctal(fields[4])))
    return out


def in_fs(path):
    """`path` as a mount's root field names it: the path inside the
    filesystem it is on (the host's mount of that filesystem may be
    anywhere, /tmp a tmpfs of its own in the VM)."""
    path = os.path.realpath(path)
    best = ("/", "/")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = unoctal(fields[4])
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, unoctal(fields[3]))
    point, fs_root = best
    rest = path[len(point):].lstrip("/")
    return os.path.join(fs_root, rest) if rest else fs_root


@pytest.fixture
def own_images(podrun, name):
    """Imports images made by a test under names of their own; at the end
    the test's pod is removed first (an image a pod uses cannot go), then
    the images, then what only they used."""
    made = []

    def add(image_layers, stem, tmp_path, config=None):
        ref = f"podrun.local/podrun-test-{uuid.uuid4().hex[:12]}/{stem}:1"
        layout = write_layout(tmp_path / f"layout-{stem}", image_layers, ref, config)
        result = podrun("image", "import", layout.source, ref, timeout=180)
        assert result.returncode == 0, result.stderr
        made.append(ref)
        return ref

    yield add
    podrun("rm", "--force", name)
    for ref in made:
        podrun("image", "rm", ref)
    if made:
        podrun("image", "prune")


# --- /sys, /proc/sys, /proc/sysrq-trigger ------------------------------------------

# Harmless knobs that are not namespaced (a write from any namespace is a
# write to the host's kernel); the first of each group the kernel has is
# used.
PROC_KNOBS = ["/proc/sys/kernel/printk_ratelimit", "/proc/sys/kernel/panic", "/proc/sys/vm/stat_interval"]
SYS_KNOBS = [
    "/sys/kernel/mm/ksm/pages_to_scan",
    "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan",
    "/sys/module/printk/parameters/time",
]


def first_existing(paths, what):
    for p in paths:
        if Path(p).is_file():
            return p
    pytest.skip(f"this kernel has none of the {what} knobs {paths}")


def sysrq_help_count():
    """How many times the kernel logged SysRq's help (what writing `h` to
    /proc/sysrq-trigger does), or None when the log cannot be read."""
    result = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return None
    return result.stdout.count("sysrq: HELP")


def cgroup_roots():
    """The root of every cgroup hierarchy mounted on the host."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2") and fields[3] == "/":
            roots.append(Path(unoctal(fields[4])))
    return roots


# Where a careless runtime's container would find a cgroupfs to write.
CGROUP_DIRS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")

# Writes `$2` to `$1` and says how it went, prefixed with `$3`.
WRITE = (
    'w() { if e=$( (echo "$2" > "$1") 2>&1 ); then echo "$3 $1: written"; '
    'else echo "$3 $1: $e"; fi; }; '
)


def test_writes_to_sys_and_proc_sys_and_remounts_fail_and_the_hosts_values_stay(tmp_path, name, root):
    """A container writes a kernel knob in /proc/sys and one in /sys (a
    value other than the host's), makes a cgroup or leaves its own through
    /sys/fs/cgroup, tries to remount /sys and /proc/sys read-write, to
    unmount the read-only /proc/sys over the writable one, and to mount a
    sysfs, procfs or cgroupfs of its own, then writes again: every step is
    refused, and the host's values are the same afterwards."""
    proc_knob = first_existing(PROC_KNOBS, "/proc/sys")
    sys_knob = first_existing(SYS_KNOBS, "/sys")
    before = {k: Path(k).read_text() for k in (proc_knob, sys_knob)}
    # A value that differs from the host's: a write that got through shows.
    new = {
        k: ("N" if v.strip() == "Y" else "Y") if v.strip() in ("Y", "N") else str(int(v.split()[0]) + 1)
        for k, v in before.items()
    }
    cg = token()
    writes = "".join(f"w {p} {v} $1; " for p, v in new.items())
    remounts = [
        "mount -o remount,rw /sys",
        "mount -o remount,rw /proc/sys",
        "mount -o remount,rw,bind /proc/sys",
        "umount /proc/sys",
        "umount -l /sys",
        "mount -t sysfs sysfs /tmp",
        "mount -t proc proc /tmp",
        "mount -t cgroup2 cgroup2 /tmp",
    ]
    script = (
        WRITE
        + f"writes() {{ {writes}}}; "
        + f"cat {proc_knob} {sys_knob} | sed 's/^/value /'; "
        + "writes before; "
        # A careless runtime's cgroupfs: make a cgroup, or move this
        # process out of the pod's cgroup into the root one.
        + f"for d in {' '.join(CGROUP_DIRS)}; do "
        + f"if e=$(mkdir $d/{cg} 2>&1); then echo \"cgroup $d: made\"; else echo \"cgroup $d: $e\"; fi; "
        + "w $d/cgroup.procs $$ cgroup.procs; done; "
        + "".join(f"if {m} 2>/dev/null; then echo 'mount: {m}: done'; else echo 'mount: {m}: refused'; fi; " for m in remounts)
        + "writes after; "
        + "sed -n 's/^0::/own-cgroup /p' /proc/self/cgroup"
    )
    try:
        result = up(tmp_path, manifest(name, [on(root, "c", script)]))
    finally:
        # Should the kernel's values have changed, put them back.
        changed = {k: v for k, v in before.items() if Path(k).read_text() != v}
        for k, v in changed.items():
            Path(k).write_text(v)
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "c")
    # The container reads the real files (the host's values)...
    assert [line for line in out if line.startswith("value ")] == [
        "value " + v.strip() for v in before.values()
    ], out
    # ...and every write is refused by a read-only mount (not because the
    # file is missing), before and after the remount attempts.
    for tag in ("before", "after"):
        for p in new:
            (line,) = [line for line in out if line.startswith(f"{tag} {p}:")]
            assert "Read-only file system" in line, out
    # The host's cgroupfs is not there to write: /sys is a fresh, read-only
    # sysfs whose /sys/fs/cgroup is an empty directory. Each directory has
    # its mkdir line and its cgroup.procs line (a change in the script's
    # output fails here rather than leaving nothing to check).
    cgroup_lines = [line for line in out if line.startswith(("cgroup /", "cgroup.procs "))]
    expected = [p for d in CGROUP_DIRS for p in (f"cgroup {d}: ", f"cgroup.procs {d}/cgroup.procs: ")]
    for prefix in expected:
        assert sum(line.startswith(prefix) for line in cgroup_lines) == 1, (prefix, out)
    assert len(cgroup_lines) == len(expected), out
    for line in cgroup_lines:
        assert re.search(r"Read-only file system|No such file or directory|nonexistent", line, re.I), out
    for m in remounts:
        assert f"mount: {m}: refused" in out, out
    uid = state(name)["uid"]
    assert out[-1] == f"own-cgroup /podrun/{uid}/c", out
    # From the host: the kernel's values are unchanged, and no cgroup
    # appeared in any hierarchy.
    assert changed == {}, f"the container changed the host's {sorted(changed)}"
    for cgroot in cgroup_roots():
        assert not (cgroot / cg).exists(), cgroot
        assert not list(cgroot.glob(f"podrun/*/*/{cg}")), cgroot


def test_proc_sysrq_trigger_is_read_only(tmp_path, name, root):
    """Writing `h` (SysRq's help, harmless) to /proc/sysrq-trigger is
    refused, and the kernel's log shows no help printed."""
    if not Path("/proc/sysrq-trigger").exists():
        pytest.skip("this kernel has no /proc/sysrq-trigger (built without CONFIG_MAGIC_SYSRQ)")
    before = sysrq_help_count()
    script = WRITE + "w /proc/sysrq-trigger h sysrq; mount -o remount,rw,bind /proc/sysrq-trigger 2>/dev/null && echo remounted; w /proc/sysrq-trigger h sysrq"
    result = up(tmp_path, manifest(name, [on(root, "c", script)]))
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "c")
    assert len(out) == 2 and all("Read-only file system" in line for line in out), out
    if before is not None:
        # (<=: the kernel's ring buffer may have dropped older lines.)
        assert sysrq_help_count() <= before


# --- processes ---------------------------------------------------------------------------


def test_a_container_sees_only_its_processes_and_cannot_signal_or_enter_the_hosts(tmp_path, name, root):
    """A container lists /proc, SIGKILLs a host `sleep` by its host PID and
    reads a host file through every /proc/PID/root: it sees a handful of
    low PIDs of its own namespace, the kill finds no such process and the
    sleep lives on (checked on the host), and every root is its own. With
    hostPID (the contrast) the same kill works."""
    marker = tmp_path / f"marker-{token()}"
    marker.write_text("host\n")
    victim = subprocess.Popen(["sleep", "600"])
    contrast = subprocess.Popen(["sleep", "600"])
    try:
        attack = on(
            root,
            "attack",
            "ls /proc | grep '^[0-9]*$' | tr '\\n' ' '; echo; "
            f"if kill -9 {victim.pid} 2>/dev/null; then echo killed; else echo kill refused; fi; "
            f"if [ -e /proc/{victim.pid} ]; then echo sees victim; fi; "
            # Any process's root is this container's own root.
            f"for r in /proc/[0-9]*/root; do cat $r{marker} 2>/dev/null && echo \"through $r\"; done; "
            "readlink /proc/self/ns/pid",
        )
        # The contrast: with the host's PID namespace, the same kill works.
        host_pid = on(
            root,
            "hostpid",
            f"if kill -9 {contrast.pid}; then echo killed; else echo kill refused; fi",
        )
        result = up(tmp_path, manifest(name, [attack]))
        assert result.returncode == 0, result.stderr
        out = output_of(result.stdout, "attack")
        pids = [int(p) for p in out[0].split()]
        assert pids and max(pids) < 50, out
        assert out[1] == "kill refused", out
        assert "sees victim" not in out
        if root != HOST:
            # On rootfs:/ the host's files are the container's by design.
            assert not [line for line in out if line.startswith("through ")], out
        assert out[-1] != os.readlink("/proc/self/ns/pid"), out
        # From the host: the victim is alive.
        assert victim.poll() is None, "the container killed a host process"

        second = f"{name}-hostpid"[:63]
        try:
            contrast_result = up(tmp_path, manifest(second, [host_pid], hostPID=True))
            assert contrast_result.returncode == 0, contrast_result.stderr
            assert output_of(contrast_result.stdout, "hostpid") == ["killed"]
            assert contrast.wait(timeout=30) == -signal.SIGKILL
        finally:
            subprocess.run([str(podrun_bin()), "rm", "--force", second], capture_output=True, timeout=60)
    finally:
        for p in (victim, contrast):
            p.kill()
            p.wait()


# --- symlink escapes: subPath, hostPath, mountPath ---------------------------------------


def host_secret(tmp_path, tag):
    """A host directory a container must never see: `secret/marker-TAG`
    holding `HOST-SECRET-TAG`, and `secret-parent/q/marker-TAG` the same.
    Returns (secret dir, secret parent dir, what the markers hold)."""
    text = f"HOST-SECRET-{tag}"
    secret = tmp_path / "secret"
    parent = tmp_path / "secret-parent"
    (parent / "q").mkdir(parents=True)
    secret.mkdir()
    for d in (secret, parent / "q"):
        (d / f"marker-{tag}").write_text(text + "\n")
    return secret, parent, text


def test_a_sub_path_through_a_symlink_out_of_its_volume_is_refused(tmp_path, name, busybox_image):
    """An init container plants symlinks in an emptyDir; containers started
    after it mount subPaths that are such a link, or whose parent is one,
    or that a subPathExpr makes `..`. Each is refused (CreateContainerError)
    and never runs; a subPath through a link that stays inside the volume
    works (the contrast)."""
    tag = token()
    secret, parent, text = host_secret(tmp_path, tag)
    up_links = "/".join([".."] * 12)
    plant = image_container(
        "plant",
        busybox_image,
        f"mkdir -p /v/real && echo inside-{tag} > /v/real/marker-{tag} && "
        f"ln -s {secret} /v/abs && "
        f"ln -s {up_links}{secret} /v/rel && "
        "ln -s / /v/slash && "
        f"ln -s {parent} /v/parent && "
        "ln -s real /v/in",
        volumeMounts=[{"name": "v", "mountPath": "/v"}],
    )
    sub_paths = {
        "abs": "abs",
        "rel": "rel",
        "via-slash": f"slash{secret}",
        "via-parent": "parent/q",
    }
    victims = [
        image_container(
            c,
            busybox_image,
            f"cat /mnt/marker-{tag}; {IDLE}",
            volumeMounts=[{"name": "v", "mountPath": "/mnt", "subPath": sub}],
        )
        for c, sub in sub_paths.items()
    ]
    victims.append(
        image_container(
            "expr",
            busybox_image,
            f"cat /mnt/marker-{tag}; {IDLE}",
            env=[{"name": "UP", "value": "../.."}],
            volumeMounts=[{"name": "v", "mountPath": "/mnt", "subPathExpr": "$(UP)"}],
        )
    )
    inside = image_container(
        "inside",
        busybox_image,
        f"cat /mnt/marker-{tag}; {IDLE}",
        volumeMounts=[{"name": "v", "mountPath": "/mnt", "subPath": "in"}],
    )
    secret_before = sorted(p.name for p in secret.iterdir())
    pod = manifest(name, [inside, *victims], init=[plant], volumes=[{"name": "v", "emptyDir": {}}])
    proc = launch(tmp_path, pod)
    try:
        wait_for(lambda: logs(name, "inside") == [f"inside-{tag}"], "the contrast to read inside the volume", 120)
        for c, sub in [*sub_paths.items(), ("expr", "../..")]:
            w = wait_for(lambda: waiting(name, c), f"{c} to be refused", 120)
            assert w["reason"] == "CreateContainerError", (c, w)
            assert w["message"] == f'subPath "{sub}" leaves its volume', (c, w)
        s = state(name)
        for c in [*sub_paths, "expr"]:
            assert not s["containers"].get(c, {}).get("pid"), f"{c} ran"
        # From the host: the secret is not mounted anywhere in the pod's
        # running containers, nor on the host.
        for c in ("plant", "inside"):
            pid = s["containers"].get(c, {}).get("pid")
            if pid:
                roots = [r for r, _ in mountinfo(pid)]
                assert not [r for r in roots if str(tmp_path) in r], roots
        assert host_mounts_at([secret, parent]) == []
    finally:
        rc, out, err = stop(proc)
    assert text not in out
    for c in [*sub_paths, "expr"]:
        assert text not in "\n".join(logs(name, c))
    assert sorted(p.name for p in secret.iterdir()) == secret_before


def test_a_symlink_planted_at_run_time_is_not_followed_by_a_restarted_container(tmp_path, name, busybox_image):
    """A sidecar sharing an emptyDir swaps the directory a container's
    subPath names (or its parent) for a symlink to a host directory while
    that container runs; when the container restarts, its subPath is
    resolved again and refused. A swap for a link inside the volume is
    followed on the restart (the contrast: the restart does resolve
    again)."""
    tag = token()
    secret, parent, text = host_secret(tmp_path, tag)
    prep = image_container(
        "prep",
        busybox_image,
        f"mkdir -p /v/d /v/e /v/f /v/p/q && echo inside-{tag} > /v/f/marker-{tag}",
        volumeMounts=[{"name": "v", "mountPath": "/v"}],
    )
    victims = {"direct": "d", "parent": "p/q", "inside": "e"}
    planter = image_container(
        "planter",
        busybox_image,
        "until [ -e /v/go-direct ] && [ -e /v/go-parent ] && [ -e /v/go-inside ]; do sleep 0.1; done; "
        f"rm -rf /v/d && ln -s {secret} /v/d && "
        f"rm -rf /v/p && ln -s {parent} /v/p && "
        "rm -rf /v/e && ln -s f /v/e && "
        f"touch /v/planted; {IDLE}",
        restartPolicy="Always",
        volumeMounts=[{"name": "v", "mountPath": "/v"}],
    )
    apps = [
        image_container(
            c,
            busybox_image,
            f"cat /mnt/marker-{tag} 2>/dev/null || echo none; "
            "if [ -e /all/planted ]; then exit 0; fi; "
            f"touch /all/go-{c}; until [ -e /all/planted ]; do sleep 0.1; done; exit 1",
            volumeMounts=[
                {"name": "v", "mountPath": "/mnt", "subPath": sub},
                {"name": "v", "mountPath": "/all"},
            ],
        )
        for c, sub in victims.items()
    ]
    pod = manifest(name, apps, init=[prep, planter], restart="OnFailure", volumes=[{"name": "v", "emptyDir": {}}])
    proc = launch(tmp_path, pod)
    try:
        for c, sub in (("direct", "d"), ("parent", "p/q")):
            w = wait_for(lambda: waiting(name, c), f"{c} to be refused on its restart", 120)
            assert w["message"] == f'subPath "{sub}" leaves its volume', w

        def inside_restarted():
            s = container_status(state(name)["status"], "inside")
            return s["restartCount"] == 1 and s["state"].get("terminated")

        terminated = wait_for(inside_restarted, "the contrast to run again", 120)
        assert terminated["exitCode"] == 0
        assert host_mounts_at([secret, parent]) == []
    finally:
        rc, out, err = stop(proc)
    assert text not in out
    assert logs(name, "direct") == ["none"]
    assert logs(name, "parent") == ["none"]
    assert logs(name, "inside") == ["none", f"inside-{tag}"]


def test_a_symlink_swapped_in_while_containers_start_is_never_mounted(tmp_path, name, busybox_image):
    """A sidecar swaps the directory that the apps' subPath names for a
    symlink to a host directory and back, as fast as it can, while the
    apps start: each app is either refused or mounts the volume's own
    directory, never the host's (the subPath is mounted through a
    descriptor of the path it was resolved to, not by name)."""
    tag = token()
    secret, _, text = host_secret(tmp_path, tag)
    swapper = image_container(
        "swapper",
        busybox_image,
        "trap 'exit 0' TERM; while true; do "
        f"rm -rf /v/d; ln -s {secret} /v/d; rm -f /v/d; mkdir /v/d; echo inside-{tag} > /v/d/marker-{tag}; "
        "done",
        restartPolicy="Always",
        volumeMounts=[{"name": "v", "mountPath": "/v"}],
    )
    apps = [
        image_container(
            f"app{i}",
            busybox_image,
            f"cat /mnt/marker-{tag} 2>/dev/null; echo ran",
            volumeMounts=[{"name": "v", "mountPath": "/mnt", "subPath": "d"}],
        )
        for i in range(20)
    ]
    proc = launch(tmp_path, manifest(name, apps, init=[swapper], volumes=[{"name": "v", "emptyDir": {}}]))
    try:

        def ended():
            statuses = state(name)["status"].get("containerStatuses", [])
            return [s["name"] for s in statuses if s["state"].get("terminated")]

        # Refused ones are retried with back-off; half of them is enough.
        wait_for(lambda: len(ended()) >= 10, "half the apps to end", 180)
        assert host_mounts_at([secret]) == []
        statuses = {s["name"]: s["state"] for s in state(name)["status"]["containerStatuses"]}
    finally:
        stop(proc)
    outputs = {c["name"]: logs(name, c["name"]) for c in apps}
    assert not [c for c, out in outputs.items() if text in "\n".join(out)], outputs
    # Each app that ended ran (seeing the volume's own directory, or
    # nothing once the swapper emptied it), or found the directory it had
    # pinned removed by the swapper when it came to mount it (most do in
    # the VM, where a start is slow): never anything else.
    for c, st in statuses.items():
        t = st.get("terminated")
        if t and "ran" not in outputs[c]:
            assert t["reason"] == "StartError" and "/mnt" in t.get("message", ""), (c, t, outputs[c])


def test_a_host_path_whose_links_point_at_host_paths_is_mounted_without_following_them(
    tmp_path, name, busybox_image
):
    """The container sees the links of a hostPath volume as links, which
    resolve inside its own root; no mount of it reaches their targets, and
    a subPath through one is refused."""
    tag = token()
    secret, _, text = host_secret(tmp_path, tag)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "abs").symlink_to(secret)
    (volume / "rel").symlink_to(Path("..") / "secret")
    (volume / "file").symlink_to(secret / f"marker-{tag}")
    (volume / "own").write_text(f"own-{tag}\n")
    script = (
        "for l in abs rel file; do readlink /data/$l; done; "
        f"cat /data/abs/marker-{tag} /data/rel/marker-{tag} /data/file 2>/dev/null; "
        f"cat /data/own; echo done; {IDLE}"
    )
    c = image_container("c", busybox_image, script, volumeMounts=[{"name": "h", "mountPath": "/data"}])
    bad = image_container(
        "bad",
        busybox_image,
        f"cat /mnt/marker-{tag}; {IDLE}",
        volumeMounts=[{"name": "h", "mountPath": "/mnt", "subPath": "rel"}],
    )
    pod = manifest(name, [c, bad], volumes=[{"name": "h", "hostPath": {"path": str(volume), "type": "Directory"}}])
    proc = launch(tmp_path, pod)
    try:
        wait_for(lambda: "done" in logs(name, "c"), "the container to look", 120)
        w = wait_for(lambda: waiting(name, "bad"), "bad to be refused", 120)
        assert w["message"] == 'subPath "rel" leaves its volume', w
        pid = state(name)["containers"]["c"]["pid"]
        mounts = mountinfo(pid)
        # From the host: the container's /data is the volume itself.
        (data_root,) = [r for r, point in mounts if point == "/data"]
        assert data_root == in_fs(volume), mounts
        assert not [r for r, _ in mounts if "secret" in r], mounts
        assert host_mounts_at([secret]) == []
    finally:
        stop(proc)
    out = logs(name, "c")
    assert out[:3] == [str(secret), "../secret", str(secret / f"marker-{tag}")], out
    assert text not in "\n".join(out)
    assert out[3:] == [f"own-{tag}", "done"], out
    assert text not in "\n".join(logs(name, "bad"))


def test_a_mount_path_through_a_symlink_of_the_image_lands_inside_its_root(
    tmp_path, name, test_image, own_images
):
    """An image whose paths are symlinks out of its root (`/conf -> /etc`,
    an absolute link to a host directory, a `../../..` link): a volume
    mounted through such a path lands inside the container's root, where
    the link resolves there; on the host, nothing is created at the links'
    targets and no mount appears there."""
    tag = token()
    abs_target = tmp_path / f"abs-{tag}" / "target"
    rel_target = tmp_path / f"rel-{tag}" / "target"
    up_links = "/".join([".."] * 12)
    links = layer(
        [
            symlink("conf", "/etc"),
            symlink("abs", str(abs_target)),
            symlink("rel", up_links + str(rel_target)),
        ]
    )
    ref = own_images([*test_image.layers, links], "mountpath-links", tmp_path)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "marker").write_text(f"volume-{tag}\n")
    in_etc = f"/etc/podrun-{tag}"
    c = image_container(
        "c",
        ref,
        f"cat {in_etc}/marker {abs_target}/marker {rel_target}/marker; echo done; {IDLE}",
        volumeMounts=[
            {"name": "h", "mountPath": f"/conf/podrun-{tag}"},
            {"name": "h", "mountPath": "/abs"},
            {"name": "h", "mountPath": "/rel"},
        ],
    )
    pod = manifest(name, [c], volumes=[{"name": "h", "hostPath": {"path": str(volume)}}])
    watched = [Path(in_etc), abs_target.parent.parent, rel_target.parent.parent]
    proc = launch(tmp_path, pod)
    try:
        wait_for(lambda: "done" in logs(name, "c"), "the container to look", 120)
        pid = state(name)["containers"]["c"]["pid"]
        points = {point for root_, point in mountinfo(pid) if root_ == in_fs(volume)}
        # Inside: where the links resolve in the container's root.
        assert points == {in_etc, str(abs_target), str(rel_target)}, points
        # On the host: nothing mounted or made there.
        assert host_mounts_at(watched) == []
    finally:
        stop(proc)
    assert logs(name, "c") == [f"volume-{tag}"] * 3 + ["done"]
    assert not abs_target.parent.exists() and not rel_target.parent.exists()
    assert not Path(in_etc).exists()


# --- setuid binaries and allowPrivilegeEscalation ---------------------------------------

# A static program with no libc: prints its own /proc/self/status, then
# pauses (so that the host can read the same file) until a signal ends it.
STATUS_C = r"""
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
void _start(void) {
    char buf[4096];
    long fd = sys3(2 /* open */, (long)"/proc/self/status", 0, 0), n;
    while (fd >= 0 && (n = sys3(0 /* read */, fd, (long)buf, sizeof buf)) > 0)
        sys3(1 /* write */, 1, (long)buf, n);
    for (;;)
        sys3(34 /* pause */, 0, 0, 0);
}
"""


def status_program(directory: Path) -> Path:
    """Builds the program with the host's C compiler (static, no libc)."""
    if os.uname().machine != "x86_64":
        pytest.skip(f"the setuid test program is written for x86_64, not {os.uname().machine}")
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the setuid test program")
    source = directory / "status.c"
    source.write_text(STATUS_C)
    binary = directory / "podrun-status"
    built = subprocess.run(
        [cc, "-static", "-nostdlib", "-O2", "-fno-stack-protector", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return binary


@pytest.fixture
def setuid_program(tmp_path, request, test_image, own_images):
    """The status program, setuid root, where `request.param` says: in an
    image layer (mode 4755 in the tar), or on the host for `rootfs:/` (in a
    directory every user can reach, on a filesystem without nosuid).
    Returns (the container's image, the program's path in it)."""
    binary = status_program(tmp_path)
    if request.param == "image":
        entry = file_entry("usr/local/bin/podrun-status", binary.read_bytes(), mode=0o4755)
        ref = own_images([*test_image.layers, layer([directory("usr/local"), directory("usr/local/bin"), entry])], "setuid", tmp_path)
        yield ref, "/usr/local/bin/podrun-status"
        return
    # Not under tmp_path (only root may enter it), nor on a nosuid
    # filesystem (the VM's /tmp may be one).
    bases = ("/tmp", "/var/tmp", "/run")
    base = next(
        (b for b in bases if os.access(b, os.W_OK) and not os.statvfs(b).f_flag & os.ST_NOSUID),
        None,
    )
    if base is None:
        pytest.skip(f"no writable filesystem without nosuid among {bases} for the setuid program")
    shared = Path(tempfile.mkdtemp(prefix="podrun-setuid-", dir=base))
    try:
        shared.chmod(0o755)
        program = shared / "podrun-status"
        shutil.copy(binary, program)
        program.chmod(0o4755)
        yield HOST, str(program)
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize("setuid_program", ["image", "rootfs"], indirect=True)
def test_a_setuid_root_program_gains_nothing_without_privilege_escalation(tmp_path, name, setuid_program):
    image, program = setuid_program
    user = {"runAsUser": 1000, "runAsGroup": 1000}
    strict = on(image, "strict", None, command=[program], securityContext={**user, "allowPrivilegeEscalation": False})
    # The contrast: the same program, the same user, escalation allowed.
    loose = on(image, "loose", None, command=[program], securityContext=user)
    # The program is its PID namespace's init, which SIGTERM does not end.
    proc = launch(tmp_path, manifest(name, [strict, loose], terminationGracePeriodSeconds=1))
    try:
        seen = {}
        for c in ("strict", "loose"):
            lines = wait_for(
                lambda: (lines := logs(name, c)) and any(x.startswith("NoNewPrivs") for x in lines) and lines,
                f"{c} to print its status",
                120,
            )
            inside = status_fields(lines)
            # From the host: the same process, read from /proc.
            pid = state(name)["containers"][c]["pid"]
            on_host = status_fields(Path(f"/proc/{pid}/status").read_text().splitlines())
            for key in ("Uid", "Gid", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs"):
                assert inside[key] == on_host[key], (c, key, inside[key], on_host[key])
            seen[c] = on_host
    finally:
        stop(proc)
    strict, loose = seen["strict"], seen["loose"]
    assert strict["Uid"].split() == ["1000"] * 4, strict
    assert strict["Gid"].split() == ["1000"] * 4, strict
    assert strict["CapPrm"] == strict["CapEff"] == strict["CapAmb"] == "0000000000000000", strict
    assert strict["NoNewPrivs"] == "1"
    # Without allowPrivilegeEscalation: false the setuid bit works: euid 0
    # and the container's whole capability set.
    assert loose["Uid"].split() == ["1000", "0", "0", "0"], loose
    assert int(loose["CapEff"], 16) != 0 and loose["CapEff"] == loose["CapBnd"], loose
    assert loose["NoNewPrivs"] == "0"


# --- the pod's API socket and podrun's own directories -----------------------------------

PODRUN_DIRS = ("/run/podrun", "/var/lib/podrun", "/var/log/podrun")

# Connects to a socket (argv[1]) and asks the supervisor to stop the pod at
# once: what a container that reached its pod's API could do.
CONNECT_PY = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as e:\n"
    "    print('connect:', type(e).__name__)\n"
    "else:\n"
    "    s.sendall(b'{\"version\":1,\"op\":\"stop\",\"graceSeconds\":0}\\n')\n"
    "    print('connect: reached', s.recv(4096))\n"
)


def test_podruns_directories_and_the_api_socket_are_out_of_reach_of_containers(tmp_path, name, busybox_image):
    """No container sees podrun's state, data or logs (its own pod's and
    every other's) nor can connect to its pod's API socket: not on an
    image (the paths are not in its root) and not on the host's own root
    (`rootfs:/`, or the same root named `rootfs:/tmp/..`), where podrun
    hides its directories in the container's mount namespace."""
    # A root inside podrun's own directories is refused before anything
    # is made. (Paths that do not exist: a podrun that took them would
    # only fail to start the container, and make nothing there.)
    fake = f"{name}-{token()}"
    for inside in (
        f"rootfs:/run/podrun/{fake}",
        f"rootfs:/var/lib/podrun/pods/{fake}/containers/c/0/rootfs",
        f"rootfs:/tmp/../var/log/podrun/{fake}",
    ):
        refused = up(tmp_path, manifest(name, [on(inside, "c", "true")]), timeout=60)
        assert refused.returncode == 2, (inside, refused.stderr)
        assert "inside podrun's own directory" in refused.stderr, (inside, refused.stderr)
        assert not Path(f"/run/podrun/{name}").exists()
    sock = f"/run/podrun/{name}/api.sock"
    look = (
        "for d in " + " ".join(PODRUN_DIRS) + " /proc/1/root/run/podrun; do "
        'if [ -e $d ]; then echo "$d: [$(ls -A $d | tr \'\\n\' \' \')]"; else echo "$d: absent"; fi; done; '
    )
    image = image_container("image", busybox_image, look + f"echo done; {IDLE}")
    hosts = [
        on(root, c, look + f"python3 -c \"$PY\" {sock}; echo done; {IDLE}", env=[{"name": "PY", "value": CONNECT_PY}])
        for c, root in (("host", HOST), ("alias", "rootfs:/tmp/.."))
    ]
    proc = launch(tmp_path, manifest(name, [image, *hosts]))
    try:
        # A container that reached the socket stops the pod: then the
        # checks below say what it saw.
        wait_for(
            lambda: proc.poll() is not None or all("done" in logs(name, c) for c in ("image", "host", "alias")),
            "the containers to look",
            120,
        )
        assert proc.poll() is None, f"the pod was stopped: {[logs(name, c) for c in ('host', 'alias')]}"
        # From the host: the socket is there and answers root, the pod
        # runs on, untouched.
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(b'{"version":1,"op":"status"}\n')
            reply = json.loads(s.makefile("rb").readline())
        assert reply["ok"] and reply["status"]["phase"] == "Running", reply
        assert all(s["restartCount"] == 0 and s["state"].get("running") for s in reply["status"]["containerStatuses"])
        assert running(name, ["image", "host", "alias"])
    finally:
        stop(proc)
    image_out = logs(name, "image")
    assert image_out == [f"{d}: absent" for d in PODRUN_DIRS] + ["/proc/1/root/run/podrun: absent", "done"], image_out
    for c in ("host", "alias"):
        out = logs(name, c)
        # The directories are there (the host's root) but empty.
        assert out[:4] == [f"{d}: []" for d in PODRUN_DIRS] + ["/proc/1/root/run/podrun: []"], (c, out)
        assert out[4] == "connect: FileNotFoundError", (c, out)


def client_as_nobody(script, *args, dac_override=False):
    """Runs a Python script as uid/gid 65534 with no groups (and, with
    `dac_override`, the one capability that passes file modes, so that
    only the supervisor's own check stands in the way); the system's
    python3, which every user can run."""
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"] if dac_override else []
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *caps, "/usr/bin/python3", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


# Connects, sends requests that would stop the pod, run a command and read
# a log (with descriptors for the exec), and prints every reply line and
# every descriptor that came with them until the supervisor closes.
NOBODY_PY = r"""
import json, os, socket, sys
print("started as", os.getuid())
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect:", type(e).__name__)
    sys.exit(0)
print("connect: connected")
lines = [
    {"version": 1, "op": "stop", "graceSeconds": 0},
    {"version": 1, "op": "logs", "container": "app"},
    {"version": 1, "op": "status"},
]
null = os.open(os.devnull, os.O_RDWR)
try:
    socket.send_fds(s, [json.dumps({"version": 1, "op": "exec", "command": ["true"]}).encode() + b"\n"], [null] * 3)
    s.sendall(b"".join(json.dumps(l).encode() + b"\n" for l in lines))
except OSError as e:
    print("send:", type(e).__name__)
data, fds = b"", []
while True:
    try:
        chunk, got, _, _ = socket.recv_fds(s, 65536, 8)
    except OSError as e:
        print("recv:", type(e).__name__)
        break
    if not chunk:
        break
    data += chunk
    fds += got
for line in data.splitlines():
    print("reply:", line.decode())
print("descriptors:", len(fds))
"""


def test_the_api_socket_refuses_non_root_clients_and_they_change_nothing(tmp_path, name):
    side = container("side", IDLE, restartPolicy="Always")
    app = container("app", "echo app-secret-output; " + IDLE)
    proc = launch(tmp_path, manifest(name, [app], init=[side]))
    try:
        wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
        before = state(name)
        sock = Path(f"/run/podrun/{name}/api.sock")
        # Modes: only root reaches the socket.
        for path, kind, mode in (
            (Path("/run/podrun"), stat.S_ISDIR, 0o700),
            (sock.parent, stat.S_ISDIR, 0o700),
            (sock, stat.S_ISSOCK, 0o600),
        ):
            st = os.lstat(path)
            assert kind(st.st_mode), path
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), (path, oct(st.st_mode))
        # A plain non-root user cannot even connect.
        plain = client_as_nobody(NOBODY_PY, str(sock))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.splitlines() == ["started as 65534", "connect: PermissionError"], plain.stdout
        # One that passes the file modes is refused by the supervisor
        # (SO_PEERCRED): one error reply, no data, no descriptor.
        strong = client_as_nobody(NOBODY_PY, str(sock), dac_override=True)
        assert strong.returncode == 0, strong.stderr
        out = strong.stdout.splitlines()
        assert out[:2] == ["started as 65534", "connect: connected"], out
        replies = [json.loads(line.split(": ", 1)[1]) for line in out if line.startswith("reply: ")]
        assert replies == [{"ok": False, "error": "permission denied: the API is root's"}], out
        assert out[-1] == "descriptors: 0", out
        assert "app-secret-output" not in strong.stdout
        # The pod is untouched: same pod, every container still in its
        # first run, no Killing event, and root's requests still answered.
        after = state(name)
        assert after["uid"] == before["uid"]
        assert running(name, ["side", "app"])
        pods = after["status"]["initContainerStatuses"] + after["status"]["containerStatuses"]
        assert all(s["restartCount"] == 0 and s["state"].get("running") for s in pods), pods
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(b'{"version":1,"op":"events"}\n')
            events = json.loads(s.makefile("rb").readline())["events"]
        assert not [e for e in events if e["reason"] == "Killing"], events
    finally:
        stop(proc)


# A user who is not root tries to list the pod's log directory and read a
# container's log.
READ_LOG_PY = r"""
import os, sys
for what, act in (("list", lambda: os.listdir(sys.argv[1])), ("read", lambda: open(sys.argv[2]).read())):
    try:
        act()
        print(what, "allowed")
    except OSError as e:
        print(what, type(e).__name__)
"""


def test_a_containers_logs_are_not_other_users_to_read(tmp_path, name):
    app = container("app", "echo app-secret-output")
    result = up(tmp_path, manifest(name, [app]))
    assert result.returncode == 0, result.stderr
    s = state(name)
    log_dir = Path(s["dirs"]["logs"])
    log = Path(s["containers"]["app"]["log"])
    assert "app-secret-output" in log.read_text()
    for path, mode in ((log_dir, 0o750), (log.parent, 0o750), (log, 0o640)):
        st = os.lstat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, mode), (path, oct(st.st_mode))
    nobody = client_as_nobody(READ_LOG_PY, str(log.parent), str(log))
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.splitlines() == ["list PermissionError", "read PermissionError"], nobody.stdout


# --- names that are paths ----------------------------------------------------------------

WATCHED_TREES = [Path(d) for d in PODRUN_DIRS]
WATCHED_PARENTS = [Path(p) for p in ("/", "/run", "/var", "/var/lib", "/var/log")]


def snapshot():
    """What a name turned into a path could touch: podrun's trees (three
    levels deep) and the names in their parents."""
    seen = set()
    for top in WATCHED_TREES:
        if not top.exists():
            continue
        seen.add(str(top))
        for dirpath, dirnames, filenames in os.walk(top):
            depth = len(Path(dirpath).relative_to(top).parts)
            for n in dirnames + filenames:
                seen.add(os.path.join(dirpath, n))
            if depth >= 2:
                dirnames[:] = []
    for parent in WATCHED_PARENTS:
        seen.update(str(parent / n) for n in os.listdir(parent))
    return seen


def changes(before, after, tag, ours):
    """Paths added or removed between two snapshots, less other pods'
    (another user of this machine may start or remove pods meanwhile):
    what is under a pod's directory (`NAME`, `NAME_UID`, `UID`) whose name
    is neither ours nor has `tag` in it."""
    pod_dir = re.compile(
        r"^/(run/podrun|var/log/podrun|var/lib/podrun/pods)/([a-z0-9][-a-z0-9._]*[a-z0-9])(/|$)"
    )
    found = []
    for path in sorted(before ^ after):
        m = pod_dir.match(path)
        if m and tag not in path and not m.group(2).startswith(ours):
            continue
        found.append(("added " if path in after else "removed ") + path)
    return found


def bad_pods(tag):
    """Manifests with a name that is a path, each with the field that must
    be named: (what, manifest, field)."""

    def pod(meta_name=f"ok-{tag}", container_name="c", volume_name="v", sub_path="sub"):
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": meta_name},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": volume_name, "emptyDir": {}}],
                "containers": [
                    {
                        "name": container_name,
                        "image": HOST,
                        "command": ["true"],
                        "volumeMounts": [{"name": volume_name, "mountPath": "/mnt", "subPath": sub_path}],
                    }
                ],
            },
        }

    tricks = [f"../{tag}", f"{tag}/x", "..", ".", f"{tag}\0x", f"../../../../tmp/{tag}", f"{tag}/../.."]
    cases = []
    for t in tricks + [f"{tag}-" + "a" * 250]:
        cases.append((f"pod name {t!r}", pod(meta_name=t), "metadata.name"))
    for t in tricks + [f"{tag}-" + "a" * 60]:
        cases.append((f"container name {t!r}", pod(container_name=t), "spec.containers[0].name"))
        cases.append((f"volume name {t!r}", pod(volume_name=t), "spec.volumes[0].name"))
    for t in [f"../{tag}", f"/{tag}", f"a/../../{tag}", f"{tag}/../..", ".."]:
        cases.append((f"subPath {t!r}", pod(sub_path=t), "spec.containers[0].volumeMounts[0].subPath"))
    return cases


def test_a_name_that_is_a_path_never_reaches_one(tmp_path, name, podrun):
    """Pod, container and volume names and subPaths with `../`, `/`, `..`,
    NUL or too many characters are refused by validate and up (exit 2,
    naming the field as Kubernetes' validation does); every verb given
    such a pod or container name refuses it (exit 2); socket requests
    naming such a container are refused; and nothing appears anywhere
    under podrun's directories or their parents."""
    tag = token()
    before = snapshot()
    for what, pod, field in bad_pods(tag):
        path = tmp_path / "pod.json"
        path.write_text(json.dumps(pod))
        for verb in ("validate", "up"):
            result = podrun(verb, path)
            assert result.returncode == 2, (what, verb, result.stderr)
            assert f"{field}: Invalid value" in result.stderr, (what, verb, result.stderr)
    bad_names = [f"../{tag}", "..", ".", f"{tag}/x", f"/tmp/{tag}", "", f"{tag}-" + "a" * 300, f"{tag}/../.."]
    verbs = [
        ("status", "{n}"),
        ("logs", "{n}"),
        ("logs", "{n}", "c"),
        ("events", "{n}"),
        ("down", "{n}"),
        ("rm", "{n}"),
        ("rm", "--force", "{n}"),
        ("exec", "{n}", "--", "true"),
    ]
    for n in bad_names:
        for verb in verbs:
            argv = [a.format(n=n) for a in verb]
            result = podrun(*argv)
            assert result.returncode == 2, (argv, result.stderr)
            assert result.stderr.startswith(f"error: invalid pod name {json.dumps(n)}"), (argv, result.stderr)

    # A running pod, and container names that are paths.
    app = container("app", "echo app-output; " + IDLE)
    proc = launch(tmp_path, manifest(name, [app]))
    try:
        wait_for(lambda: running(name, ["app"]), "the pod to run")
        uid = state(name)["uid"]
        bad_containers = [f"../{tag}", "..", f"{tag}/x", f"../../../{name}_{uid}/app", f"app/../../{tag}"]
        for c in bad_containers:
            for argv in (("logs", name, c), ("exec", name, "-c", c, "--", "true"), ("logs", "-p", name, c)):
                result = podrun(*argv)
                assert result.returncode == 2, (argv, result.stderr)
                assert f"container {c} is not valid for pod {name}" in result.stderr, (argv, result.stderr)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(f"/run/podrun/{name}/api.sock")
            null = os.open(os.devnull, os.O_RDWR)
            for c in bad_containers:
                for req, fds in (
                    ({"version": 1, "op": "logs", "container": c}, []),
                    ({"version": 1, "op": "logs", "container": c, "previous": True}, []),
                    ({"version": 1, "op": "exec", "container": c, "command": ["true"]}, [null] * 3),
                    ({"version": 1, "op": "apply", "images": {c: HOST}}, []),
                ):
                    socket.send_fds(s, [json.dumps(req).encode() + b"\n"], fds)
                    data, got, _, _ = socket.recv_fds(s, 65536, 4)
                    reply = json.loads(data)
                    assert not reply["ok"] and got == [], (req, reply, got)
                    assert c in reply["error"], (req, reply)
            os.close(null)
            # A new root that is a relative path, or podrun's own data.
            # (Paths that do not exist: a podrun that took them would make
            # nothing there.)
            for image in (
                f"rootfs:../{tag}",
                f"rootfs:/var/lib/podrun/pods/{tag}",
                f"rootfs:/tmp/../run/podrun/{name}/{tag}",
            ):
                s.sendall(json.dumps({"version": 1, "op": "apply", "images": {"app": image}}).encode() + b"\n")
                reply = json.loads(s.makefile("rb").readline())
                assert not reply["ok"] and "rootfs" in reply["error"], (image, reply)
        after_requests = state(name)
        assert after_requests["status"]["containerStatuses"][0]["restartCount"] == 0
        assert running(name, ["app"])
    finally:
        stop(proc)
    # Once the pod is over, logs read from disk: the same refusals.
    for c in (f"../{tag}", f"../../../{name}_{uid}/app"):
        result = podrun("logs", name, c)
        assert result.returncode == 2 and f"container {c} is not valid for pod {name}" in result.stderr
    found = changes(before, snapshot(), tag, name)
    # Our own pod's state and log are the only new things.
    assert found == [
        f"added /run/podrun/{name}",
        *[f"added /run/podrun/{name}/{f}" for f in sorted(os.listdir(f"/run/podrun/{name}"))],
        f"added /var/log/podrun/{name}_{uid}",
        f"added /var/log/podrun/{name}_{uid}/app",
        f"added /var/log/podrun/{name}_{uid}/app/0.log",
    ], found
