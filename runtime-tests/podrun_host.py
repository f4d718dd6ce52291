"""A pod's state and what the host holds, read the same way by the runtime
tests (through pods.py), the soak (soak/soak.py) and the bench
(bench/bench.py).

Standard library only, and no pytest: scripts/soak and scripts/bench run
with the system's python3, which need not have pytest (pods.py imports
conftest.py, and so pytest). They import this module by putting
runtime-tests/ first on sys.path.
"""

import json
import time
from pathlib import Path

RUN_ROOT = Path("/run/podrun")


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
