"""The verbs around a pod: up -d, ps, logs, status, down, rm. On the host
and in the VM."""

import json
from pathlib import Path

from pods import container, leftovers, manifest, state, write


def test_up_detached_then_ps_logs_down_rm(tmp_path, name, podrun):
    side = container(
        "side", "echo side-up; trap 'exit 0' TERM; while true; do sleep 0.1; done", restartPolicy="Always"
    )
    app = container("app", "echo one; echo two; echo three >&2; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    init = container("init", "echo init-done")
    path = write(tmp_path, manifest(name, [app], init=[init, side], restart="Always"))

    started = podrun("up", "-d", path)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"pod/{name} Running"
    s = state(name)
    assert s["containers"]["app"]["pid"] and s["containers"]["side"]["pid"]

    rows = {r["name"]: r for r in json.loads(podrun("ps", "-o", "json").stdout)}
    assert rows[name]["ready"] == "2/2"
    assert rows[name]["status"] == "Running"
    table = podrun("ps").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert any(line.split()[:4] == [name, "2/2", "Running", "0"] for line in table[1:])

    logs = podrun("logs", name)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["one", "two", "three"]
    assert podrun("logs", name, "app", "--tail", "1").stdout == "three\n"
    assert podrun("logs", name, "init").stdout == "init-done\n"
    stamped = podrun("logs", name, "side", "--timestamps").stdout.split(" ", 1)
    assert stamped[0].endswith("Z") and stamped[1] == "side-up\n"
    missing = podrun("logs", name, "nope")
    assert missing.returncode == 2
    assert f"container nope is not valid for pod {name}" in missing.stderr
    previous = podrun("logs", name, "app", "--previous")
    assert previous.returncode == 2 and "previous terminated container" in previous.stderr

    # exec: in the app's namespaces (its hostname, its PID namespace),
    # with its exit code.
    inside = podrun("exec", name, "--", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; exit 3")
    assert inside.returncode == 3, inside.stderr
    hostname, pid1 = inside.stdout.splitlines()
    assert hostname == name and pid1.startswith("sh -c echo one")
    sidecar = podrun("exec", name, "-c", "side", "--", "cat", "/proc/1/cmdline")
    assert sidecar.returncode == 0 and "side-up" in sidecar.stdout
    done = podrun("exec", name, "-c", "init", "--", "true")
    assert done.returncode == 2 and "is not running" in done.stderr

    refused = podrun("rm", name)
    assert refused.returncode == 2 and "is running" in refused.stderr

    again = podrun("up", "-d", path)
    assert again.returncode == 1 and "already exists" in again.stderr

    down = podrun("down", name)
    assert down.returncode == 0, down.stderr
    assert leftovers(s) == []
    events = [json.loads(line) for line in podrun("events", name, "-o", "json").stdout.splitlines()]
    reasons = [(e["reason"], e["object"]) for e in events]
    assert reasons[0] == ("Scheduled", f"pod/{name}")
    for c in ("init", "side", "app"):
        assert ("Started", f"spec.containers{{{c}}}") in reasons
    assert ("Killing", "spec.containers{app}") in reasons
    # The app is stopped before its sidecar.
    killing = [o for r, o in reasons if r == "Killing"]
    assert killing.index("spec.containers{app}") < killing.index("spec.containers{side}")
    assert podrun("events", name).stdout.splitlines()[0].split() == [
        "TIME",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
    ]
    yaml = podrun("status", name, "-o", "yaml").stdout
    assert "\nphase: " in yaml and "initContainerStatuses:" in yaml
    status = json.loads(podrun("status", name, "-o", "json").stdout)
    assert status["phase"] in ("Succeeded", "Failed")
    assert podrun("logs", name).stdout.splitlines() == ["one", "two", "three"]

    removed = podrun("rm", name)
    assert removed.returncode == 0, removed.stderr
    gone = podrun("status", name)
    assert gone.returncode == 2 and f'no pod named "{name}"' in gone.stderr


def test_logs_needs_a_container_when_the_pod_has_several(tmp_path, name, podrun):
    pod = manifest(name, [container("a", "echo a"), container("b", "echo b")])
    result = podrun("up", write(tmp_path, pod))
    assert result.returncode == 0, result.stderr
    logs = podrun("logs", name)
    assert logs.returncode == 2
    assert f"a container name must be specified for pod {name}, choose one of: [a b]" in logs.stderr
    assert podrun("logs", name, "b").stdout == "b\n"


INVALID = {
    "unknown field": 'spec: {containers: [{name: c, image: "rootfs:/", command: [x], colour: red}]}',
    "no containers": "spec: {containers: []}",
    "bad restartPolicy": 'spec: {restartPolicy: Sometimes, containers: [{name: c, image: "rootfs:/", command: [x]}]}',
    "duplicate names": 'spec: {containers: [{name: c, image: "rootfs:/"}, {name: c, image: "rootfs:/"}]}',
    "bad quantity": 'spec: {containers: [{name: c, image: "rootfs:/", resources: {limits: {memory: lots}}}]}',
    "probe on a regular init": 'spec: {initContainers: [{name: i, image: "rootfs:/", readinessProbe: {exec: {command: [x]}}}], containers: [{name: c, image: "rootfs:/"}]}',
    "yaml syntax": "spec: {containers: [",
    "rootfs not absolute": 'spec: {containers: [{name: c, image: "rootfs:srv", command: [x]}]}',
}


def test_up_refuses_invalid_manifests_and_creates_nothing(tmp_path, name, podrun):
    cgroups_before = sorted(p.name for p in Path("/sys/fs/cgroup").rglob("podrun/*") if p.is_dir())
    for what, spec in INVALID.items():
        path = tmp_path / "pod.yaml"
        path.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n{spec}\n")
        result = podrun("up", path)
        assert result.returncode == 2, (what, result.stderr)
        assert result.stderr.startswith(("The Pod", "error:")), (what, result.stderr)
        assert not (Path("/run/podrun") / name).exists(), what
    cgroups_after = sorted(p.name for p in Path("/sys/fs/cgroup").rglob("podrun/*") if p.is_dir())
    assert cgroups_after == cgroups_before
