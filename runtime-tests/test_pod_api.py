"""The pod's socket API (docs/api.md), through examples/api_client.py and
raw requests: status, events (with a watch), stop, apply, exec and logs
with passed descriptors, `podrun exec -it` in a terminal, malformed
requests, a non-root client refused. On the host and in the VM."""

import json
import os
import pty
import socket
import subprocess
import sys

from conftest import REPO, podrun_bin
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


def request(sock, req, fds=()):
    """Sends one request with descriptors; returns (reply, descriptors)."""
    socket.send_fds(sock, [json.dumps(req).encode() + b"\n"], list(fds))
    data, got, _, _ = socket.recv_fds(sock, 65536, 4)
    return json.loads(data.split(b"\n", 1)[0]), got


def read_to_end(fd):
    """What a terminal (or pipe) gives until its other end is gone (a
    terminal's master says so with EIO, a non-blocking one runs dry)."""
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO, or BlockingIOError once drained
            return output
        if not chunk:
            return output
        output += chunk


def next_reply(sock):
    return json.loads(sock.makefile("rb").readline())


def test_exec_over_the_socket_with_passed_descriptors(tmp_path, name):
    proc, _ = running_pod(tmp_path, name)
    try:
        out_r, out_w = os.pipe()
        with socket.socket(socket.AF_UNIX) as s, open(os.devnull) as null:
            s.connect(f"/run/podrun/{name}/api.sock")
            command = ["sh", "-c", "hostname; echo oops >&2; exit 5"]
            reply, _ = request(
                s, {"version": 1, "op": "exec", "container": "side", "command": command}, [null.fileno(), out_w, out_w]
            )
            os.close(out_w)
            assert reply["ok"] and reply["pid"] > 0, reply
            assert next_reply(s) == {"ok": True, "exitCode": 5}
        with os.fdopen(out_r) as out:
            assert out.read().splitlines() == [name, "oops"]
        # Wrong requests: no descriptors, a missing command, a stopped
        # container name, a command that is not there (with a shell's code).
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(f"/run/podrun/{name}/api.sock")
            bare, _ = request(s, {"version": 1, "op": "exec", "command": ["true"]})
            assert not bare["ok"] and "three descriptors" in bare["error"]
            ghost, _ = request(s, {"version": 1, "op": "exec", "container": "ghost", "command": ["true"]})
            assert ghost["error"] == f"container ghost is not valid for pod {name}"
            null = os.open(os.devnull, os.O_RDWR)
            missing, _ = request(s, {"version": 1, "op": "exec", "command": ["/no/such"]}, [null] * 3)
            os.close(null)
            assert not missing["ok"] and missing["exitCode"] == 127, missing
            status, _ = request(s, {"version": 1, "op": "status"})
            assert status["ok"]
        assert running(name, ["side", "app"])
    finally:
        stop(proc)


def test_an_exec_whose_client_goes_away_is_killed(tmp_path, name):
    proc, _ = running_pod(tmp_path, name)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(f"/run/podrun/{name}/api.sock")
        null = os.open(os.devnull, os.O_RDWR)
        reply, _ = request(s, {"version": 1, "op": "exec", "command": ["sleep", "1000"]}, [null] * 3)
        os.close(null)
        pid = reply["pid"]
        assert os.path.exists(f"/proc/{pid}")
        s.close()
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "the orphaned exec to be killed")
        assert running(name, ["side", "app"])
    finally:
        stop(proc)


def test_exec_with_a_tty_gets_a_terminal_of_the_containers_own(tmp_path, name):
    proc, _ = running_pod(tmp_path, name)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(f"/run/podrun/{name}/api.sock")
            reply, fds = request(
                s, {"version": 1, "op": "exec", "command": ["sh", "-c", "tty; echo $TERM; exit 2"], "tty": True}
            )
            assert reply["ok"] and len(fds) == 1, reply
            assert next_reply(s) == {"ok": True, "exitCode": 2}
            output = read_to_end(fds[0])
            os.close(fds[0])
            # The container's own terminal, an xterm as containerd says.
            assert output.decode().split() == ["/dev/pts/0", "xterm"], output
    finally:
        stop(proc)


def test_podrun_exec_it_in_a_terminal(tmp_path, name):
    """`podrun exec -it` from a terminal: keys in, the shell's output out,
    and its exit code."""
    proc, _ = running_pod(tmp_path, name)
    try:
        pid, fd = pty.fork()
        if pid == 0:
            binary = str(podrun_bin())
            os.execv(binary, [binary, "exec", "-it", name, "--", "sh"])
        os.write(fd, b"echo answer=$((6*7)); tty; exit 3\n")
        output = read_to_end(fd)
        _, status = os.waitpid(pid, 0)
        text = output.decode(errors="replace")
        assert "answer=42" in text and "/dev/pts/0" in text, text
        assert os.waitstatus_to_exitcode(status) == 3, text
    finally:
        stop(proc)


def test_logs_over_the_socket_pass_the_file_and_say_when_a_run_ends(tmp_path, name):
    pod = manifest(
        name,
        [container("app", "echo first; sleep 2; echo second")],
        init=[container("side", IDLE, restartPolicy="Always")],
    )
    proc = start(tmp_path, pod)
    try:
        wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
        # The CLI follows through the socket too, and stops with the run.
        follower = subprocess.Popen(
            [str(podrun_bin()), "logs", "-f", name, "app"], stdout=subprocess.PIPE, text=True
        )
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(f"/run/podrun/{name}/api.sock")
            reply, fds = request(s, {"version": 1, "op": "logs", "container": "app", "follow": True})
            assert reply == {"ok": True, "log": {"container": "app", "restartCount": 0}}, reply
            assert len(fds) == 1
            assert next_reply(s) == {"ok": True, "ended": True}
            with os.fdopen(fds[0]) as log:
                lines = [line.split(" ", 3) for line in log.read().splitlines()]
            assert [(stream, tag, text) for _, stream, tag, text in lines] == [
                ("stdout", "F", "first"),
                ("stdout", "F", "second"),
            ]
            again, _ = request(s, {"version": 1, "op": "logs", "container": "app", "previous": True})
            assert not again["ok"] and "previous terminated container" in again["error"]
        out, _ = follower.communicate(timeout=30)
        assert follower.returncode == 0 and out.splitlines() == ["first", "second"], out
    finally:
        stop(proc)


def test_exec_from_a_terminal_never_hands_the_terminal_to_the_container(tmp_path, name):
    """Without -t, a terminal on this side becomes a pipe on the other:
    nothing the command leaves behind can read what is typed later."""
    proc, _ = running_pod(tmp_path, name)
    try:
        pid, fd = pty.fork()
        if pid == 0:
            binary = str(podrun_bin())
            os.execv(binary, [binary, "exec", name, "--", "sh", "-c", "readlink /proc/self/fd/1 /proc/self/fd/2"])
        output = read_to_end(fd)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, output
        lines = output.decode().split()
        assert len(lines) == 2 and all(line.startswith("pipe:[") for line in lines), output
    finally:
        stop(proc)
