"""Probes and lifecycle hooks run by the supervisor: a startup probe gates
what comes after a sidecar, a failing liveness probe restarts its
container, a preStop hook runs before SIGTERM, a failing postStart hook
kills its container. On the host and in the VM."""


from pods import (
    container,
    container_status,
    manifest,
    output_of,
    running,
    start,
    state,
    stop,
    up,
    wait_for,
)

IDLE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def test_a_startup_probe_gates_the_apps(tmp_path, name):
    web = container(
        "web",
        "sleep 1; mkdir -p /tmp/podrun-www-$$; echo served > /tmp/podrun-www-$$/index.html; "
        "exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/podrun-www-$$",
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
