"""Resource limits, which only a host with the cpu, memory and pids
controllers in its cgroup2 tree can enforce: these run in scripts/vm-test's
VM (PODRUN_IN_VM=1) and skip, with the reason, on the hybrid host (where
test_pod_sandbox.py checks that podrun says so instead).
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import IN_VM, podrun_bin
from pods import (
    container,
    container_status,
    manifest,
    output_of,
    running,
    start,
    state,
    status,
    stop,
    up,
    wait_for,
    write,
)

pytestmark = pytest.mark.skipif(
    not IN_VM, reason="needs the cpu, memory and pids controllers: runs in scripts/vm-test"
)



def test_over_its_memory_limit_a_container_is_oom_killed(tmp_path, name):
    # tail keeps the last ten lines of a stream without newlines: all of it.
    hog = container(
        "hog", "tail /dev/zero", resources={"limits": {"memory": "32Mi", "cpu": "1"}}
    )
    result = up(tmp_path, manifest(name, [hog]), timeout=120)
    assert result.returncode == 1
    terminated = container_status(status(name), "hog")["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137
    assert "OOMKilled" in result.stderr


def test_a_sigkill_that_is_not_the_oom_killer_is_not_oomkilled(tmp_path, name):
    victim = container(
        "victim", "while true; do sleep 0.1; done", resources={"limits": {"memory": "32Mi", "cpu": "1"}}
    )
    proc = start(tmp_path, manifest(name, [victim]))
    wait_for(lambda: running(name, ["victim"]), "the pod to run")
    os.kill(state(name)["containers"]["victim"]["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    terminated = container_status(status(name), "victim")["state"]["terminated"]
    assert terminated["exitCode"] == 137
    assert terminated["reason"] == "Error"


def test_cgroups_hold_exactly_the_plan(tmp_path, name):
    idle = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
    side = container(
        "side",
        idle,
        restartPolicy="Always",
        resources={
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
    )
    app = container(
        "app",
        idle,
        resources={
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
    )
    pod = manifest(name, [app], init=[side])
    plan = json.loads(
        subprocess.run(
            [str(podrun_bin()), "plan", "-o", "json", str(write(tmp_path, pod))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert plan["cgroup"]["pod"]["cpu.max"] == "70000 100000"
    assert plan["cgroup"]["pod"]["memory.max"] == str(192 << 20)
    proc = start(tmp_path, pod)
    try:
        wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
        pod_dir = Path(state(name)["cgroup"])
        wanted = {pod_dir: plan["cgroup"]["pod"]}
        for c, files in plan["cgroup"]["containers"].items():
            wanted[pod_dir / c] = files
        for directory, files in wanted.items():
            for file, value in files.items():
                assert (directory / file).read_text().strip() == value, f"{directory}/{file}"
        for file in ("cpu.max", "memory.max", "cpu.weight"):
            assert file in plan["cgroup"]["pod"]
            assert file in plan["cgroup"]["containers"]["app"]
    finally:
        stop(proc)


def test_pids_max_stops_a_fork_bomb(tmp_path, name):
    bomb = container(
        "bomb",
        "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo all-forked",
    )
    result = up(tmp_path, manifest(name, [bomb]), args=["--pod-max-pids", "20"], timeout=120)
    out = output_of(result.stdout, "bomb")
    assert "all-forked" not in out, out
    assert any("fork" in line.lower() or "resource temporarily unavailable" in line.lower() for line in out), out
