"""`podrun info` against the machine's own facts, read independently here.

Which tests apply depends on where they run:
  - everywhere: the reported mount is a cgroup2 mount, its controllers are the
    kernel's, `hybrid` matches the mounts, `limitsEnforced` matches the
    controllers, and the node's memory, cpus and huge page sizes;
  - inside scripts/vm-test's VM (PODRUN_IN_VM=1): full cgroup v2 with limits;
  - on a hybrid host outside the VM: limits reported as not enforced.
A test that does not apply skips with its reason (shown by -ra).
"""

import json
import os
from pathlib import Path

import pytest

from conftest import IN_VM
from pods import unoctal

LIMIT_CONTROLLERS = {"cpu", "memory", "pids"}


def mounts():
    """(mount point, fstype, options) of every line of /proc/self/mounts."""
    result = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            result.append((unoctal(fields[1]), fields[2], fields[3]))
    return result


def cgroup2_mounts():
    return [point for point, fstype, _ in mounts() if fstype == "cgroup2"]


def cgroup1_mounts():
    return [point for point, fstype, _ in mounts() if fstype == "cgroup"]


def kernel_controllers(mount: str):
    return Path(mount, "cgroup.controllers").read_text().split()


def cpu_list_count(text: str) -> int:
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


@pytest.fixture(scope="module")
def info(podrun):
    result = podrun("info", "-o", "json")
    assert result.returncode == 0, f"podrun info failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_info_shape(info):
    assert set(info) == {"cgroup", "node", "network"}
    c = info["cgroup"]
    assert isinstance(c["mount"], str)
    assert isinstance(c["hybrid"], bool)
    assert isinstance(c["controllers"], list)
    assert all(isinstance(x, str) for x in c["controllers"])
    assert isinstance(c["limitsEnforced"], bool)
    assert set(c) - {"reason"} == {"mount", "hybrid", "controllers", "limitsEnforced"}
    # reason is there exactly when limits are not enforced
    assert ("reason" in c) == (not c["limitsEnforced"])
    if "reason" in c:
        assert isinstance(c["reason"], str) and c["reason"]
    n = info["node"]
    assert set(n) == {"memoryBytes", "cpus", "hugepageSizes"}
    assert isinstance(n["memoryBytes"], int) and n["memoryBytes"] > 0
    assert isinstance(n["cpus"], int) and n["cpus"] > 0
    assert all(isinstance(s, int) and s > 0 for s in n["hugepageSizes"])
    net = info["network"]
    assert {"confDir", "binDirs", "plugins", "nodeIps"} <= set(net)
    assert set(net) - {"name", "source", "subnet", "error"} == {"confDir", "binDirs", "plugins", "nodeIps"}
    assert isinstance(net["plugins"], list) and isinstance(net["nodeIps"], list) and net["nodeIps"]


def test_mount_is_cgroup2_with_the_kernels_controllers(info):
    c = info["cgroup"]
    found = cgroup2_mounts()
    assert found, "this machine has no cgroup2 mount at all"
    assert c["mount"] in found, f"{c['mount']} is not a cgroup2 mount; these are: {found}"
    assert c["controllers"] == kernel_controllers(c["mount"])


def test_hybrid_flag_matches_the_mounts(info):
    v1 = cgroup1_mounts()
    assert info["cgroup"]["hybrid"] == bool(v1), f"cgroup v1 mounts: {v1}"


def test_limits_enforced_exactly_with_cpu_memory_pids(info):
    c = info["cgroup"]
    missing = LIMIT_CONTROLLERS - set(c["controllers"])
    assert c["limitsEnforced"] == (not missing)
    for name in missing:
        assert name in c["reason"], f"reason does not name {name}: {c['reason']!r}"


def test_vm_has_full_cgroup_v2(info):
    if not IN_VM:
        pytest.skip("needs the VM (PODRUN_IN_VM=1): scripts/vm-test runs this")
    kernel = kernel_controllers("/sys/fs/cgroup")
    assert LIMIT_CONTROLLERS <= set(kernel), f"the VM's kernel offers only {kernel}"
    assert not cgroup1_mounts(), "the VM was booted without cgroup_no_v1=all"
    c = info["cgroup"]
    assert c["mount"] == "/sys/fs/cgroup"
    assert c["hybrid"] is False
    assert LIMIT_CONTROLLERS <= set(c["controllers"])
    assert c["limitsEnforced"] is True
    assert "reason" not in c


def test_hybrid_host_reports_limits_not_enforced(info):
    if IN_VM:
        pytest.skip("the VM is a unified cgroup v2 host, not a hybrid one")
    if not cgroup1_mounts():
        pytest.skip("this host is not hybrid: it has no cgroup v1 mounts")
    c = info["cgroup"]
    assert c["mount"] == "/sys/fs/cgroup/unified"
    assert c["hybrid"] is True
    assert not LIMIT_CONTROLLERS & set(c["controllers"]), c["controllers"]
    assert c["limitsEnforced"] is False
    for name in sorted(LIMIT_CONTROLLERS):
        assert name in c["reason"], f"reason does not name {name}: {c['reason']!r}"


def test_node_memory_is_memtotal(info):
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            value, unit = line.split()[1:3]
            assert unit == "kB"
            assert info["node"]["memoryBytes"] == int(value) * 1024
            return
    pytest.fail("no MemTotal in /proc/meminfo")


def test_node_cpus_are_the_online_cpus(info):
    online = cpu_list_count(Path("/sys/devices/system/cpu/online").read_text())
    assert info["node"]["cpus"] == online
    assert info["node"]["cpus"] == os.cpu_count()


def test_node_hugepage_sizes(info):
    sizes = []
    root = Path("/sys/kernel/mm/hugepages")
    if root.is_dir():
        for entry in root.iterdir():
            name = entry.name
            if name.startswith("hugepages-") and name.endswith("kB"):
                sizes.append(int(name[len("hugepages-") : -len("kB")]) * 1024)
    assert info["node"]["hugepageSizes"] == sorted(sizes)
