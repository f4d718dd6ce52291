"""A pod's state and what the host holds, read the same way by the runtime
tests (through pods.py), the soak (soak/soak.py) and the bench
(bench/bench.py).

Standard library only, and no pytest: scripts/soak and scripts/bench run
with the system's python3, which need not have pytest (pods.py imports
conftest.py, and so pytest). They import this module by putting
runtime-tests/ first on sys.path.
"""

import ctypes
import json
import os
import subprocess
import time
from pathlib import Path

RUN_ROOT = Path("/run/podrun")
CLONE_NEWNET = 0x40000000
# The node's own address in its namespace: TEST-NET-1 (RFC 5737), on one
# end of a veth pair whose both ends stay in the namespace, holding the
# default route, so that nothing sent "outside" leaves it. (A veth, not a
# dummy: not every kernel has the dummy driver.)
NODE_IP = "192.0.2.10"


def enter_node_namespace():
    """Moves this process (and all it starts from now on) into a new network
    namespace standing for the node: loopback up, and a `node0` with
    NODE_IP and the default route (the kubelet's node IP is its default
    route's). The namespace ends with the process. Returns the node's IPs.
    (`ip netns exec` would remount /sys and hide the cgroup mount; this
    does not touch the mounts.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0-end"],
        ["ip", "addr", "add", f"{NODE_IP}/24", "dev", "node0"],
        ["ip", "link", "set", "node0-end", "up"],
        ["ip", "link", "set", "node0", "up"],
        ["ip", "route", "add", "default", "dev", "node0"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [NODE_IP]


def network_record(name):
    """The pod's CNI record (what its network's ADD was asked and
    answered), /run/podrun/<name>/network/record.json; None without one."""
    try:
        return json.loads((RUN_ROOT / name / "network" / "record.json").read_text())
    except (OSError, ValueError):
        return None


def pod_ips(record):
    """The pod's addresses in a CNI record's result."""
    result = (record or {}).get("result") or {}
    return [ip["address"].split("/")[0] for ip in result.get("ips", [])
            if "address" in ip]


def host_interfaces(record):
    """The interfaces the record's result puts on the node (a veth's host
    end), not the bridge, and not those inside the pod."""
    result = (record or {}).get("result") or {}
    bridges = {p.get("bridge") for p in record["network"]["plugins"] if p.get("bridge")}
    return [i["name"] for i in result.get("interfaces", [])
            if not i.get("sandbox") and i["name"] not in bridges]


def links():
    """The names of this namespace's network interfaces."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


IPAM = Path("/var/lib/cni/networks")


def reservations():
    """host-local's address reservations: file → the container id in it."""
    found = {}
    for f in IPAM.rglob("*") if IPAM.exists() else []:
        if f.is_file() and not f.name.startswith(("lock", "last_reserved_ip")):
            try:
                found[str(f)] = f.read_text().split("\n")[0].strip()
            except OSError:
                continue
    return found


def firewall_rules():
    """iptables-save and ip6tables-save of this namespace, one rule a line."""
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        out = subprocess.run([tool], capture_output=True, text=True)
        lines += [l for l in out.stdout.splitlines() if l.startswith("-A ")]
    return lines


def network_leftovers(record):
    """What the pod of `record` still holds on the node's network: its
    veth, its address reservations, and rules naming it or its address."""
    if not record:
        return []
    found = []
    names = links()
    found += [f"link {i}" for i in host_interfaces(record) if i in names]
    ipam = IPAM / record["network"]["name"]
    ips = pod_ips(record)
    found += [f"IP reservation {ipam / ip}" for ip in ips if (ipam / ip).exists()]
    uid = record["containerId"]
    for rule in firewall_rules():
        if uid in rule or any(f"{ip}/" in rule for ip in ips):
            found.append(f"rule {rule}")
    return found


def state(name):
    """The pod's state file, /run/podrun/<name>/state.json. OSError when the
    pod has none (yet), ValueError while it is half written."""
    return json.loads((RUN_ROOT / name / "state.json").read_text())


def ready(name):
    """The pod has state and its Ready condition is True."""
    try:
        s = state(name)
    except (OSError, ValueError):
        return False
    conditions = s.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_for(predicate, what, timeout=30.0, step=0.05, error=AssertionError):
    """`predicate()`'s first true value, asked every `step` seconds; after
    `timeout` seconds, `error` (the caller's kind of failure) is raised."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise error(f"timed out after {timeout:g}s waiting for {what}")


def mount_points():
    """This process's mount points (mountinfo's fifth field; a space
    unescaped)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.append(line.split()[4].replace("\\040", " "))
    return points


def proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name, the first
    being the state (field 3 of proc(5)); None once the process is gone.
    The command name may hold spaces and parentheses: fields count from the
    last ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def is_zombie(pid):
    """The process is a zombie, or gone."""
    stat = proc_stat(pid)
    return not stat or stat[0] == "Z"


def start_time(pid):
    """The process's start time (field 22 of proc(5)); None once it is gone."""
    stat = proc_stat(pid)
    return int(stat[19]) if stat else None
