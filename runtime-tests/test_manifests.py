"""Files as `kubectl apply -f` takes them: several pods and their ConfigMaps
and Secrets in one multi-document file, the environment they give (single
keys, every key with a prefix, optional ones), and `up -d` telling the truth
about a pod that is held up. On the host and in the VM."""

import json
import signal
import subprocess

from conftest import podrun_bin
from pods import container, leftovers, running, state, status, wait_for


def documents(*docs) -> str:
    """A multi-document YAML file (JSON is YAML: one per document)."""
    return "".join(f"---\n{json.dumps(d)}\n" for d in docs)


def config_map(name, data, **extra):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    cm.update(extra)
    return cm


def secret(name, string_data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data}


def pod(name, containers, restart="Never"):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "containers": containers},
    }


def env_of(name, container_name="app"):
    """The container's environment, as its process sees it."""
    pid = state(name)["containers"][container_name]["pid"]
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if e)


LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


def test_two_pods_and_their_config_map_from_one_file(tmp_path, podrun, name):
    first, second = f"{name}-a", f"{name}-b"
    cm = config_map(f"{name}-cfg", {"color": "blue", "size": "large"})
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": cm["metadata"]["name"], "key": "color"}}}]
    env_from = [{"prefix": "CFG_", "configMapRef": {"name": cm["metadata"]["name"]}}]
    text = documents(
        pod(first, [container("app", LOOP, env=env)], restart="Always"),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}},
        cm,
        pod(second, [container("app", LOOP, envFrom=env_from)], restart="Always"),
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    try:
        valid = podrun("validate", path)
        assert valid.returncode == 0, valid.stderr
        assert valid.stdout.splitlines() == [f"pod/{first} valid", f"pod/{second} valid"]
        assert "ignoring v1 Service \"web\" (document 2)" in valid.stderr

        started = podrun("up", "-d", path)
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines() == [f"pod/{first} Running", f"pod/{second} Running"]
        assert env_of(first)["COLOR"] == "blue"
        second_env = env_of(second)
        assert second_env["CFG_color"] == "blue" and second_env["CFG_size"] == "large"
        rows = {r["name"]: r for r in json.loads(podrun("ps", "-o", "json").stdout)}
        assert rows[first]["status"] == rows[second]["status"] == "Running"
        states = [state(first), state(second)]
        down = podrun("down", first, second)
        assert down.returncode == 0, down.stderr
        assert down.stdout.splitlines() == [f"pod/{first} down", f"pod/{second} down"]
        assert [leftovers(s) for s in states] == [[], []]
    finally:
        for p in (first, second):
            subprocess.run([str(podrun_bin()), "rm", "--force", p], capture_output=True, timeout=60)


def test_several_pods_in_the_foreground_name_their_lines(tmp_path, name):
    first, second = f"{name}-a", f"{name}-b"
    text = documents(
        secret(f"{name}-s", {"token": "t0ken"}),
        pod(first, [container("app", "echo one-$TOKEN", env=[
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{name}-s", "key": "token"}}}])]),
        pod(second, [container("app", "echo two")]),
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    try:
        done = subprocess.run(
            [str(podrun_bin()), "up", str(path)], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"{first}/app | one-t0ken" in lines
        assert f"{second}/app | two" in lines
        assert status(first)["phase"] == status(second)["phase"] == "Succeeded"
    finally:
        for p in (first, second):
            subprocess.run([str(podrun_bin()), "rm", "--force", p], capture_output=True, timeout=60)


def test_ctrl_c_stops_every_pod_of_the_file(tmp_path, name):
    first, second = f"{name}-a", f"{name}-b"
    path = tmp_path / "two.yaml"
    path.write_text(documents(pod(first, [container("app", LOOP)]), pod(second, [container("app", LOOP)])))
    try:
        proc = subprocess.Popen(
            [str(podrun_bin()), "up", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: running(first, ["app"]) and running(second, ["app"]), "both pods to run")
        states = [state(first), state(second)]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        # Stopped by the user, each app exits 0 on TERM: both Succeeded.
        assert proc.returncode == 0, err
        assert [leftovers(s) for s in states] == [[], []]
    finally:
        for p in (first, second):
            subprocess.run([str(podrun_bin()), "rm", "--force", p], capture_output=True, timeout=60)


def test_a_missing_key_holds_the_container_and_up_d_says_so(tmp_path, podrun, name):
    cm = config_map(f"{name}-cfg", {"present": "yes"})
    env = [
        {"name": "PRESENT", "valueFrom": {"configMapKeyRef": {"name": f"{name}-cfg", "key": "present"}}},
        {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": f"{name}-cfg", "key": "absent"}}},
    ]
    path = tmp_path / "held.yaml"
    path.write_text(documents(cm, pod(name, [container("app", LOOP, env=env)], restart="Always")))
    started = podrun("up", "-d", path, timeout=60)
    assert started.returncode == 1, started.stdout + started.stderr
    assert started.stdout == ""
    assert f"pod/{name} Pending" in started.stderr
    assert "app: CreateContainerConfigError: couldn't find key absent in ConfigMap default/" in started.stderr
    assert f"podrun down {name}" in started.stderr
    # Left as it is, for the user to look at.
    waiting = status(name)["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    s = state(name)
    down = podrun("down", name)
    assert down.returncode == 0, down.stderr
    assert leftovers(s) == []


def test_an_optional_key_that_is_missing_is_left_out(tmp_path, podrun, name):
    env = [
        {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "nowhere", "key": "k", "optional": True}}},
        {"name": "SECRET_MAYBE", "valueFrom": {"secretKeyRef": {"name": "nowhere", "key": "k", "optional": True}}},
        {"name": "THERE", "value": "1"},
    ]
    path = tmp_path / "optional.yaml"
    path.write_text(documents(pod(name, [container("app", LOOP, env=env,
        envFrom=[{"configMapRef": {"name": "none", "optional": True}}])], restart="Always")))
    started = podrun("up", "-d", path)
    assert started.returncode == 0, started.stderr
    env_now = env_of(name)
    assert "MAYBE" not in env_now and "SECRET_MAYBE" not in env_now
    assert env_now["THERE"] == "1"
    assert podrun("down", name).returncode == 0


def test_an_init_container_held_up_is_reported_by_up_d(tmp_path, podrun, name):
    init = container("setup", "true", env=[
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": f"{name}-s", "key": "nope"}}}])
    spec = pod(name, [container("app", LOOP)], restart="Always")
    spec["spec"]["initContainers"] = [init]
    path = tmp_path / "init.yaml"
    path.write_text(documents(secret(f"{name}-s", {"k": "v"}), spec))
    started = podrun("up", "-d", path, timeout=60)
    assert started.returncode == 1, started.stdout + started.stderr
    assert "setup: CreateContainerConfigError: couldn't find key nope in Secret default/" in started.stderr
    assert podrun("down", name).returncode == 0
