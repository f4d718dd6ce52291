"""The pod's socket API (docs/api.md), through examples/api_client.py and
raw requests: status, events (with a watch), stop, apply, malformed
requests, a non-root client refused. On the host and in the VM."""

import json
import socket
import subprocess
import sys

from conftest import REPO
from pods import container, leftovers, manifest, running, start, state, stop, wait_for, write

CLIENT = REPO / "examples" / "api_client.py"
IDLE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def client(*args, user=None):
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    return subprocess.run(
        [*prefix, sys.executable, str(CLIENT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def raw(name, *lines):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(f"/run/podrun/{name}/api.sock")
        s.sendall(b"".join(line + b"\n" for line in lines))
        f = s.makefile("rb")
        return [json.loads(f.readline()) for _ in lines]


def running_pod(tmp_path, name):
    pod = manifest(name, [container("app", IDLE)], init=[container("side", IDLE, restartPolicy="Always")])
    proc = start(tmp_path, pod)
    wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
    return proc, pod


def test_status_events_and_bad_requests(tmp_path, name):
    proc, _ = running_pod(tmp_path, name)
    try:
        status = client(name, "status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"]["phase"] == "Running"
        events = json.loads(client(name, "events").stdout)["events"]
        assert events[0]["reason"] == "Scheduled"
        replies = raw(
            name,
            b"not json",
            b'{"version":1,"op":"reboot"}',
            b'{"version":2,"op":"status"}',
            b'{"version":1,"op":"status","extra":true}',
            b'{"version":1,"op":"stop","graceSeconds":-1}',
            b'{"version":1,"op":"apply","images":{"ghost":"rootfs:/"}}',
            b'{"version":1,"op":"status"}',
        )
        assert [r["ok"] for r in replies] == [False] * 6 + [True]
        assert "unsupported protocol version 2" in replies[2]["error"]
        assert replies[5]["error"] == "no container named [\"ghost\"] in this pod"
        # Nothing of that touched the pod.
        assert running(name, ["side", "app"])
        assert all(c["restartCount"] == 0 for c in replies[6]["status"]["containerStatuses"])
    finally:
        stop(proc)


def test_a_non_root_client_is_refused(tmp_path, name):
    proc, _ = running_pod(tmp_path, name)
    try:
        refused = client(name, "status", user=65534)
        assert refused.returncode != 0
        assert "Permission denied" in refused.stderr
    finally:
        stop(proc)


def test_apply_restarts_the_changed_container_and_watch_sees_it(tmp_path, name, podrun):
    proc, pod = running_pod(tmp_path, name)
    watcher = subprocess.Popen(
        [sys.executable, str(CLIENT), name, "events", "--watch"], stdout=subprocess.PIPE, text=True
    )
    try:
        pod["spec"]["initContainers"][0]["image"] = "rootfs:/tmp/.."
        result = podrun("apply", write(tmp_path, pod))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"pod/{name} configured"

        def side_restarted():
            s = state(name)["status"]
            side = next(c for c in s["initContainerStatuses"] if c["name"] == "side")
            return side["restartCount"] == 1 and side["state"].get("running")

        wait_for(side_restarted, "the sidecar to restart with its new image")
        app = state(name)["status"]["containerStatuses"][0]
        assert app["restartCount"] == 0
        pod["spec"]["containers"][0]["command"] = ["true"]
        refused = podrun("apply", write(tmp_path, pod))
        assert refused.returncode == 2 and "pod updates may not change fields" in refused.stderr
        # The stop request over the socket ends the pod.
        assert client(name, "stop", 0).returncode == 0
        proc.wait(timeout=30)
        seen = [json.loads(line) for line in watcher.stdout]
        killing = [e["object"] for e in seen if e["reason"] == "Killing"]
        assert "spec.containers{side}" in killing
    finally:
        watcher.kill()
        if proc.poll() is None:
            stop(proc)
    assert leftovers(state(name)) == []
