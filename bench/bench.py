#!/usr/bin/env python3
"""podrun's benchmarks against runc and podman, side by side in one run.

Run by scripts/bench (which installs the tools and builds podrun with the
`bench-release` profile, the size-tuned build of Cargo.toml); see its header
for the options. Standard library only.

Every comparison is a ratio of medians taken in the same run, with the runs
of the tools interleaved, so that a noisy neighbour slows each tool alike.
Absolute times describe this run on this machine and nothing else.

The pod is the same everywhere: a regular init container running `true`, a
sidecar and an app each running a shell that exits on SIGTERM and waits on a
`sleep`, all on the test image (Debian's busybox-static,
scripts/build-test-image). The pull section pulls images of its own (random
content) from a docker-registry it runs on 127.0.0.1.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import secrets
import select
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The helpers shared with runtime-tests (standard library only).
sys.path.insert(0, str(ROOT / "runtime-tests"))
import images  # noqa: E402  (OCI layouts written entry by entry)
import podrun_host  # noqa: E402
from podrun_host import state  # noqa: E402

# The bench's own image name: a user's images are never replaced.
IMAGE = "podrun.local/podrun-bench/busybox:1.35"
# The two podrun rows of the start table: on podrun's default network, and
# with hostNetwork.
PODRUN = "podrun"
PODRUN_HOSTNET = "podrun, hostNetwork"
CNI_BRIDGE = Path("/usr/lib/cni/bridge")
# A PID 1 without a SIGTERM handler ignores SIGTERM: each long-running
# container handles it, so that `down` measures a pod that stops when asked.
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"
GRACE = 5
SIGTERM_BIT = 1 << (15 - 1)

TARGETS = {
    "start_vs_runc": 0.25,  # podrun's median at most a quarter of runc's
    "start_vs_podman": 0.1,  # at least 10x faster than podman kube play
    "down_ms": 50.0,
    "idle_rss_kib": 4096,
    "jitter_ms": 20.0,
}


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


# --- statistics -----------------------------------------------------------


def summary(samples):
    """Median and spread of `samples` (any unit)."""
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return {"n": 0}
    q = statistics.quantiles(s, n=4, method="inclusive") if n > 1 else [s[0]] * 3
    p95 = statistics.quantiles(s, n=20, method="inclusive")[-1] if n > 1 else s[0]
    return {
        "n": n,
        "median": statistics.median(s),
        "p25": q[0],
        "p75": q[2],
        "p95": p95,
        "min": s[0],
        "max": s[-1],
        "stdev": statistics.stdev(s) if n > 1 else 0.0,
    }


def ms(seconds):
    return [x * 1000.0 for x in seconds]


def fmt(stat, unit="ms", digits=1):
    if not stat or stat.get("n", 0) == 0:
        return "-"
    return (
        f"{stat['median']:.{digits}f} {unit} "
        f"[{stat['p25']:.{digits}f}–{stat['p75']:.{digits}f}, "
        f"max {stat['max']:.{digits}f}, n={stat['n']}]"
    )


# --- processes ------------------------------------------------------------


def run(cmd, check=True, env=None, timeout=300):
    result = subprocess.run(
        [str(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result


def quiet(cmd, env=None):
    """Runs a command whose output nobody reads, as a script would."""
    return subprocess.run(
        [str(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    ).returncode


def wait_exit(pid, timeout=30.0):
    """Waits for process `pid` (not necessarily a child) to end."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise RuntimeError(f"process {pid} did not exit within {timeout}s")
    finally:
        os.close(fd)


def settled(pid):
    """The container's shell waits for its `sleep` with its SIGTERM trap
    set. Only then is a SIGTERM sure to end it: busybox's ash loses a
    trapped signal that comes between `trap` and `wait` (seen here about
    once in 15 tries), and the pod would then wait out its grace period."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        if not int(caught.split()[1], 16) & SIGTERM_BIT:
            return False
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return bool(children) and Path(f"/proc/{pid}/wchan").read_text().startswith("sigsuspend")
    except (OSError, StopIteration):
        return False


def wait_until(predicate, what, timeout=30.0, step=0.002):
    return podrun_host.wait_for(predicate, what, timeout, step, error=RuntimeError)


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def pss_kib(pid):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the pod --------------------------------------------------------------


def pod_manifest(name, image=IMAGE):
    def c(cname, command, **extra):
        d = {"name": cname, "image": image, "imagePullPolicy": "IfNotPresent", "command": command}
        d.update(extra)
        return d

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": GRACE,
            "initContainers": [
                c("init", ["true"]),
                c("sidecar", ["sh", "-c", SERVE], restartPolicy="Always"),
            ],
            "containers": [c("app", ["sh", "-c", SERVE])],
        },
    }


class Podrun:
    name = "podrun"

    def __init__(self, binary, work):
        self.bin = binary
        self.work = work

    def __call__(self, *args, check=True, timeout=300):
        return run([self.bin, *args], check=check, timeout=timeout)

    def write(self, pod):
        path = self.work / f"{pod['metadata']['name']}.json"
        path.write_text(json.dumps(pod))
        return path

    def forget(self, name):
        quiet([self.bin, "rm", "--force", name])


class PodrunPod:
    """The bench pod under podrun: up -d, down, rm. On podrun's default
    network (a bridge, host-local, portmap, firewall, loopback: CNI ADD at
    start, DEL at down), or with `hostNetwork` (no pod network, as the runc
    pods have none but their loopback)."""

    def __init__(self, podrun, name, host_network=False):
        self.podrun = podrun
        self.name = name
        pod = pod_manifest(name)
        if host_network:
            pod["spec"]["hostNetwork"] = True
        self.file = podrun.write(pod)
        self.tool = PODRUN_HOSTNET if host_network else PODRUN

    def clean(self):
        self.podrun.forget(self.name)

    def start(self):
        if quiet([self.podrun.bin, "up", "-d", self.file]) != 0:
            raise RuntimeError(self.podrun("up", "-d", self.file, check=False).stderr)

    def pids(self):
        containers = state(self.name)["containers"]
        return [containers[c]["pid"] for c in ("sidecar", "app")]

    def down(self):
        if quiet([self.podrun.bin, "down", self.name]) != 0:
            raise RuntimeError(f"podrun down {self.name} failed")

    def after(self):
        self.podrun.forget(self.name)


class RuncPod:
    """The same three containers with runc, each from an OCI bundle of the
    same rootfs: create, start and (for the init container) wait, in the
    pod's order; down is kill (app, then sidecar, as a pod stops) and
    delete of the three."""

    ORDER = ("init", "sidecar", "app")

    def __init__(self, work, rootfs, prefix="bench"):
        self.tool = "runc"
        self.ids = {c: f"{prefix}-runc-{c}" for c in self.ORDER}
        self.bundles = {}
        self.pidfile = {}
        spec = self.default_spec(work)
        for c, args in (("init", ["true"]), ("sidecar", ["sh", "-c", SERVE]), ("app", ["sh", "-c", SERVE])):
            bundle = work / f"{prefix}-runc-{c}"
            bundle.mkdir(exist_ok=True)
            config = json.loads(json.dumps(spec))
            config["process"]["terminal"] = False
            config["process"]["args"] = args
            config["root"] = {"path": str(rootfs), "readonly": True}
            (bundle / "config.json").write_text(json.dumps(config))
            self.bundles[c] = bundle
            self.pidfile[c] = work / f"{prefix}-runc-{c}.pid"

    @staticmethod
    def default_spec(work):
        scratch = work / "runc-spec"
        scratch.mkdir(exist_ok=True)
        (scratch / "config.json").unlink(missing_ok=True)
        run(["runc", "spec", "--bundle", scratch])
        return json.loads((scratch / "config.json").read_text())

    def clean(self):
        for c in self.ORDER:
            quiet(["runc", "delete", "--force", self.ids[c]])

    def start(self):
        for c in self.ORDER:
            if quiet(["runc", "create", "--bundle", self.bundles[c], "--pid-file", self.pidfile[c], self.ids[c]]):
                raise RuntimeError(f"runc create {self.ids[c]} failed")
            pid = int(self.pidfile[c].read_text())
            if quiet(["runc", "start", self.ids[c]]):
                raise RuntimeError(f"runc start {self.ids[c]} failed")
            if c == "init":
                wait_exit(pid)

    def pids(self):
        return [int(self.pidfile[c].read_text()) for c in ("sidecar", "app")]

    def down(self):
        for c in ("app", "sidecar"):
            pid = int(self.pidfile[c].read_text())
            if quiet(["runc", "kill", self.ids[c], "TERM"]):
                raise RuntimeError(f"runc kill {self.ids[c]} failed")
            wait_exit(pid)
        for c in self.ORDER:
            if quiet(["runc", "delete", self.ids[c]]):
                raise RuntimeError(f"runc delete {self.ids[c]} failed")

    def after(self):
        self.clean()


class RuncRunPod(RuncPod):
    """runc's quickest way to the same state: `runc run` (create, start and
    wait in one process) for the init container, `runc run -d` for the
    others. Shown beside the create/start/wait sequence; not a target."""

    def __init__(self, work, rootfs):
        super().__init__(work, rootfs, prefix="bench-run")
        self.tool = "runc run"

    def start(self):
        if quiet(["runc", "run", "--bundle", self.bundles["init"], self.ids["init"]]):
            raise RuntimeError("runc run init failed")
        for c in ("sidecar", "app"):
            if quiet(["runc", "run", "-d", "--bundle", self.bundles[c], "--pid-file", self.pidfile[c], self.ids[c]]):
                raise RuntimeError(f"runc run -d {self.ids[c]} failed")

    def down(self):
        for c in ("app", "sidecar"):
            pid = int(self.pidfile[c].read_text())
            quiet(["runc", "kill", self.ids[c], "TERM"])
            wait_exit(pid)
        for c in ("sidecar", "app"):
            if quiet(["runc", "delete", self.ids[c]]):
                raise RuntimeError(f"runc delete {self.ids[c]} failed")


class RuncCniPod(RuncPod):
    """runc with a pod network made by hand, as podrun's pod gets one: a
    network namespace (`ip netns add`), the bridge plugin's ADD into it
    (its own bridge, host-local on a subnet of its own, the bridge as
    gateway, masquerade), the three containers joining it; down is runc's,
    then the plugin's DEL and the namespace's removal."""

    NETNS = "bench-runc-cni"

    def __init__(self, work, rootfs):
        super().__init__(work, rootfs, prefix="bench-cni")
        self.tool = "runc + bridge plugin"
        netns = f"/run/netns/{self.NETNS}"
        for bundle in self.bundles.values():
            config = json.loads((bundle / "config.json").read_text())
            spaces = config["linux"]["namespaces"]
            config["linux"]["namespaces"] = [n for n in spaces if n["type"] != "network"] + [
                {"type": "network", "path": netns}
            ]
            (bundle / "config.json").write_text(json.dumps(config))
        self.conf = json.dumps({
            "cniVersion": "1.0.0", "name": "bench-runc", "type": "bridge", "bridge": "benchcni0",
            "isGateway": True, "ipMasq": True, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": str(work / "runc-ipam"),
                     "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "10.98.0.0/24"}]]},
        })
        self.env = dict(os.environ, CNI_CONTAINERID=self.NETNS, CNI_NETNS=netns, CNI_IFNAME="eth0",
                        CNI_PATH="/usr/lib/cni")

    def cni(self, command):
        done = subprocess.run(["/usr/lib/cni/bridge"], input=self.conf, capture_output=True, text=True,
                              env=dict(self.env, CNI_COMMAND=command))
        if done.returncode:
            raise RuntimeError(f"bridge {command}: {done.stdout.strip()} {done.stderr.strip()}")

    def clean(self):
        super().clean()
        if Path("/run/netns", self.NETNS).exists():
            try:
                self.cni("DEL")
            except RuntimeError:
                pass
            quiet(["ip", "netns", "del", self.NETNS])

    def start(self):
        if quiet(["ip", "netns", "add", self.NETNS]):
            raise RuntimeError(f"ip netns add {self.NETNS} failed")
        self.cni("ADD")
        super().start()

    def down(self):
        super().down()
        self.cni("DEL")
        if quiet(["ip", "netns", "del", self.NETNS]):
            raise RuntimeError(f"ip netns del {self.NETNS} failed")


class PodmanPod:
    """`podman kube play` of the pod. Debian's podman 4.3 has no restartable
    init containers (it would run the sidecar as an init container and wait
    an hour for it): the sidecar is given as the first app container."""

    def __init__(self, work, env, with_init):
        self.env = env
        self.name = "bench-podman" if with_init else "bench-podman-noinit"
        self.tool = "podman kube play" if with_init else "podman kube play, no init"
        pod = pod_manifest(self.name)
        sidecar = pod["spec"]["initContainers"].pop(1)
        del sidecar["restartPolicy"]
        pod["spec"]["containers"].insert(0, sidecar)
        if not with_init:
            del pod["spec"]["initContainers"]
        self.file = work / f"{self.name}.json"
        self.file.write_text(json.dumps(pod))

    def clean(self):
        # After a failed play, podman's own clean-up of the pod may still be
        # running and refuse the removal for a while.
        for _ in range(20):
            quiet(["podman", "pod", "rm", "--force", "--time", "0", self.name], env=self.env)
            if quiet(["podman", "pod", "exists", self.name], env=self.env) != 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"podman cannot remove pod {self.name}")

    def start(self):
        played = subprocess.run(
            ["podman", "kube", "play", str(self.file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        if played.returncode:
            raise RuntimeError(played.stderr.strip().splitlines()[-1] if played.stderr.strip() else "failed")

    def pids(self):
        return [
            int(run(["podman", "inspect", "--format", "{{.State.Pid}}", f"{self.name}-{c}"], env=self.env).stdout)
            for c in ("sidecar", "app")
        ]

    def down(self):
        if quiet(["podman", "pod", "rm", "--force", self.name], env=self.env):
            raise RuntimeError(f"podman pod rm {self.name} failed")

    def after(self):
        self.clean()


# --- setup ----------------------------------------------------------------


def build_image(work, podrun):
    layout = work / "image"
    run([ROOT / "scripts" / "build-test-image", "--tag", IMAGE, layout])
    podrun("image", "import", f"oci:{layout}", IMAGE)
    # runc's rootfs: the image's one layer, unpacked by tar as an operator
    # would.
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    rootfs = work / "rootfs"
    rootfs.mkdir()
    run(["tar", "-xzf", layer, "-C", rootfs, "--numeric-owner"])
    return layout, rootfs


def podman_env(work):
    """podman's defaults raise RLIMIT_NOFILE and RLIMIT_NPROC past what a
    process without CAP_SYS_RESOURCE may (as on these machines), and its
    containers then fail to start: its containers get limits it can set."""
    conf = work / "containers.conf"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={soft}:{soft}", "nproc=4096:4096"]\n')
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(conf)
    return env


def podman_ready(work, layout, env):
    """Why podman cannot run here, or None once the image is in its store."""
    if not shutil.which("podman"):
        return "podman is not installed"
    copied = run(
        ["skopeo", "copy", "--quiet", f"oci:{layout}:{IMAGE}", f"containers-storage:{IMAGE}"],
        check=False,
        env=env,
    )
    if copied.returncode != 0:
        return f"skopeo copy into podman's store failed: {copied.stderr.strip()}"
    probe = run(["podman", "run", "--rm", IMAGE, "true"], check=False, env=env, timeout=120)
    if probe.returncode != 0:
        return f"podman run fails here: {probe.stderr.strip()[-300:]}"
    return None


def machine():
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_kib": mem,
        "cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "hybrid",
        "load_before": os.getloadavg(),
    }


def versions(podrun, profile):
    def first_line(cmd):
        r = run(cmd, check=False)
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"

    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip()
    return {
        "podrun": f"{first_line([podrun.bin, '--version'])} ({commit}{'+dirty' if dirty else ''}, profile {profile})",
        "runc": first_line(["runc", "--version"]),
        "podman": first_line(["podman", "--version"]) if shutil.which("podman") else None,
        "hyperfine": first_line(["hyperfine", "--version"]) if shutil.which("hyperfine") else None,
        "skopeo": first_line(["skopeo", "--version"]) if shutil.which("skopeo") else None,
        "docker-registry": first_line(["docker-registry", "--version"]) if shutil.which("docker-registry") else None,
    }


# --- sections -------------------------------------------------------------


def clean_all(pods):
    """Every pod's clean-up, each tried whatever the others did."""
    for p in pods:
        try:
            p.clean()
        except Exception as e:
            say(f"  clean-up of {p.tool} failed: {e}")


def bench_start_down(pods, runs):
    """Pod start and down, every tool once per round. A tool that fails a
    round is cleaned up and counted; its times are of the rounds it ran.
    Any other failure (a clean-up that fails, a timeout, an interrupt)
    ends the section with every tool's pod cleaned up."""
    try:
        return start_down_rounds(pods, runs)
    except BaseException:
        clean_all(pods)
        raise


def start_down_rounds(pods, runs):
    times = {p.tool: {"start": [], "down": [], "failures": []} for p in pods}
    for p in pods:
        p.clean()
    for i in range(runs):
        for p in pods:
            t = times[p.tool]
            try:
                t0 = time.perf_counter()
                p.start()
                t1 = time.perf_counter()
                # Untimed: every long-running container waits with its
                # SIGTERM trap set (a PID 1 without one ignores the signal).
                pids = p.pids()
                wait_until(lambda: all(settled(pid) for pid in pids), f"{p.tool}'s containers")
                t2 = time.perf_counter()
                p.down()
                t3 = time.perf_counter()
            except (RuntimeError, OSError, ValueError) as e:
                t["failures"].append(str(e))
                say(f"  {p.tool} failed in round {i + 1}: {e}")
                p.clean()
                continue
            p.after()
            t["start"].append(t1 - t0)
            t["down"].append(t3 - t2)
        say(
            f"  round {i + 1}/{runs}: "
            + ", ".join(f"{p.tool} {times[p.tool]['start'][-1] * 1000:.0f} ms" for p in pods if times[p.tool]["start"])
        )
    return {
        tool: {
            "start_ms": summary(ms(t["start"])),
            "down_ms": summary(ms(t["down"])),
            "failures": len(t["failures"]),
            # Container ids made alike, so that one error is listed once.
            "failure_messages": sorted({re.sub(r"\b[0-9a-f]{64}\b", "<id>", m) for m in t["failures"]}),
        }
        for tool, t in times.items()
    }


def scale_names(n):
    return [f"bench-scale-{i}" for i in range(n)]


def bench_scale(podrun, counts, runs):
    """1, 10, 100 pods up and down at once. Should a run fail (an up or a
    down, a wait that times out), none of its supervisors is left running."""
    try:
        return scale_runs(podrun, counts, runs)
    except BaseException:
        for name in scale_names(max(counts)):
            podrun.forget(name)
        raise


def scale_runs(podrun, counts, runs):
    out = {}
    for n in counts:
        names = scale_names(n)
        files = [podrun.write(pod_manifest(name)) for name in names]
        for name in names:
            podrun.forget(name)
        ready_s, started_s, down_s, rss, pss, idle_rss, idle_pss = [], [], [], [], [], [], []
        for r in range(runs):
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [podrun.bin, "up", "-d", f],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for f in files
            ]
            errors = [p.communicate()[1] for p in procs if p.wait() != 0]
            started = time.perf_counter()
            if errors:
                raise RuntimeError(f"{len(errors)} of {n} pods did not start: {errors[0].decode()[:300]}")

            wait_until(lambda: all(podrun_host.ready(name) for name in names), f"{n} pods Ready", timeout=300, step=0.005)
            ready = time.perf_counter()
            supervisors = [state(name)["supervisorPid"] for name in names]
            rss.append(sum(rss_kib(pid) for pid in supervisors))
            pss.append(sum(pss_kib(pid) for pid in supervisors))
            # Idle: once each supervisor has been quiet for a second (and
            # dropped the code its start touched).
            time.sleep(2)
            idle_rss.append(sum(rss_kib(pid) for pid in supervisors))
            idle_pss.append(sum(pss_kib(pid) for pid in supervisors))
            pids = [pid for name in names for pid in (state(name)["containers"][c]["pid"] for c in ("sidecar", "app"))]
            wait_until(lambda: all(settled(pid) for pid in pids), "handlers", timeout=120)
            d0 = time.perf_counter()
            downs = [
                subprocess.Popen([podrun.bin, "down", name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for name in names
            ]
            failed = [p.communicate()[1] for p in downs if p.wait() != 0]
            d1 = time.perf_counter()
            if failed:
                raise RuntimeError(f"{len(failed)} of {n} downs failed: {failed[0].decode()[:300]}")
            for name in names:
                podrun.forget(name)
            started_s.append(started - t0)
            ready_s.append(ready - t0)
            down_s.append(d1 - d0)
            say(f"  {n} pods, run {r + 1}/{runs}: all Ready in {(ready - t0) * 1000:.0f} ms, down in {(d1 - d0) * 1000:.0f} ms, supervisors {rss[-1]} kB RSS")
        out[str(n)] = {
            "all_started_ms": summary(ms(started_s)),
            "all_ready_ms": summary(ms(ready_s)),
            "all_down_ms": summary(ms(down_s)),
            "supervisor_rss_kib_total_at_ready": summary(rss),
            "supervisor_pss_kib_total_at_ready": summary(pss),
            "supervisor_rss_kib_total_idle": summary(idle_rss),
            "supervisor_pss_kib_total_idle": summary(idle_pss),
        }
    return out


def bench_idle(podrun, work, seconds):
    """An idle supervisor's RSS and CPU; the jitter of a 1 s exec probe."""
    idle = "bench-idle"
    ticks_dir = work / "ticks"
    ticks_dir.mkdir(exist_ok=True)
    ticks = ticks_dir / "t"
    ticks.unlink(missing_ok=True)
    jitter = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench-jitter"},
        "spec": {
            "terminationGracePeriodSeconds": GRACE,
            "containers": [
                {
                    "name": "app",
                    # The host's root, for GNU date's nanoseconds (busybox's
                    # date has none).
                    "image": "rootfs:/",
                    "command": ["sh", "-c", SERVE],
                    "livenessProbe": {
                        "exec": {"command": ["sh", "-c", "date +%s%N >> /mnt/t"]},
                        "periodSeconds": 1,
                        "failureThreshold": 1000,
                    },
                    # rootfs:/ mounts only on paths the host has: /mnt is
                    # in every Debian base system.
                    "volumeMounts": [{"name": "ticks", "mountPath": "/mnt"}],
                }
            ],
            "volumes": [{"name": "ticks", "hostPath": {"path": str(ticks_dir)}}],
        },
    }
    for name in (idle, "bench-jitter"):
        podrun.forget(name)
    try:
        # Both in the try: should the second fail, the first is stopped.
        podrun("up", "-d", podrun.write(pod_manifest(idle)))
        podrun("up", "-d", podrun.write(jitter))
        pid = state(idle)["supervisorPid"]
        # The supervisor drops its start-up code once the pod runs; the
        # sampling starts after that has settled.
        time.sleep(2)
        ticks.write_text("")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        rss, pss = [], []
        while time.monotonic() - t0 < seconds:
            rss.append(rss_kib(pid))
            pss.append(pss_kib(pid))
            time.sleep(1)
        cpu = cpu_seconds(pid) - cpu0
        elapsed = time.monotonic() - t0
        stamps = [int(x) for x in ticks.read_text().split()]
    finally:
        for name in (idle, "bench-jitter"):
            quiet([podrun.bin, "down", name])
            podrun.forget(name)
    intervals = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:])]
    deviation = [abs(i - 1000.0) for i in intervals]
    return {
        "seconds": round(elapsed, 1),
        "supervisor_rss_kib": summary(rss),
        "supervisor_pss_kib": summary(pss),
        "supervisor_cpu_seconds": round(cpu, 3),
        "supervisor_cpu_percent": round(100.0 * cpu / elapsed, 3),
        "probe_interval_ms": summary(intervals),
        "probe_jitter_ms": summary(deviation),
    }


def big_manifest(n=200):
    """200 containers: 10 regular init, 10 sidecars with startup probes, 180
    apps with resources, probes, env and volume mounts."""
    def resources(i):
        return {
            "requests": {"cpu": f"{10 + i % 7}m", "memory": f"{16 + i % 5}Mi"},
            "limits": {"cpu": f"{100 + i % 7}m", "memory": f"{64 + i % 5}Mi"},
        }

    init, apps = [], []
    for i in range(10):
        init.append({"name": f"init-{i}", "image": IMAGE, "command": ["true"], "resources": resources(i)})
        init.append(
            {
                "name": f"sidecar-{i}",
                "image": IMAGE,
                "restartPolicy": "Always",
                "command": ["sh", "-c", SERVE],
                "resources": resources(i),
                "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        )
    for i in range(n - len(init)):
        apps.append(
            {
                "name": f"app-{i}",
                "image": IMAGE,
                "command": ["sh", "-c", SERVE],
                "env": [{"name": "N", "value": str(i)}],
                "ports": [{"containerPort": 8000 + i}],
                "resources": resources(i),
                "readinessProbe": {"tcpSocket": {"port": 8000 + i}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8000 + i}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"initContainers": init, "containers": apps, "volumes": [{"name": "data", "emptyDir": {}}]},
    }


def bench_plan(podrun, work, runs):
    big = work / "big.json"
    big.write_text(json.dumps(big_manifest()))
    small = podrun.write(pod_manifest("bench-small"))
    podrun("validate", big)
    podrun("plan", big, "-o", "json")
    out = {}
    export = work / "hyperfine.json"
    commands = {
        "validate_200": f"{podrun.bin} validate {big}",
        "plan_200": f"{podrun.bin} plan {big} -o json",
        "plan_3": f"{podrun.bin} plan {small} -o json",
    }
    run(
        ["hyperfine", "-N", "--style", "none", "--warmup", "3", "--runs", str(max(runs, 20)), "--export-json", export,
         *commands.values()],
        timeout=600,
    )
    results = json.loads(export.read_text())["results"]
    for key, result in zip(commands, results):
        out[key] = summary(ms(result["times"]))
    return out


# --- pulls ----------------------------------------------------------------

# The pull section's images, made here: random (incompressible) content in
# gzip layers, three layers each so that a client's concurrent downloads
# count, in files of 1 MiB (the last of a layer less).
PULL_IMAGES = (("5 MB", 5_000_000), ("50 MB", 50_000_000))
PULL_LAYERS = 3
PULL_FILE = 1 << 20
PULL_REPO = "podrun-bench/pull"
PULL_TAG = "bench"
# What the section needs, and the Debian package that has it (scripts/setup
# installs them).
PULL_NEEDS = (("skopeo", "skopeo"), ("openssl", "openssl"), ("docker-registry", "docker-registry"))
LOOPBACK = "127.0.0.1"
# Seconds for the registry to answer /v2/.
REGISTRY_START_TIMEOUT = 60

# openssl's config for the bench's CA and the registry's certificate, so
# that the machine's openssl.cnf adds or clashes with nothing.
PULL_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = podrun bench
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class PullPki:
    """The bench's own CA and the registry's certificate for 127.0.0.1,
    which it signs (openssl, EC P-256, valid for two days). `ca_dir` holds
    only ca.crt: skopeo's and podman's --cert-dir."""

    def __init__(self, work):
        self.work = work
        work.mkdir(parents=True)
        cnf = work / "openssl.cnf"
        cnf.write_text(PULL_OPENSSL_CNF)
        self.ca, self.cert, self.key = work / "ca.crt", work / "server.crt", work / "server.key"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run(["openssl", "req", "-x509", "-config", cnf, "-extensions", "ca", *ec, "-keyout", work / "ca.key",
             "-out", self.ca, "-days", "2", "-subj", "/CN=podrun bench CA"])
        run(["openssl", "req", "-new", "-config", cnf, *ec, "-keyout", self.key, "-out", work / "server.csr",
             "-subj", "/CN=127.0.0.1"])
        run(["openssl", "x509", "-req", "-in", work / "server.csr", "-CA", self.ca, "-CAkey", work / "ca.key",
             "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-extfile", cnf, "-extensions", "server",
             "-out", self.cert])
        self.ca_dir = work / "ca"
        self.ca_dir.mkdir()
        shutil.copy(self.ca, self.ca_dir / "ca.crt")


def free_port():
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def no_proxy(env):
    """`env` without proxy settings: the bench's traffic stays on 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        env.pop(name, None)
        env.pop(name.upper(), None)
    return env


class PullRegistry:
    """Debian's docker-registry on a free port of 127.0.0.1 (never every
    interface), TLS with the bench's certificate, anonymous, its storage and
    its log under `work`. `stop()` ends it."""

    def __init__(self, work, pki):
        self.work, self.pki = work, pki
        self.work.mkdir(parents=True)
        self.log = work / "registry.log"
        self.process = None
        self.port = None

    def config(self):
        return {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.work / "storage")},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # Only the loopback: ":PORT" would be every interface.
            "http": {
                "addr": f"{LOOPBACK}:{self.port}",
                "secret": secrets.token_hex(16),
                "tls": {"certificate": str(self.pki.cert), "key": str(self.pki.key)},
            },
        }

    def start(self):
        # A port taken between free_port() and the registry's bind: another.
        for _ in range(3):
            self.port = free_port()
            config = self.work / "config.yml"
            config.write_text(json.dumps(self.config(), indent=1))  # YAML is a superset of JSON
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    ["docker-registry", "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self.answers():
                return self
            self.stop()
            if "address already in use" not in self.log.read_text(errors="replace"):
                break
        raise RuntimeError(
            f"docker-registry did not start on {self.host}; its log:\n{self.log.read_text(errors='replace')[-2000:]}"
        )

    def answers(self):
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                opener.open(f"https://{self.host}/v2/", timeout=5).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    @property
    def host(self):
        return f"{LOOPBACK}:{self.port}"


class PullImage:
    """One of the pull section's images: its OCI layout (written here) and
    its name in the registry once pushed."""

    def __init__(self, work, label, size):
        self.label = label
        self.slug = label.replace(" ", "").lower()
        layers = []
        per_layer = size // PULL_LAYERS
        for i in range(PULL_LAYERS):
            entries = [images.directory(f"bench-{i}")]
            left, j = per_layer, 0
            while left > 0:
                n = min(PULL_FILE, left)
                entries.append(images.file(f"bench-{i}/noise-{j}", os.urandom(n)))
                left, j = left - n, j + 1
            layers.append(images.layer(entries))
        self.image = images.write_layout(work / f"layout-{self.slug}", layers, PULL_TAG)
        self.layer_bytes = sum(len(x.blob) for x in layers)
        self.content_bytes = per_layer * PULL_LAYERS
        self.ref = None

    def push(self, registry, skopeo):
        self.ref = f"{registry.host}/{PULL_REPO}-{self.slug}:{PULL_TAG}"
        skopeo.run("copy", "-q", "--preserve-digests", "--dest-cert-dir", registry.pki.ca_dir, self.image.source,
                   f"docker://{self.ref}")

    def blobs(self):
        """The digests of the layers and the config: what a pull fetches."""
        return [x.digest for x in self.image.layers] + [self.image.config_digest]


class PullConfig:
    """What every client is given, under `work`, so that none reads the
    machine's registries.conf, a user's credentials or signature policy:
    an empty registries.conf, an empty auth file, a DOCKER_CONFIG without a
    config.json, a policy accepting anything (skopeo, podman), and certs.d
    with the bench's CA for the registry (podrun: PODRUN_CERTS_D)."""

    def __init__(self, work, pki, registry):
        work.mkdir(parents=True)
        self.registries_conf = work / "registries.conf"
        self.registries_conf.write_text("")
        self.auth = work / "auth.json"
        self.auth.write_text('{"auths": {}}\n')
        self.docker = work / "docker"
        self.docker.mkdir()
        self.policy = work / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.certs_d = work / "certs.d"
        (self.certs_d / registry.host).mkdir(parents=True)
        shutil.copy(pki.ca, self.certs_d / registry.host / "ca.crt")
        self.ca_dir = pki.ca_dir

    def env(self, base=None, **extra):
        env = no_proxy(dict(base if base is not None else os.environ))
        for name in ("XDG_RUNTIME_DIR", "PODRUN_CERTS_D"):
            env.pop(name, None)
        env.update(
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            REGISTRY_AUTH_FILE=str(self.auth),
            DOCKER_CONFIG=str(self.docker),
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env


class Skopeo:
    def __init__(self, config):
        self.config = config
        self.env = config.env()

    def command(self, *args):
        return ["skopeo", "--policy", self.config.policy, "--registries-conf", self.config.registries_conf, *args]

    def run(self, *args, timeout=600):
        return run(self.command(*args), env=self.env, timeout=timeout)


def podrun_store_paths(image):
    """Where podrun's store keeps `image`'s blobs and unpacked layers."""
    blobs = [images.STORE / "blobs" / "sha256" / images.hex_of(d) for d in image.blobs()]
    layers = [images.LAYERS / "sha256" / images.hex_of(x.diff_id) for x in image.image.layers]
    return blobs + layers


class PodrunPull:
    """`podrun image pull`: downloads, checks and unpacks into podrun's
    store. Emptied of the image before each pull by `image rm` and `image
    prune`, and checked to hold none of its blobs or layers."""

    tool = "podrun image pull"

    def __init__(self, podrun, config):
        self.bin = podrun.bin
        self.env = config.env(PODRUN_CERTS_D=config.certs_d)

    def clean(self, image):
        quiet([self.bin, "image", "rm", image.ref], env=self.env)
        if quiet([self.bin, "image", "prune"], env=self.env) != 0:
            raise RuntimeError("podrun image prune failed")
        left = [p for p in podrun_store_paths(image) if p.exists()]
        if left:
            raise RuntimeError(f"podrun's store holds {left[0]} after image rm and image prune")

    def pull(self, image):
        run([self.bin, "image", "pull", image.ref], env=self.env, timeout=600)

    def check(self, image):
        missing = [p for p in podrun_store_paths(image) if not p.exists()]
        if missing:
            raise RuntimeError(f"podrun image pull left no {missing[0]}")


class SkopeoPull:
    """`skopeo copy docker://... oci:DIR:x`: downloads and checks the blobs
    into a fresh OCI layout; unpacks nothing."""

    tool = "skopeo copy to oci:"

    def __init__(self, skopeo, work):
        self.skopeo = skopeo
        self.work = work

    def dest(self, image):
        return self.work / f"skopeo-{image.slug}"

    def clean(self, image):
        shutil.rmtree(self.dest(image), ignore_errors=True)
        if self.dest(image).exists():
            raise RuntimeError(f"cannot remove {self.dest(image)}")

    def pull(self, image):
        self.skopeo.run("copy", "-q", "--src-cert-dir", self.skopeo.config.ca_dir, f"docker://{image.ref}",
                        f"oci:{self.dest(image)}:x")

    def check(self, image):
        blobs = self.dest(image) / "blobs" / "sha256"
        missing = [d for d in image.blobs() if not (blobs / images.hex_of(d)).exists()]
        if missing:
            raise RuntimeError(f"skopeo copy left no blob {missing[0]}")


class PodmanPull:
    """`podman pull`: downloads, checks and unpacks into podman's store
    (the machine's, as the start section's podman uses; the images have
    the bench's own names and are removed with `podman rmi`, nothing else
    of the store is touched). TLS through --cert-dir with the bench's CA."""

    tool = "podman pull"

    def __init__(self, config, env):
        self.config = config
        self.env = config.env(env)
        self.tls = ["--cert-dir", config.ca_dir]

    def podman(self, *args):
        return ["podman", *args]

    def clean(self, image):
        quiet(self.podman("rmi", "--force", image.ref), env=self.env)
        if quiet(self.podman("image", "exists", image.ref), env=self.env) == 0:
            raise RuntimeError(f"podman rmi left {image.ref}")

    def pull(self, image):
        run(self.podman("pull", "-q", "--signature-policy", self.config.policy, *self.tls, image.ref), env=self.env,
            timeout=600)

    def check(self, image):
        if quiet(self.podman("image", "exists", image.ref), env=self.env) != 0:
            raise RuntimeError(f"podman pull left no {image.ref}")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def try_pull(client, image):
    """One untimed pull (also warms the page cache and the binaries): the
    error, or None."""
    try:
        client.clean(image)
        client.pull(image)
        client.check(image)
        return None
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        try:
            client.clean(image)
        except (RuntimeError, OSError) as e:
            say(f"  clean-up of {client.tool} failed: {e}")


def bench_pull(podrun, work, podman_environment, runs, notes):
    """`podrun image pull` against `skopeo copy` to an OCI layout and
    `podman pull`, of a 5 MB and a 50 MB image from a docker-registry on
    127.0.0.1 that the bench starts (TLS from its own CA, anonymous). Each
    round pulls each image with each tool, the tools' order turning from
    round to round; before each pull (and after it) the tool's copy is
    removed, so that every pull downloads every blob. The registry, every
    copy and the section's files are gone when it ends, also on failure."""
    missing = sorted({package for tool, package in PULL_NEEDS if not shutil.which(tool)})
    if missing:
        why = f"pull not measured: {', '.join(missing)} not installed (scripts/setup installs them)"
        say(f"bench: {why}")
        notes.append(why)
        return None
    base = work / "pull"
    registry, clients, pulled = None, [], []
    try:
        pki = PullPki(base / "pki")
        registry = PullRegistry(base / "registry", pki).start()
        config = PullConfig(base / "client", pki, registry)
        skopeo = Skopeo(config)
        say(f"bench: pull: docker-registry on {registry.host}; writing and pushing the images")
        for label, size in PULL_IMAGES:
            image = PullImage(base, label, size)
            image.push(registry, skopeo)
            pulled.append(image)
        clients = [PodrunPull(podrun, config), SkopeoPull(skopeo, base)]
        if shutil.which("podman"):
            clients.append(PodmanPull(config, podman_environment))
        else:
            notes.append("pull: podman not measured: podman is not installed")
        usable = []
        for client in clients:
            error = try_pull(client, pulled[0])
            if error and isinstance(client, PodmanPull):
                # A podman whose --cert-dir does not work: no verification.
                client.tls = ["--tls-verify=false"]
                if try_pull(client, pulled[0]) is None:
                    notes.append(f"pull: podman pull --cert-dir failed ({error[-300:]}); podman pulled with --tls-verify=false")
                    error = None
            if error is None:
                usable.append(client)
            elif isinstance(client, PodmanPull):
                notes.append(f"pull: podman not measured: podman pull fails here: {error[-300:]}")
            else:
                raise RuntimeError(f"{client.tool} cannot pull here: {error}")
        notes.append(
            "pull: podrun image pull and podman pull unpack the layers into their stores as part of the pull; "
            "skopeo copy to oci: only downloads and checks the blobs (it unpacks nothing)"
        )
        say(f"bench: pull of {', '.join(i.label for i in pulled)}, {runs} rounds of {', '.join(c.tool for c in usable)}")
        rounds = pull_rounds(usable, pulled, runs)
        return {
            "registry": f"docker-registry on {LOOPBACK}, TLS (the bench's CA), anonymous",
            "images": {
                image.label: {
                    "layers": PULL_LAYERS,
                    "content_bytes": image.content_bytes,
                    "layer_bytes": image.layer_bytes,
                    "tools": rounds[image.label],
                }
                for image in pulled
            },
        }
    finally:
        for client in clients:
            for image in pulled:
                if image.ref is None:
                    continue
                try:
                    client.clean(image)
                except (RuntimeError, OSError) as e:
                    say(f"  clean-up of {client.tool} failed: {e}")
        if registry:
            registry.stop()
        shutil.rmtree(base, ignore_errors=True)


def pull_rounds(clients, pulled, runs):
    times = {image.label: {c.tool: {"wall": [], "cpu": [], "failures": []} for c in clients} for image in pulled}
    for i in range(runs):
        turn = i % len(clients)
        order = clients[turn:] + clients[:turn]
        for image in pulled:
            for client in order:
                t = times[image.label][client.tool]
                client.clean(image)
                try:
                    cpu0, t0 = children_cpu(), time.perf_counter()
                    client.pull(image)
                    t1, cpu1 = time.perf_counter(), children_cpu()
                    client.check(image)
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    t["failures"].append(str(e))
                    say(f"  {client.tool} of {image.label} failed in round {i + 1}: {e}")
                    continue
                finally:
                    client.clean(image)
                t["wall"].append(t1 - t0)
                t["cpu"].append(cpu1 - cpu0)
        say(
            f"  round {i + 1}/{runs}: "
            + "; ".join(
                f"{image.label}: "
                + ", ".join(
                    f"{c.tool} {times[image.label][c.tool]['wall'][-1] * 1000:.0f} ms"
                    for c in clients
                    if times[image.label][c.tool]["wall"]
                )
                for image in pulled
            )
        )
    return {
        label: {
            tool: {
                "pull_ms": summary(ms(t["wall"])),
                "cpu_ms": summary(ms(t["cpu"])),
                "failures": len(t["failures"]),
                "failure_messages": sorted(set(m[-500:] for m in t["failures"])),
            }
            for tool, t in tools.items()
        }
        for label, tools in times.items()
    }


# --- report ---------------------------------------------------------------


def ratio(a, b):
    if not a or not b or a.get("n", 0) == 0 or b.get("n", 0) == 0 or b["median"] == 0:
        return None
    return a["median"] / b["median"]


def verdicts(results):
    out = []
    start = results.get("start", {})
    pr = start.get(PODRUN, {})
    hostnet = start.get(PODRUN_HOSTNET, {})
    runc = start.get("runc", {})
    # runc's pods have no network but their loopback: podrun's pod without
    # one (hostNetwork) is the like for like.
    r = ratio(hostnet.get("start_ms"), runc.get("start_ms"))
    if r is not None:
        out.append(("pod start ≤ ¼ of runc's (no pod network)", f"{r:.2f}× runc", r <= TARGETS["start_vs_runc"]))
    r = ratio(pr.get("start_ms"), start.get("runc + bridge plugin", {}).get("start_ms"))
    if r is not None:
        out.append(("pod start with the network faster than runc + the bridge plugin by hand", f"{r:.2f}×", r < 1))
    for tool in ("podman kube play", "podman kube play, no init"):
        r = ratio(pr.get("start_ms"), start.get(tool, {}).get("start_ms"))
        if r is not None:
            out.append((f"pod start ≥ 10× faster than {tool}", f"{1 / r:.1f}× faster", r <= TARGETS["start_vs_podman"]))
    if hostnet.get("down_ms", {}).get("n"):
        d = hostnet["down_ms"]["median"]
        out.append(("down < 50 ms (no pod network)", f"{d:.1f} ms", d < TARGETS["down_ms"]))
    idle = results.get("idle")
    if idle:
        rss = idle["supervisor_rss_kib"]["max"]
        out.append(("idle supervisor < 4 MiB RSS", f"{rss} kB (max)", rss < TARGETS["idle_rss_kib"]))
        j = idle["probe_jitter_ms"]
        if j.get("n"):
            out.append(("probe jitter < 20 ms", f"p95 {j['p95']:.1f} ms, max {j['max']:.1f} ms", j["p95"] < TARGETS["jitter_ms"]))
    return out


def table(results):
    lines = []
    start = results.get("start")
    if start:
        def cells(key, tool, t):
            shown = []
            for ours in (PODRUN, PODRUN_HOSTNET):
                if ours not in start or tool in (PODRUN, PODRUN_HOSTNET):
                    shown.append("")
                    continue
                r = ratio(start[ours][key], t[key])
                shown.append(f"{r:.3f}" if r else "-")
            return " | ".join(shown)

        lines += [
            "| pod start (3 containers) | median [p25–p75, max, n] | podrun ÷ this | podrun, hostNetwork ÷ this | failed runs |",
            "|---|---|---|---|---|",
        ]
        for tool, t in start.items():
            lines.append(f"| {tool} | {fmt(t['start_ms'])} | {cells('start_ms', tool, t)} | {t['failures']} |")
        lines += [""]
        lines += ["| pod down | median [p25–p75, max, n] | podrun ÷ this | podrun, hostNetwork ÷ this |", "|---|---|---|---|"]
        for tool, t in start.items():
            lines.append(f"| {tool} | {fmt(t['down_ms'])} | {cells('down_ms', tool, t)} |")
    scale = results.get("scale")
    if scale:
        lines += [
            "",
            "| pods at once | all Ready | per pod | all down | supervisors' RSS at Ready | idle RSS | idle Pss | idle Pss per pod |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, s in scale.items():
            count = int(n)
            lines.append(
                f"| {n} | {fmt(s['all_ready_ms'], digits=0)} | {s['all_ready_ms']['median'] / count:.1f} ms | "
                f"{fmt(s['all_down_ms'], digits=0)} | "
                f"{s['supervisor_rss_kib_total_at_ready']['median']:.0f} kB | "
                f"{s['supervisor_rss_kib_total_idle']['median']:.0f} kB | "
                f"{s['supervisor_pss_kib_total_idle']['median']:.0f} kB | "
                f"{s['supervisor_pss_kib_total_idle']['median'] / count:.0f} kB |"
            )
    idle = results.get("idle")
    if idle:
        lines += [
            "",
            f"| idle supervisor over {idle['seconds']} s | |",
            "|---|---|",
            f"| RSS | {fmt(idle['supervisor_rss_kib'], 'kB', 0)} |",
            f"| Pss | {fmt(idle['supervisor_pss_kib'], 'kB', 0)} |",
            f"| CPU | {idle['supervisor_cpu_seconds']} s ({idle['supervisor_cpu_percent']} %) |",
            f"| 1 s exec probe: interval | {fmt(idle['probe_interval_ms'])} |",
            f"| 1 s exec probe: jitter \\|interval − 1 s\\| | {fmt(idle['probe_jitter_ms'])} (p95 {idle['probe_jitter_ms'].get('p95', 0):.1f}) |",
        ]
    plan = results.get("plan")
    if plan:
        lines += ["", "| command (hyperfine) | median [p25–p75, max, n] |", "|---|---|"]
        labels = {
            "validate_200": "validate, 200 containers",
            "plan_200": "plan -o json, 200 containers",
            "plan_3": "plan -o json, 3 containers (process start-up)",
        }
        for key, s in plan.items():
            lines.append(f"| {labels[key]} | {fmt(s)} |")
    pull = results.get("pull")
    if pull:
        lines += [
            "",
            "| image pull (3 gzip layers of random content, registry on 127.0.0.1) | median [p25–p75, max, n] "
            "| CPU (user + sys), median | podrun ÷ this | failed runs |",
            "|---|---|---|---|---|",
        ]
        for label, image in pull["images"].items():
            tools = image["tools"]
            ours = tools.get(PodrunPull.tool, {}).get("pull_ms")
            for tool, t in tools.items():
                r = ratio(ours, t["pull_ms"])
                shown = "" if tool == PodrunPull.tool else f"{r:.2f}" if r else "-"
                cpu = f"{t['cpu_ms']['median']:.0f} ms" if t["cpu_ms"].get("n") else "-"
                lines.append(f"| {label}: {tool} | {fmt(t['pull_ms'])} | {cpu} | {shown} | {t['failures']} |")
    v = verdicts(results)
    if v:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {what} | {value} | {'yes' if ok else 'NO'} |" for what, value, ok in v]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--podrun", required=True, type=Path)
    parser.add_argument(
        "--profile", default="unknown", help="the cargo profile --podrun was built with (scripts/bench: bench-release)"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a smoke test of the harness, not a measurement")
    parser.add_argument("--only", default="start,scale,idle,plan,pull")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    unknown = sections - {"start", "scale", "idle", "plan", "pull"}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    runs = 3 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="podrun-bench."))
    # The pods' bridges, addresses and rules (podrun's, runc's by hand and
    # podman's) go into a network namespace of the bench's own, standing
    # for the node; podrun's pods join its default network, whatever the
    # machine's /etc/cni/net.d holds.
    podrun_host.enter_node_namespace()
    (work / "net.d").mkdir()
    os.environ["PODRUN_CNI_CONF_DIR"] = str(work / "net.d")
    podrun = Podrun(args.podrun.resolve(), work)
    podman_used = False
    env = None
    try:
        results = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(podrun, args.profile),
            "runs": runs,
            "quick": args.quick,
            "rule": "only ratios taken in this one run count; absolute times are this machine's, today",
            "notes": [],
        }
        env = podman_env(work)
        say("bench: building and importing the test image")
        layout, rootfs = build_image(work, podrun)
        if "start" in sections:
            # From here the image may be in podman's store (a failed
            # podman_ready may have copied it there all the same).
            podman_used = shutil.which("podman") is not None
            podman_why = podman_ready(work, layout, env)
            pods = [
                PodrunPod(podrun, "bench-start"),
                PodrunPod(podrun, "bench-start-hostnet", host_network=True),
                RuncPod(work, rootfs),
                RuncRunPod(work, rootfs),
            ]
            if CNI_BRIDGE.exists():
                pods.append(RuncCniPod(work, rootfs))
            else:
                results["notes"].append(f"runc + bridge plugin not measured: no {CNI_BRIDGE} (containernetworking-plugins)")
            if podman_why is None:
                pods += [PodmanPod(work, env, with_init=True), PodmanPod(work, env, with_init=False)]
                results["notes"].append(
                    "podman 4.3 has no restartable init containers: its pod runs the sidecar as its first app container; "
                    "its containers get RLIMIT_NOFILE/NPROC it may set (containers.conf), as this host lacks CAP_SYS_RESOURCE"
                )
            else:
                results["notes"].append(f"podman not measured: {podman_why}")
            say(f"bench: pod start and down, {runs} rounds of {', '.join(p.tool for p in pods)}")
            results["start"] = bench_start_down(pods, runs)
        if "scale" in sections:
            counts = [1, 10] if args.quick else [1, 10, 100]
            say(f"bench: {', '.join(map(str, counts))} pods at once, {runs} runs each")
            results["scale"] = bench_scale(podrun, counts, runs)
        if "idle" in sections:
            seconds = 10 if args.quick else 60
            say(f"bench: an idle supervisor and a 1 s exec probe, {seconds} s")
            results["idle"] = bench_idle(podrun, work, seconds)
        if "plan" in sections:
            say("bench: validate and plan of a 200-container manifest (hyperfine)")
            results["plan"] = bench_plan(podrun, work, runs)
        if "pull" in sections:
            pull = bench_pull(podrun, work, env, runs, results["notes"])
            if pull is not None:
                results["pull"] = pull
    finally:
        if podman_used:
            quiet(["podman", "rmi", "--force", IMAGE], env=env)
        quiet([podrun.bin, "image", "rm", IMAGE])
        quiet([podrun.bin, "image", "prune"])
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    results["targets"] = [{"target": w, "measured": v, "met": ok} for w, v, ok in verdicts(results)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    m = results["machine"]
    print(f"podrun bench, {results['date']}: {m['cpu']}, {m['cpus']} cpus, kernel {m['kernel']}, cgroup {m['cgroup']}")
    print(f"{results['versions']}")
    for note in results["notes"]:
        print(f"note: {note}")
    print()
    print(table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
