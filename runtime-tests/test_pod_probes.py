"""Probes and lifecycle hooks run by the supervisor: a startup probe gates
what comes after a sidecar, a failing liveness probe restarts its
container, a preStop hook runs before SIGTERM, a failing postStart hook
kills its container; HTTPS probes on a self-signed certificate and gRPC
health probes make a container Ready and, when they fail, not Ready with
the kubelet's Unhealthy message. On the host and in the VM."""

import json
import shutil
import subprocess
import sys

from conftest import podrun_bin
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
)

IDLE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def test_a_startup_probe_gates_the_apps(tmp_path, name):
    web = container(
        "web",
        "sleep 1; mkdir -p /tmp/podrun-www-$$; echo served > /tmp/podrun-www-$$/index.html; "
        "exec busybox httpd -f -p 8080 -h /tmp/podrun-www-$$",
        restartPolicy="Always",
        startupProbe={"httpGet": {"port": 8080, "path": "/index.html"}, "periodSeconds": 1},
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )
    # One attempt, no retry: the server must already serve when the app starts.
    app = container("app", "busybox wget -qO- http://127.0.0.1:8080/index.html")
    result = up(tmp_path, manifest(name, [app], init=[web], terminationGracePeriodSeconds=2))
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "app") == ["served"]


def test_a_failing_liveness_probe_restarts_its_container(tmp_path, name):
    c = container(
        "c",
        IDLE,
        livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
    )
    proc = start(tmp_path, manifest(name, [c], restart="Always"))
    try:

        def restarted():
            try:
                s = container_status(state(name)["status"], "c")
            except (AssertionError, FileNotFoundError, KeyError):
                return False
            return s["restartCount"] >= 1

        wait_for(restarted, "a restart after the liveness probe failed", timeout=60)
    finally:
        rc, out, err = stop(proc)
    assert "Unhealthy: Liveness probe failed" in err


def test_a_pre_stop_hook_runs_before_sigterm(tmp_path, name):
    c = container(
        "c",
        "trap 'cat /mnt/marker; exit 0' TERM; while true; do sleep 0.1; done",
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop-ran > /mnt/marker"]}}},
        volumeMounts=[{"name": "v", "mountPath": "/mnt"}],
    )
    pod = manifest(name, [c], restart="Always", volumes=[{"name": "v", "emptyDir": {}}])
    proc = start(tmp_path, pod)
    wait_for(lambda: running(name, ["c"]), "the container to run")
    rc, out, err = stop(proc)
    assert output_of(out, "c") == ["pre-stop-ran"], err


def test_a_failing_post_start_hook_kills_its_container(tmp_path, name):
    c = container(
        "c",
        "trap 'exit 1' TERM; while true; do sleep 0.1; done",
        lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}},
    )
    result = up(tmp_path, manifest(name, [c]))
    assert result.returncode == 1
    assert "FailedPostStartHook: nope" in result.stderr
    assert "c: Killing (SIGTERM)" in result.stderr


# The servers below run in containers on the host's root with the python
# running these tests (the venv's, which scripts/setup gives grpcio).
PYTHON = sys.executable

HTTPS_SERVER = """
import http.server, os, ssl

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("/mnt/agents", "a") as f:
            f.write(self.headers.get("User-Agent", "") + "\\n")
        failing = self.path == "/ready" and os.path.exists("/mnt/unready")
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("", 8443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/mnt/cert.pem", "/mnt/key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

REDIRECT_SERVER = """
import http.server

# /healthz moves to /broken, which fails; /elsewhere moves to another host
# name for the same server, where the kubelet stops following.
MOVES = {
    "/healthz": "/broken",
    "/elsewhere": "http://localhost:8081/broken",
}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("/mnt/paths", "a") as f:
            f.write(self.path + "\\n")
        if self.path in MOVES:
            self.send_response(301)
            self.send_header("Location", MOVES[self.path])
        else:
            self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("", 8081), Handler).serve_forever()
"""

GRPC_SERVER = """
import os, signal, sys, time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
servicer = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port("0.0.0.0:9000")
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
server.start()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while not os.path.exists("/mnt/not-serving"):
    time.sleep(0.1)
servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
server.wait_for_termination()
"""


def served(tmp_path, name, script, **extra):
    """A container running `script` with PYTHON, its files in a hostPath
    directory at /mnt; returns the container and the directory."""
    srv = tmp_path / "srv"
    srv.mkdir(exist_ok=True)
    (srv / "server.py").write_text(script)
    c = {
        "name": name,
        "image": "rootfs:/",
        "command": [PYTHON, "/mnt/server.py"],
        "volumeMounts": [{"name": "srv", "mountPath": "/mnt"}],
    }
    c.update(extra)
    volume = {"name": "srv", "hostPath": {"path": str(srv), "type": "Directory"}}
    return c, volume, srv


def ready(name, container_name):
    """The container's ready flag, None before it has a status."""
    try:
        return container_status(state(name)["status"], container_name).get("ready")
    except (AssertionError, FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def events_of(name, reason):
    """(object, message) of each of the pod's events with this reason."""
    result = subprocess.run(
        [str(podrun_bin()), "events", name, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return [(e["object"], e["message"]) for e in events if e["reason"] == reason]


def unhealthy(name):
    """(object, message) of each of the pod's Unhealthy events so far."""
    return events_of(name, "Unhealthy")


def test_https_probes_accept_a_self_signed_certificate(tmp_path, name):
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test's certificate (scripts/setup installs it)"
    c, volume, srv = served(
        tmp_path,
        "web",
        HTTPS_SERVER,
        startupProbe={
            "httpGet": {"port": 8443, "path": "/healthz", "scheme": "HTTPS"},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
        readinessProbe={
            "httpGet": {"port": 8443, "path": "/ready", "scheme": "HTTPS"},
            "periodSeconds": 1,
        },
    )
    made = subprocess.run(
        [
            openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=podrun-test",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(srv / "key.pem"), "-out", str(srv / "cert.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    proc = start(tmp_path, manifest(name, [c], restart="Always", volumes=[volume]))
    try:
        wait_for(lambda: ready(name, "web") is True, "the HTTPS probes to pass", timeout=60)
        agents = (srv / "agents").read_text().splitlines()
        assert agents and set(agents) == {"kube-probe/1.37"}, agents

        (srv / "unready").touch()
        wait_for(lambda: ready(name, "web") is False, "a failing HTTPS readiness probe", timeout=30)
        assert (
            "spec.containers{web}",
            "Readiness probe failed: HTTP probe failed with statuscode: 500",
        ) in unhealthy(name)
        # Readiness never restarts: the server is still the first.
        assert container_status(state(name)["status"], "web")["restartCount"] == 0
    finally:
        rc, out, err = stop(proc)
    assert "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 500" in err


def test_http_probes_follow_redirects_to_the_same_host_as_the_kubelet(tmp_path, name):
    # /healthz answers 301 to /broken, which answers 500: the kubelet
    # follows the redirect and the liveness probe fails (a probe that does
    # not follow it would take the 301 for a success). A redirect to
    # another host is not followed: a success, with a ProbeWarning.
    c, volume, srv = served(
        tmp_path,
        "web",
        REDIRECT_SERVER,
        # The other probes wait for the server to listen.
        startupProbe={"tcpSocket": {"port": 8081}, "periodSeconds": 1, "failureThreshold": 60},
        livenessProbe={
            "httpGet": {"port": 8081, "path": "/healthz"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        readinessProbe={"httpGet": {"port": 8081, "path": "/elsewhere"}, "periodSeconds": 1},
    )
    proc = start(tmp_path, manifest(name, [c], restart="Always", volumes=[volume]))
    try:
        wait_for(
            lambda: ("spec.containers{web}", "Liveness probe failed: HTTP probe failed with statuscode: 500")
            in unhealthy(name),
            "the liveness probe to fail on the redirect's target",
            timeout=60,
        )
        wait_for(
            lambda: any(
                o == "spec.containers{web}" and m.startswith("Readiness probe warning: Probe terminated redirects")
                for o, m in events_of(name, "ProbeWarning")
            ),
            "a ProbeWarning for the redirect to another host",
            timeout=60,
        )
        paths = (srv / "paths").read_text().splitlines()
        assert "/healthz" in paths and "/broken" in paths, paths
        assert not any(
            m.startswith("Readiness probe failed") for _, m in unhealthy(name)
        ), unhealthy(name)
    finally:
        rc, out, err = stop(proc)
    assert "Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500" in err


def test_grpc_readiness_follows_the_health_service(tmp_path, name):
    c, volume, srv = served(
        tmp_path,
        "grpc",
        GRPC_SERVER,
        readinessProbe={"grpc": {"port": 9000}, "periodSeconds": 1},
    )
    # Nothing listens on 9001: the probe dials until its timeout, as the
    # kubelet's, and reports it in the kubelet's words.
    nothing = container(
        "nothing",
        f"trap 'exit 0' TERM; {IDLE}",
        readinessProbe={"grpc": {"port": 9001}, "periodSeconds": 2},
    )
    proc = start(tmp_path, manifest(name, [c, nothing], restart="Always", volumes=[volume]))
    try:
        wait_for(lambda: ready(name, "grpc") is True, "the gRPC probe to see SERVING", timeout=60)

        (srv / "not-serving").touch()
        wait_for(lambda: ready(name, "grpc") is False, "the gRPC probe to see NOT_SERVING", timeout=30)
        events = unhealthy(name)
        assert (
            "spec.containers{grpc}",
            'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")',
        ) in events
        assert (
            "spec.containers{nothing}",
            f'Readiness probe failed: timeout: failed to connect service "{status(name)["podIP"]}:9001" '
            "within 1s: context deadline exceeded",
        ) in events, events
        assert ready(name, "nothing") is False
    finally:
        stop(proc)
