"""Kubernetes' pod lifecycle end to end through `podrun up`, judged from an
order log the containers append to (a hostPath mounted at /mnt): init
order, a sidecar's startupProbe gating the next init container, sidecar
restarts that leave apps alone, failed init containers, termination order,
the grace period ending in SIGKILL, a sidecar's readiness gating the pod's.
On the host and in the VM."""

import json
import signal
import time

from conftest import EXAMPLES
from pods import container, container_status, manifest, running, start, state, status, stop, up, wait_for

IDLE = "while true; do sleep 0.1; done"
# The image the examples name: the test image, as scripts/demo imports it.
EXAMPLE_IMAGE = "podrun.local/busybox:1.35"


def logged(name, script, **extra):
    """A container that notes its start in /mnt/order, then runs `script`."""
    c = container(name, f'echo "{name} start $(date +%s.%N)" >> /mnt/order; {script}', **extra)
    c["volumeMounts"] = [{"name": "log", "mountPath": "/mnt"}]
    return c


def pod_with_log(tmp_path, name, containers, init=(), **spec):
    log = tmp_path / "log"
    log.mkdir(exist_ok=True)
    volumes = [{"name": "log", "hostPath": {"path": str(log), "type": "Directory"}}]
    return manifest(name, containers, init=init, volumes=volumes, **spec)


def order(tmp_path):
    """(who, what, time) for each line of the order log."""
    path = tmp_path / "log" / "order"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(w, what, float(t)) for w, what, t in (line.split() for line in lines)]


def names(tmp_path, what="start"):
    return [w for w, event, _ in order(tmp_path) if event == what]


def test_init_containers_run_in_order_then_sidecar_then_apps(tmp_path, name):
    pod = pod_with_log(
        tmp_path,
        name,
        [logged("app", "true")],
        init=[
            logged("init-1", "sleep 0.2"),
            logged("side", "trap 'exit 0' TERM; " + IDLE, restartPolicy="Always"),
            logged("init-2", "true"),
        ],
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    assert names(tmp_path) == ["init-1", "side", "init-2", "app"]


def test_a_sidecars_startup_probe_gates_the_next_init_container(tmp_path, name):
    side = logged(
        "side",
        f'sleep 1; echo "side ready $(date +%s.%N)" >> /mnt/order; touch /mnt/side-ready; '
        f"trap 'exit 0' TERM; {IDLE}",
        restartPolicy="Always",
        startupProbe={"exec": {"command": ["test", "-f", "/mnt/side-ready"]}, "periodSeconds": 1},
    )
    pod = pod_with_log(tmp_path, name, [logged("app", "true")], init=[side, logged("next", "true")])
    result = up(tmp_path, pod, timeout=120)
    assert result.returncode == 0, result.stderr
    events = order(tmp_path)
    ready = next(t for w, what, t in events if (w, what) == ("side", "ready"))
    next_start = next(t for w, what, t in events if (w, what) == ("next", "start"))
    assert next_start > ready


def test_sidecar_restarts_leave_apps_alone_and_do_not_fail_the_pod(tmp_path, name, podrun):
    side = logged("side", "sleep 0.2; exit 1", restartPolicy="Always")
    app = logged("app", "sleep 3")
    result = up(tmp_path, pod_with_log(tmp_path, name, [app], init=[side]), timeout=120)
    assert result.returncode == 0, result.stderr
    s = status(name)
    assert s["phase"] == "Succeeded"
    assert container_status(s, "side")["restartCount"] >= 1
    assert container_status(s, "app")["restartCount"] == 0
    assert names(tmp_path).count("app") == 1
    # The crash loop is told as the kubelet tells it.
    events = [json.loads(line) for line in podrun("events", name, "-o", "json").stdout.splitlines()]
    backoff = [e for e in events if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning", events
    assert backoff[0]["object"] == "spec.containers{side}"
    assert backoff[0]["message"].startswith(f"Back-off restarting failed container side in pod {name}_default(")


def test_a_failed_init_container_under_never_fails_the_pod_before_any_app(tmp_path, name):
    pod = pod_with_log(tmp_path, name, [logged("app", "true")], init=[logged("init", "exit 3")])
    result = up(tmp_path, pod)
    assert result.returncode == 1
    assert status(name)["phase"] == "Failed"
    assert "app" not in names(tmp_path)
    assert "init: Error (exit code 3)" in result.stderr


def test_a_failed_init_container_under_on_failure_is_retried_then_apps_run(tmp_path, name):
    flaky = logged("init", "if [ -f /mnt/tried ]; then exit 0; fi; touch /mnt/tried; exit 1")
    pod = pod_with_log(tmp_path, name, [logged("app", "true")], init=[flaky], restartPolicy="OnFailure")
    result = up(tmp_path, pod, timeout=120)
    assert result.returncode == 0, result.stderr
    assert names(tmp_path) == ["init", "init", "app"]
    assert container_status(status(name), "init")["restartCount"] == 1


def test_termination_is_apps_first_then_sidecars_in_reverse(tmp_path, name):
    def stopping(who, delay):
        # The handler first, then a "ready" line: SIGTERM before the handler
        # would be ignored by the shell (its container's PID 1).
        return (
            f"trap 'echo \"{who} term $(date +%s.%N)\" >> /mnt/order; sleep {delay}; exit 0' TERM; "
            f'echo "{who} ready $(date +%s.%N)" >> /mnt/order; {IDLE}'
        )

    pod = pod_with_log(
        tmp_path,
        name,
        [logged("app-1", stopping("app-1", 0.5)), logged("app-2", stopping("app-2", 1))],
        init=[
            logged("side-1", stopping("side-1", 0), restartPolicy="Always"),
            logged("side-2", stopping("side-2", 0), restartPolicy="Always"),
        ],
        restart="Always",
    )
    proc = start(tmp_path, pod)
    wait_for(lambda: len(names(tmp_path, "ready")) == 4, "every container to be ready for SIGTERM")
    rc, out, err = stop(proc)
    terms = {w: t for w, what, t in order(tmp_path) if what == "term"}
    assert set(terms) == {"app-1", "app-2", "side-1", "side-2"}, err
    # Both apps get SIGTERM at once; the sidecars only after every app has
    # exited (app-2 takes 1 s), the later sidecar first.
    assert abs(terms["app-1"] - terms["app-2"]) < 0.5
    assert terms["side-2"] > terms["app-2"] + 0.8
    assert terms["side-1"] >= terms["side-2"]


def test_the_grace_period_ends_in_sigkill_for_a_container_ignoring_sigterm(tmp_path, name):
    stubborn = logged("stubborn", "trap '' TERM; " + IDLE)
    pod = pod_with_log(tmp_path, name, [stubborn], restart="Always", terminationGracePeriodSeconds=3)
    proc = start(tmp_path, pod)
    wait_for(lambda: running(name, ["stubborn"]), "the pod to run")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    took = time.monotonic() - began
    # 3 s of grace, with a wide margin for a busy machine.
    assert 2.5 <= took < 20, took
    terminated = container_status(status(name), "stubborn")["state"]["terminated"]
    assert terminated["exitCode"] == 137


def test_a_sidecars_readiness_gates_the_pods(tmp_path, name):
    side = logged(
        "side",
        f"sleep 2; touch /mnt/side-ready; trap 'exit 0' TERM; {IDLE}",
        restartPolicy="Always",
        readinessProbe={"exec": {"command": ["test", "-f", "/mnt/side-ready"]}, "periodSeconds": 1},
    )
    app = logged("app", f"trap 'exit 0' TERM; {IDLE}")
    proc = start(tmp_path, pod_with_log(tmp_path, name, [app], init=[side], restart="Always"))
    try:

        def ready():
            try:
                conditions = {c["type"]: c["status"] for c in state(name)["status"]["conditions"]}
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return None
            return conditions.get("Ready")

        wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
        assert ready() == "False"
        wait_for(lambda: ready() == "True", "the pod to be Ready once its sidecar is", timeout=30)
    finally:
        stop(proc)


def test_the_seeds_job_with_a_sidecar_completes_and_its_sidecar_is_stopped(
    tmp_path, name, podrun, busybox_image
):
    # The Job of the "Sidecar Containers" page, on the test image (this
    # session's copy of it). Its sidecar's tail, PID 1 without a SIGTERM
    # handler, is killed at the end of the default 30 s.
    text = (EXAMPLES / "job-sidecar.yaml").read_text()
    text = text.replace(EXAMPLE_IMAGE, busybox_image).replace(
        "metadata:\n  name: myjob", f"metadata:\n  name: {name}"
    )
    path = tmp_path / "job.yaml"
    path.write_text(text)
    result = podrun("up", path, timeout=180)
    assert result.returncode == 0, result.stderr
    s = status(name)
    assert s["phase"] == "Succeeded"
    assert container_status(s, "myjob")["state"]["terminated"]["reason"] == "Completed"
    assert "terminated" in container_status(s, "logshipper")["state"]
    # tail also says the file was missing, then appeared.
    assert "logging" in podrun("logs", name, "logshipper").stdout.splitlines()


def test_the_readme_example_runs(tmp_path, name, podrun, busybox_image):
    text = (EXAMPLES / "shared-sandbox.yaml").read_text().replace("name: shared-sandbox", f"name: {name}")
    text = text.replace(EXAMPLE_IMAGE, busybox_image)
    path = tmp_path / "example.yaml"
    path.write_text(text)
    result = podrun("up", path)
    assert result.returncode == 0, result.stderr
    app = [line for line in result.stdout.splitlines() if line.startswith("app | ")]
    assert app[:2] == [f"app | hello from {name}", f"app | hostname: {name}"]
    assert "web: Killing (SIGTERM)" in result.stderr
    assert result.stderr.rstrip().endswith(f"pod/{name} Succeeded")
