#!/usr/bin/env python3
"""podrun's soak: many pods up and down, supervisors killed at random
moments, many pods stopped at once; after each, nothing of podrun's left.

Run by scripts/soak (which builds podrun and the test image); see its header
for the options. Standard library only.

What "nothing left" means, checked after every pod is removed (`podrun rm`):
- no mount point under the pod's directories or naming its uid (overlay
  roots, volumes, /dev/shm, pinned namespaces);
- no cgroup of the pod;
- no process in the pod's cgroup, in its network, IPC or UTS namespace, or
  holding a descriptor of them; its supervisor gone;
- no descriptor, in any process, of a file under the pod's directories;
- its state, data and log directories gone;
- nothing of it on the node's network: no veth, no address reservation, no
  firewall or NAT rule naming it or its address (the soak runs in a network
  namespace of its own standing for the node, on podrun's default network;
  the cycles' and kill trials' pods publish a hostPort);
- and, against a snapshot taken before the soak, nothing new under
  /run/podrun, /var/lib/podrun/pods, /var/log/podrun or podrun's cgroup,
  no new mount of podrun's, no podrun process but those of pods still up,
  no new veth or address reservation but those of pods still up.
A sentinel pod runs through the whole soak, with 1 s probes, and is exec'd
into and read from every cycle: its supervisor's descriptors and RSS at the
end are those of its start.

At the end, whatever happened (a step that failed, an error of the soak's
own, an interrupt), every pod named soak-* is removed, then the image and
the work directory; the summary is printed (and written) all the same, and
the exit status is non-zero.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The helpers shared with runtime-tests (standard library only).
sys.path.insert(0, str(ROOT / "runtime-tests"))
import podrun_host  # noqa: E402
from podrun_host import RUN_ROOT, is_zombie, links, mount_points, proc_stat, ready, reservations, start_time  # noqa: E402

IMAGE = "podrun.local/podrun-soak/busybox:1.35"
# Every pod the soak makes is named so: at the end, whatever happened, what
# is left of them is removed.
PREFIX = "soak-"
DATA_ROOT = Path("/var/lib/podrun/pods")
LOG_ROOT = Path("/var/log/podrun")
# The hostPort the cycles' and kill trials' pods publish, one pod at a time.
HOST_PORT = 18500
# busybox's httpd on every address of the pod, for the sidecar's HTTP
# probes (which call the pod's IP, as the kubelet's do).
HTTPD = "mkdir -p /www && echo ok > /www/healthz && trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"


def say(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def pod_manifest(name, init_script="true", app_term="exit 0", grace=2, host_port=None):
    """The soak's pod: a regular init container, a sidecar serving HTTP with
    startup (httpGet) and readiness (tcpSocket) probes, an app with exec
    liveness and readiness probes, sharing an emptyDir; the app publishes
    `host_port` when given."""

    def c(cname, script, **extra):
        d = {
            "name": cname,
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
        }
        d.update(extra)
        return d

    every_second = {"periodSeconds": 1, "timeoutSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": grace,
            "initContainers": [
                c("init", init_script + " && date > /shared/initialized"),
                c(
                    "sidecar",
                    HTTPD,
                    restartPolicy="Always",
                    startupProbe={"httpGet": {"path": "/healthz", "port": 8080}, "failureThreshold": 30, **every_second},
                    readinessProbe={"tcpSocket": {"port": 8080}, **every_second},
                ),
            ],
            "containers": [
                c(
                    "app",
                    f"trap '{app_term}' TERM; sleep 3600 & wait",
                    livenessProbe={"exec": {"command": ["test", "-f", "/shared/initialized"]}, **every_second},
                    readinessProbe={"exec": {"command": ["true"]}, **every_second},
                    **({"ports": [{"containerPort": 8080, "hostPort": host_port, "protocol": "TCP"}]} if host_port else {}),
                )
            ],
            "volumes": [{"name": "shared", "emptyDir": {}}],
        },
    }


class Podrun:
    def __init__(self, binary, work):
        self.bin = str(binary)
        self.work = work

    def __call__(self, *args, timeout=120):
        return subprocess.run(
            [self.bin, *map(str, args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def must(self, *args, timeout=120):
        r = self(*args, timeout=timeout)
        if r.returncode != 0:
            raise Failure(f"podrun {' '.join(map(str, args))} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def write(self, pod):
        path = self.work / f"{pod['metadata']['name']}.json"
        path.write_text(json.dumps(pod))
        return path


def state(name):
    """The pod's state, or None while it has none."""
    try:
        return podrun_host.state(name)
    except (OSError, ValueError):
        return None


def wait_for(predicate, what, timeout=60.0, step=0.01):
    return podrun_host.wait_for(predicate, what, timeout, step, error=Failure)


# --- what the kernel holds ------------------------------------------------


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def cgroup_root():
    """Where podrun makes its pods' cgroups: the cgroup2 mount's podrun/."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return Path(fields[4]) / "podrun"
    raise Failure("no cgroup2 mount")


class Pod:
    """What the kernel should hold for one pod while it runs, to look for
    after it is gone."""

    def __init__(self, name, s):
        self.name = name
        self.uid = s["uid"]
        self.cgroup = s["cgroup"]
        self.dirs = [s["dirs"]["run"], s["dirs"]["data"], s["dirs"]["logs"]]
        self.supervisor = (s["supervisorPid"], s.get("supervisorStart"))
        self.namespaces = set()
        self.record = None

    def learn_namespaces(self):
        """The pod's pinned namespaces, from its pins, and its network
        record (what its network's ADD was asked and answered)."""
        self.record = podrun_host.network_record(self.name)
        for kind in ("net", "ipc", "uts"):
            pin = Path(self.dirs[0]) / "ns" / kind
            try:
                st = os.stat(pin)
            except OSError:
                continue
            self.namespaces.add(f"{kind}:[{st.st_ino}]")


def leftovers(pod, kept_state=False):
    """Everything of `pod` still there. With `kept_state`, its state
    directory (the state file, events and nothing else) and logs may stay,
    as `down` keeps them for `status` and `logs`."""
    found = []
    run_dir, data_dir, log_dir = pod.dirs
    for m in mount_points():
        if m.startswith(run_dir + "/") or m == run_dir or m.startswith(data_dir) or pod.uid in m:
            found.append(f"mount {m}")
    if Path(pod.cgroup).exists():
        found.append(f"cgroup {pod.cgroup}")
    sup_pid, sup_start = pod.supervisor
    if not is_zombie(sup_pid) and (sup_start is None or start_time(sup_pid) == sup_start):
        found.append(f"supervisor {sup_pid}")
    prefixes = tuple(d + "/" for d in pod.dirs)
    for pid in pids():
        if is_zombie(pid):
            continue
        cg = read(f"/proc/{pid}/cgroup")
        if pod.uid in cg:
            found.append(f"process {pid} in the pod's cgroup")
            continue
        for kind in ("net", "ipc", "uts"):
            if readlink(f"/proc/{pid}/ns/{kind}") in pod.namespaces:
                found.append(f"process {pid} in the pod's {kind} namespace")
        for fd in listdir(f"/proc/{pid}/fd"):
            target = readlink(f"/proc/{pid}/fd/{fd}")
            if target is None:
                continue
            if target in pod.namespaces:
                found.append(f"descriptor {fd} of process {pid} on the pod's namespace {target}")
            elif target.startswith(prefixes) or target in pod.dirs:
                found.append(f"descriptor {fd} of process {pid} on {target}")
    if kept_state:
        extra = set(listdir(run_dir)) - {"state.json", "events.jsonl", "stop-grace"}
        found += [f"{run_dir}/{e}" for e in sorted(extra)]
    else:
        if Path(run_dir).exists():
            found.append(run_dir)
        if Path(log_dir).exists():
            found.append(log_dir)
    if Path(data_dir).exists():
        found.append(data_dir)
    found += podrun_host.network_leftovers(pod.record)
    return found


def describe(pid):
    """A podrun process, as ps would show it."""
    stat = proc_stat(pid) or []
    command = read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
    state, ppid = (stat[0], stat[1]) if len(stat) > 1 else ("?", "?")
    return f"podrun process {pid} (state {state}, parent {ppid}): {command}"


class Snapshot:
    """podrun's footprint on the machine, to compare with later."""

    def __init__(self, binary, cgroups):
        self.binary = binary
        self.cgroups = cgroups
        self.runs = set(listdir(RUN_ROOT))
        self.data = set(listdir(DATA_ROOT))
        self.logs = set(listdir(LOG_ROOT))
        self.pod_cgroups = set(d for d in listdir(cgroups) if (cgroups / d).is_dir())
        self.mounts = set(m for m in mount_points() if "podrun" in m)
        self.processes = set(self.podrun_processes())
        self.links = links()
        self.reservations = set(reservations())

    def podrun_processes(self):
        return [pid for pid in pids() if readlink(f"/proc/{pid}/exe") == self.binary and not is_zombie(pid)]

    def new_since(self, allowed_pods=()):
        """What is there now and was not in the snapshot, but for the
        pods in `allowed_pods` (names → Pod)."""
        allowed = {p.name for p in allowed_pods}
        uids = {p.uid for p in allowed_pods}
        found = []
        # The node's one hostPort claim lock stays, as the bridge does.
        found += [f"{RUN_ROOT}/{e}" for e in set(listdir(RUN_ROOT)) - self.runs - allowed - {".hostports.lock"}]
        found += [f"{DATA_ROOT}/{e}" for e in set(listdir(DATA_ROOT)) - self.data - uids]
        found += [
            f"{LOG_ROOT}/{e}"
            for e in set(listdir(LOG_ROOT)) - self.logs
            if e.rsplit("_", 1)[-1] not in uids
        ]
        found += [
            f"cgroup {self.cgroups / d}"
            for d in set(d for d in listdir(self.cgroups) if (self.cgroups / d).is_dir()) - self.pod_cgroups - uids
        ]
        found += [
            f"mount {m}"
            for m in set(m for m in mount_points() if "podrun" in m) - self.mounts
            if not any(u in m for u in uids) and not any(m.startswith(f"{RUN_ROOT}/{a}/") for a in allowed)
        ]
        supervisors = {p.supervisor[0] for p in allowed_pods}
        found += [describe(pid) for pid in set(self.podrun_processes()) - self.processes - supervisors]
        # The default network's bridge stays, as containerd's cni0 does.
        theirs = {"podrun0"} | {i for p in allowed_pods for i in podrun_host.host_interfaces(p.record or {})}
        found += [f"link {i}" for i in sorted(links() - self.links - theirs)]
        found += [
            f"address reservation {f} (container {cid})"
            for f, cid in sorted(reservations().items())
            if f not in self.reservations and cid not in uids
        ]
        return found


# --- the soak -------------------------------------------------------------


class Soak:
    def __init__(self, podrun, rng):
        self.podrun = podrun
        self.rng = rng
        self.sentinel = None
        self.snapshot = None
        self.problems = []
        self.counts = {}

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def check(self, where, look):
        """Records what `look()` finds (or `look`, a list of problems). A process still in its last moments
        of exit (SIGKILLed by cgroup.kill, not yet a zombie) can show for a
        few milliseconds: what is gone when looked at again within a second
        was not left over, and is counted apart."""
        if not callable(look):
            found, look = look, None
        else:
            found = look()
        deadline = time.monotonic() + 1.0
        while found and look and time.monotonic() < deadline:
            time.sleep(0.1)
            again = look()
            if not again:
                self.count("transient (gone within 1 s)")
            found = again
        if found:
            self.problems.append((where, found))
            say(f"  LEFT OVER after {where}: {'; '.join(found[:8])}{' ...' if len(found) > 8 else ''}")

    def alive(self):
        return [self.sentinel] if self.sentinel else []

    def remove(self, name, where):
        r = self.podrun("rm", "--force", name)
        if r.returncode != 0 and "no pod named" not in r.stderr:
            self.check(where, [f"podrun rm --force {name} exited {r.returncode}: {r.stderr.strip()}"])

    # the sentinel pod: up through the whole soak

    def start_sentinel(self):
        name = f"{PREFIX}sentinel"
        self.podrun("rm", "--force", name)
        self.podrun.must("up", "-d", self.podrun.write(pod_manifest(name)))
        wait_for(lambda: ready(name), "the sentinel to be Ready")
        self.sentinel = Pod(name, state(name))
        self.sentinel.learn_namespaces()
        self.poke_sentinel()
        time.sleep(2)
        self.sentinel_start = self.sentinel_footprint()

    def poke_sentinel(self):
        """An exec and a log read through the sentinel's socket."""
        self.podrun.must("exec", self.sentinel.name, "-c", "app", "--", "sh", "-c", "echo poke")
        self.podrun.must("logs", self.sentinel.name, "sidecar", "--tail", "1")

    def sentinel_footprint(self):
        pid = self.sentinel.supervisor[0]
        fds = sorted(listdir(f"/proc/{pid}/fd"), key=int)
        rss = int(next(line for line in read(f"/proc/{pid}/status").splitlines() if line.startswith("VmRSS:")).split()[1])
        return {"fds": len(fds), "fd_list": fds, "rss_kib": rss}

    def stop_sentinel(self):
        # Quiet for the supervisor's code release (1 s) and a probe period.
        time.sleep(3)
        end = self.sentinel_footprint()
        s = state(self.sentinel.name)
        restarts = {n: c["restartCount"] for n, c in s["containers"].items()}
        self.podrun.must("down", self.sentinel.name)
        self.check("the sentinel's down", lambda: leftovers(self.sentinel, kept_state=True))
        self.podrun.must("rm", self.sentinel.name)
        self.check("the sentinel's rm", lambda: leftovers(self.sentinel))
        pod, self.sentinel = self.sentinel, None
        start = self.sentinel_start
        if end["fds"] != start["fds"]:
            self.check(
                "the sentinel's life",
                [f"its supervisor had {start['fds']} descriptors {start['fd_list']} and ends with {end['fds']} {end['fd_list']}"],
            )
        if any(restarts.values()):
            self.check("the sentinel's life", [f"containers restarted: {restarts}"])
        del pod
        return {"start": start, "end": end, "restarts": restarts}

    # up / down cycles

    def cycle(self, i):
        name = f"{PREFIX}cycle-{i % 10}"
        file = self.podrun.write(pod_manifest(name, host_port=HOST_PORT))
        self.podrun.must("up", "-d", file)
        pod = Pod(name, state(name))
        pod.learn_namespaces()
        wait_for(lambda: ready(name), f"{name} to be Ready")
        s = state(name)
        for c in ("sidecar", "app"):
            pid = s["containers"][c]["pid"]
            fds = listdir(f"/proc/{pid}/fd")
            if fds != ["0", "1", "2"]:
                self.check(f"cycle {i}", [f"container {c} has descriptors {fds}: {[readlink(f'/proc/{pid}/fd/{fd}') for fd in fds]}"])
        if self.sentinel:
            self.poke_sentinel()
        self.podrun.must("down", name)
        self.check(f"cycle {i}'s down", lambda: leftovers(pod, kept_state=True))
        self.podrun.must("rm", name)
        self.check(f"cycle {i}'s rm", lambda: leftovers(pod))
        self.check(f"cycle {i}", lambda: self.snapshot.new_since(self.alive()))
        self.count("cycles")

    # a supervisor killed at a random moment

    def kill_trial(self, i, phase):
        name = f"{PREFIX}kill-{i % 10}"
        if phase == "init":
            # An init container that takes a while: the kill falls before
            # the state exists, in the sandbox's making, or during init.
            pod = pod_manifest(name, init_script="sleep 0.3", host_port=HOST_PORT)
        elif phase == "terminating":
            # Apps that take a while to stop: the kill falls in the middle.
            pod = pod_manifest(name, app_term="sleep 0.4; exit 0", host_port=HOST_PORT)
        else:
            pod = pod_manifest(name, host_port=HOST_PORT)
        file = self.podrun.write(pod)
        # `up` in the foreground is the supervisor itself.
        proc = subprocess.Popen(
            [self.podrun.bin, "up", str(file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        known = None
        try:
            if phase == "init":
                time.sleep(self.rng.uniform(0.0, 0.5))
            else:
                wait_for(lambda: ready(name), f"{name} to be Ready")
                if phase == "running":
                    time.sleep(self.rng.uniform(0.0, 1.0))
                else:
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(self.rng.uniform(0.0, 0.5))
            s = state(name)
            if s:
                known = Pod(name, s)
                known.learn_namespaces()
            proc.kill()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        s = state(name)
        if s and not known:
            known = Pod(name, s)
            known.learn_namespaces()
        down = self.podrun("down", name)
        if known is None:
            # Killed before the pod had state: `down` knows no such pod (or
            # removes the name its supervisor had claimed), and there must
            # be nothing of it at all.
            if down.returncode not in (0, 2):
                self.check(f"kill trial {i} ({phase})", [f"podrun down exited {down.returncode}: {down.stderr.strip()}"])
            self.count(f"kills during {phase} before the pod had state")
        elif down.returncode != 0:
            self.check(f"kill trial {i} ({phase})", [f"podrun down exited {down.returncode}: {down.stderr.strip()}"])
        if known:
            self.check(f"kill trial {i} ({phase})'s down", lambda: leftovers(known, kept_state=True))
        self.remove(name, f"kill trial {i} ({phase})")
        if known:
            self.check(f"kill trial {i} ({phase})'s rm", lambda: leftovers(known))
        self.check(f"kill trial {i} ({phase})", lambda: self.snapshot.new_since(self.alive()))
        self.count(f"kills during {phase}")

    # many pods stopped at once

    def concurrent(self, n):
        names = [f"{PREFIX}many-{i}" for i in range(n)]
        for name in names:
            self.podrun("rm", "--force", name)
        files = [self.podrun.write(pod_manifest(name)) for name in names]
        t0 = time.monotonic()
        procs = [
            subprocess.Popen([self.podrun.bin, "up", "-d", str(f)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for f in files
        ]
        failed = [(name, p.communicate()[1].decode().strip()) for name, p in zip(names, procs) if p.wait() != 0]
        if failed:
            self.check(f"{n} pods up at once", [f"{name}: {err}" for name, err in failed])
        up = [name for name in names if state(name)]
        wait_for(lambda: all(ready(name) for name in up), f"{len(up)} pods to be Ready", timeout=300, step=0.05)
        ready_s = time.monotonic() - t0
        pods = [Pod(name, state(name)) for name in up]
        for p in pods:
            p.learn_namespaces()
        t1 = time.monotonic()
        downs = [
            subprocess.Popen([self.podrun.bin, "down", p.name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for p in pods
        ]
        failed = [(p.name, d.communicate()[1].decode().strip()) for p, d in zip(pods, downs) if d.wait() != 0]
        down_s = time.monotonic() - t1
        if failed:
            self.check(f"{n} pods down at once", [f"{name}: {err}" for name, err in failed])
        for p in pods:
            self.check(f"{p.name}'s down (of {n} at once)", lambda: leftovers(p, kept_state=True))
        for p in pods:
            self.remove(p.name, f"{n} pods at once")
            self.check(f"{p.name}'s rm (of {n} at once)", lambda: leftovers(p))
        self.check(f"{n} pods at once", lambda: self.snapshot.new_since(self.alive()))
        self.count(f"pods stopped at once ({n})")
        return {"pods": n, "all_ready_s": round(ready_s, 2), "all_down_s": round(down_s, 2)}


def import_image(podrun, work):
    layout = work / "image"
    subprocess.run(
        [str(ROOT / "scripts" / "build-test-image"), "--tag", IMAGE, str(layout)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    podrun.must("image", "import", f"oci:{layout}", IMAGE)


def clean_up(podrun, work):
    """Removes every pod the soak made (the one a failed step left up, a
    claimed name without state), then the image (a pod that uses it would
    keep it), then the work directory. Each step is tried whatever the one
    before did; what fails is said, as it is of no pod being checked."""
    for name in listdir(RUN_ROOT):
        if not name.startswith(PREFIX):
            continue
        try:
            r = podrun("rm", "--force", name)
        except (OSError, subprocess.SubprocessError) as e:
            say(f"soak: clean-up: podrun rm --force {name}: {e}")
            continue
        if r.returncode != 0 and "no pod named" not in r.stderr:
            say(f"soak: clean-up: podrun rm --force {name} exited {r.returncode}: {r.stderr.strip()}")
    for args in (("image", "rm", IMAGE), ("image", "prune")):
        try:
            podrun(*args)
        except (OSError, subprocess.SubprocessError) as e:
            say(f"soak: clean-up: podrun {' '.join(args)}: {e}")
    shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--podrun", required=True, type=Path)
    parser.add_argument("--short", action="store_true", help="the CI form: 20 cycles, 12 kills, 10 pods at once")
    parser.add_argument("--cycles", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--concurrent", type=int)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args()
    cycles = args.cycles if args.cycles is not None else (20 if args.short else 1000)
    kills = args.kills if args.kills is not None else (12 if args.short else 100)
    many = args.concurrent if args.concurrent is not None else (10 if args.short else 100)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    if os.geteuid() != 0:
        sys.exit("soak: run as root")
    # The pods' bridge, addresses and rules go into a network namespace of
    # the soak's own, standing for the node; podrun's default network,
    # whatever the machine's /etc/cni/net.d holds.
    podrun_host.enter_node_namespace()
    conf_dir = tempfile.mkdtemp(prefix="podrun-soak-net.d-")
    os.environ["PODRUN_CNI_CONF_DIR"] = conf_dir

    work = Path(tempfile.mkdtemp(prefix="podrun-soak."))
    binary = str(args.podrun.resolve())
    podrun = Podrun(binary, work)
    soak = Soak(podrun, random.Random(seed))
    say(f"soak: seed {seed}; {cycles} up/down cycles, {kills} supervisors killed, {many} pods at once")
    started = time.monotonic()
    summary = {"seed": seed, "cycles": cycles, "kills": kills, "concurrent": many}
    try:
        import_image(podrun, work)
        soak.snapshot = Snapshot(binary, cgroup_root())
        soak.start_sentinel()
        t = time.monotonic()
        for i in range(cycles):
            soak.cycle(i)
            if (i + 1) % 50 == 0 or i + 1 == cycles:
                say(f"  {i + 1}/{cycles} cycles, {time.monotonic() - t:.0f}s")
        summary["cycles_s"] = round(time.monotonic() - t, 1)
        phases = ["init", "running", "terminating"]
        t = time.monotonic()
        for i in range(kills):
            soak.kill_trial(i, phases[i % len(phases)])
            if (i + 1) % 25 == 0 or i + 1 == kills:
                say(f"  {i + 1}/{kills} kill trials, {time.monotonic() - t:.0f}s")
        summary["kills_s"] = round(time.monotonic() - t, 1)
        if many:
            summary["at_once"] = soak.concurrent(many)
        summary["sentinel"] = soak.stop_sentinel()
        soak.check("the soak", lambda: soak.snapshot.new_since())
    except Failure as e:
        soak.problems.append(("a step", [str(e)]))
        summary["error"] = str(e)
        say(f"soak: FAILED: {e}")
    except (Exception, KeyboardInterrupt) as e:
        # Not a finding of the soak but a fault of it (or of the machine):
        # still a failure, with its summary.
        say(traceback.format_exc().rstrip())
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        soak.problems.append(("the soak itself", [what]))
        summary["error"] = what
        say(f"soak: FAILED: {what}")
    finally:
        clean_up(podrun, work)
        shutil.rmtree(conf_dir, ignore_errors=True)
    summary["counts"] = soak.counts
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["problems"] = [{"where": w, "found": f} for w, f in soak.problems]
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "problems"}, indent=1))
    if soak.problems:
        print(f"soak: {len(soak.problems)} problems; the first: {soak.problems[0]}")
        sys.exit(1)
    print(f"soak: passed with nothing left over ({summary['seconds']}s)")


if __name__ == "__main__":
    main()
