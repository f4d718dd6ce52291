"""The pod sandbox and container processes, driven through `podrun up`:
shared network, IPC and hostname; volumes; isolation; start errors; and
teardown that leaves nothing behind. These run on the host and in the VM.
"""

import signal
import subprocess
from pathlib import Path

import pytest

from conftest import IN_VM, podrun_bin
from pods import (
    RUN_ROOT,
    container,
    container_status,
    leftovers,
    manifest,
    mount_points,
    network_leftovers,
    network_record,
    output_of,
    processes_in,
    running,
    start,
    state,
    status,
    stop,
    up,
    wait_for,
    write,
)



def test_containers_share_network_ipc_and_hostname(tmp_path, name):
    server = container(
        "server",
        "ipcmk -Q >/dev/null; hostname; "
        "while true; do busybox nc -l -p 8080 -e echo served; done",
        restartPolicy="Always",
    )
    client = container(
        "client",
        "for i in $(seq 100); do busybox nc 127.0.0.1 8080 && break; sleep 0.1; done; "
        "ipcs -q | awk '/^0x/ {print \"queue\", $1}'; hostname",
    )
    result = up(tmp_path, manifest(name, [client], init=[server]))
    assert result.returncode == 0, result.stderr
    client_out = output_of(result.stdout, "client")
    assert "served" in client_out
    assert output_of(result.stdout, "server")[0] == name
    assert client_out[-1] == name
    queues = [line.split()[1] for line in client_out if line.startswith("queue ")]
    assert len(queues) == 1, client_out
    host_queues = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    assert queues[0] not in host_queues


def test_etc_hosts_hostname_and_resolv_conf_are_the_pods(tmp_path, name):
    show = container("show", "cat /etc/hosts; echo ---; cat /etc/hostname; echo ---; cat /etc/resolv.conf")
    pod = manifest(
        name,
        [show],
        hostAliases=[{"ip": "10.1.2.3", "hostnames": ["db", "db.internal"]}],
        dnsPolicy="None",
        dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]},
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    hosts, hostname, resolv = "\n".join(output_of(result.stdout, "show")).split("\n---\n")
    lines = hosts.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines
    # The pod's hostname is on its address on the node's network.
    assert f"{status(name)['podIP']}\t{name}" in lines
    assert lines[-1] == "10.1.2.3\tdb\tdb.internal"
    assert hostname == name
    assert resolv.splitlines() == ["search corp.example", "nameserver 192.0.2.53", "options ndots:2"]
    # The host's own files are untouched.
    assert "db.internal" not in Path("/etc/hosts").read_text()


def test_a_volume_over_etc_or_another_volume_gets_its_mount_points_made_in_it(tmp_path, name):
    # As with the kubelet and runc: the pod's /etc/hosts and a volume
    # nested in another are mounted on points made in the volume below,
    # not in the image where that volume hides them.
    show = container(
        "show",
        "head -1 /etc/hosts; cat /etc/hostname; ls /etc; echo nested > /mnt/inner/f; "
        "grep -c ' /mnt/inner ' /proc/mounts",
    )
    show["volumeMounts"] = [
        {"name": "etc", "mountPath": "/etc"},
        {"name": "data", "mountPath": "/mnt"},
        {"name": "inner", "mountPath": "/mnt/inner"},
    ]
    check = container("check", "cat /srv/f; ls /mnt")
    check["volumeMounts"] = [
        {"name": "inner", "mountPath": "/srv"},
        {"name": "data", "mountPath": "/mnt"},
    ]
    pod = manifest(
        name,
        [check],
        init=[show],
        volumes=[{"name": v, "emptyDir": {}} for v in ("etc", "data", "inner")],
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "show") == [
        "# Kubernetes-managed hosts file.",
        name,
        "hostname",
        "hosts",
        "resolv.conf",
        "1",
    ]
    # The other container sees the nested volume's file, and the mount
    # point made in the outer volume.
    assert output_of(result.stdout, "check") == ["nested", "inner"]


def test_an_empty_dir_is_shared_and_survives_a_restart(tmp_path, name):
    writer = container("writer", "echo from-writer > /mnt/a")
    reader = container(
        "reader",
        "cat /mnt/a; if [ -f /mnt/once ]; then cat /mnt/once; exit 0; fi; "
        "echo first-run > /mnt/once; exit 1",
    )
    mount = [{"name": "scratch", "mountPath": "/mnt"}]
    writer["volumeMounts"] = reader["volumeMounts"] = mount
    pod = manifest(
        name,
        [reader],
        init=[writer],
        restart="OnFailure",
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "reader") == ["from-writer", "from-writer", "first-run"]
    reader_status = container_status(status(name), "reader")
    assert reader_status["restartCount"] == 1
    assert reader_status["state"]["terminated"]["exitCode"] == 0


def test_a_memory_empty_dir_is_a_tmpfs_of_its_size(tmp_path, name):
    c = container("c", "grep ' /mnt ' /proc/mounts")
    c["volumeMounts"] = [{"name": "m", "mountPath": "/mnt"}]
    pod = manifest(
        name, [c], volumes=[{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    (line,) = output_of(result.stdout, "c")
    assert line.split()[2] == "tmpfs"
    assert "size=8192k" in line


def test_a_host_path_directory_or_create_is_made_and_kept(tmp_path, name):
    target = tmp_path / "made" / "here"
    c = container("c", "echo kept > /mnt/file")
    c["volumeMounts"] = [{"name": "h", "mountPath": "/mnt"}]
    pod = manifest(
        name,
        [c],
        volumes=[{"name": "h", "hostPath": {"path": str(target), "type": "DirectoryOrCreate"}}],
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    assert (target / "file").read_text() == "kept\n"


def test_a_host_path_of_the_wrong_type_refuses_the_pod_before_anything_is_made(tmp_path, name, podrun):
    c = container("c", "true")
    c["volumeMounts"] = [{"name": "h", "mountPath": "/mnt"}]
    pod = manifest(
        name,
        [c],
        volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}],
    )
    # What `validate` reports, `up` refuses, as input (exit 2), with
    # nothing of the pod made.
    validated = podrun("validate", write(tmp_path, pod))
    assert validated.returncode == 2, validated.stdout
    result = up(tmp_path, pod)
    assert result.returncode == 2
    assert result.stderr == validated.stderr
    assert f'volume "h": hostPath {tmp_path / "absent"} does not exist (type Directory)' in result.stderr
    assert not (tmp_path / "absent").exists()
    assert not (RUN_ROOT / name).exists()


def test_a_sub_path_that_escapes_its_volume_is_refused(tmp_path, name):
    volume = tmp_path / "vol"
    volume.mkdir()
    (volume / "inside").mkdir()
    (volume / "escape").symlink_to("/etc")
    ok = container("ok", "ls -d /mnt; trap 'exit 0' TERM; while true; do sleep 0.1; done")
    ok["volumeMounts"] = [{"name": "v", "mountPath": "/mnt", "subPath": "inside"}]
    bad = container("bad", "cat /mnt/passwd")
    bad["volumeMounts"] = [{"name": "v", "mountPath": "/mnt", "subPath": "escape"}]
    pod = manifest(
        name,
        [ok, bad],
        volumes=[{"name": "v", "hostPath": {"path": str(volume)}}],
    )
    proc = start(tmp_path, pod)

    def refused():
        try:
            waiting = container_status(state(name)["status"], "bad")["state"].get("waiting")
        except (AssertionError, FileNotFoundError, KeyError):
            return None
        return waiting if waiting and "leaves its volume" in waiting.get("message", "") else None

    # As the kubelet does, the container waits in CreateContainerError and
    # is retried; it never runs.
    waiting = wait_for(refused, "bad to be refused")
    assert waiting["reason"] == "CreateContainerError"
    assert waiting["message"] == 'subPath "escape" leaves its volume'
    rc, out, err = stop(proc)
    assert "root:" not in out
    assert 'subPath "escape" leaves its volume' in err


def caps_of(lines):
    fields = dict(line.split(":\t") for line in lines if ":\t" in line)
    return fields


def test_capabilities_are_the_default_set_and_no_new_privs_when_asked(tmp_path, name):
    script = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
    default = container("default", script)
    strict = container("strict", script, securityContext={"allowPrivilegeEscalation": False})
    tuned = container(
        "tuned", script, securityContext={"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}
    )
    user = container("user", script + "; id -u", securityContext={"runAsUser": 1000})
    result = up(tmp_path, manifest(name, [default, strict, tuned, user]))
    assert result.returncode == 0, result.stderr
    d = caps_of(output_of(result.stdout, "default"))
    assert d == {"CapEff": "00000000a80425fb", "CapBnd": "00000000a80425fb", "NoNewPrivs": "0"}
    s = caps_of(output_of(result.stdout, "strict"))
    assert s["NoNewPrivs"] == "1" and s["CapEff"] == "00000000a80425fb"
    t = caps_of(output_of(result.stdout, "tuned"))
    assert t["CapEff"] == t["CapBnd"] == f"{1 << 12:016x}"
    u_lines = output_of(result.stdout, "user")
    u = caps_of(u_lines)
    assert u["CapEff"] == "0000000000000000" and u_lines[-1] == "1000"


def test_a_container_sees_only_its_own_processes_and_a_read_only_sys(tmp_path, name):
    c = container(
        "c",
        "ls /proc | grep -c '^[0-9]'; "
        "if echo 1 > /sys/kernel/profiling 2>/dev/null; then echo sys-writable; fi; "
        "if echo 1 > /proc/sys/kernel/panic 2>/dev/null; then echo proc-sys-writable; fi",
    )
    result = up(tmp_path, manifest(name, [c]))
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "c")
    # sh, ls and grep at most.
    assert int(out[0]) <= 3, out
    assert "sys-writable" not in out and "proc-sys-writable" not in out


def test_exec_of_a_missing_binary_is_a_start_error(tmp_path, name):
    missing = {"name": "missing", "image": "rootfs:/", "command": ["/no/such/binary"]}
    unknown = {"name": "unknown", "image": "rootfs:/", "command": ["no-such-command-podrun"]}
    result = up(tmp_path, manifest(name, [missing, unknown]))
    assert result.returncode == 1
    assert 'exec "/no/such/binary": No such file or directory' in result.stderr
    assert 'exec: "no-such-command-podrun": executable file not found in $PATH' in result.stderr
    for c in ("missing", "unknown"):
        terminated = container_status(status(name), c)["state"]["terminated"]
        assert terminated["reason"] == "StartError"
        assert terminated["exitCode"] == 128


def running_pod(tmp_path, name):
    """A pod with a sidecar, an app, a Memory emptyDir and a hostPath,
    running: (Popen, its state)."""
    side = container("side", "trap 'exit 0' TERM; while true; do sleep 0.1; done", restartPolicy="Always")
    app = container("app", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    app["volumeMounts"] = [{"name": "m", "mountPath": "/mnt"}, {"name": "h", "mountPath": "/srv"}]
    pod = manifest(
        name,
        [app],
        init=[side],
        volumes=[
            {"name": "m", "emptyDir": {"medium": "Memory"}},
            {"name": "h", "hostPath": {"path": str(tmp_path / "host"), "type": "DirectoryOrCreate"}},
        ],
    )
    proc = start(tmp_path, pod)
    wait_for(lambda: running(name, ["side", "app"]), "the pod to run")
    s = state(name)
    # While it runs, the checks below have something to find.
    assert any(m.startswith(s["dirs"]["run"] + "/ns/") for m in mount_points())
    assert processes_in(f"/podrun/{s['uid']}")
    assert leftovers(s)
    record = wait_for(lambda: (r := network_record(name)) and r.get("result") and r, "its network record")
    assert network_leftovers(record)
    s["record"] = record
    return proc, s


def test_teardown_leaves_nothing_behind(tmp_path, name):
    proc, s = running_pod(tmp_path, name)
    rc, out, err = stop(proc)
    assert leftovers(s) == [], err
    assert network_leftovers(s["record"]) == []
    assert (tmp_path / "host").is_dir()
    final = status(name)
    assert final["phase"] in ("Succeeded", "Failed")
    assert rc == (0 if final["phase"] == "Succeeded" else 1), err


def test_down_cleans_up_after_a_supervisor_that_died(tmp_path, name, podrun):
    proc, s = running_pod(tmp_path, name)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # The containers outlive their supervisor until down.
    assert processes_in(f"/podrun/{s['uid']}")
    result = podrun("down", name)
    assert result.returncode == 0, result.stderr
    assert leftovers(s) == []
    assert network_leftovers(s["record"]) == []
    again = podrun("down", name)
    assert again.returncode == 0, again.stderr


def test_a_name_in_use_is_refused_and_nothing_is_touched(tmp_path, name):
    proc, s = running_pod(tmp_path, name)
    try:
        second = up(tmp_path, manifest(name, [container("c", "true")]))
        assert second.returncode == 1
        assert f'pod "{name}" already exists' in second.stderr
        assert state(name)["uid"] == s["uid"]
    finally:
        stop(proc)


@pytest.mark.skipif(IN_VM, reason="the VM has every controller: limits are enforced there")
def test_on_the_hybrid_host_limits_are_said_to_be_unenforced(tmp_path, name):
    c = container("c", "true", resources={"limits": {"memory": "64Mi", "cpu": "500m"}})
    result = up(tmp_path, manifest(name, [c]))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("pod limits are not enforced") == 1
    conditions = {c["type"]: c for c in status(name)["conditions"]}
    assert conditions["podrun.io/LimitsEnforced"]["status"] == "False"


def test_a_fast_writer_is_not_held_up_by_an_unread_stdout(tmp_path, name):
    """Nobody reads `up`'s stdout here; the container still runs to its end
    and its log file has every line, in order."""
    lines = 200_000
    writer = container("writer", f"seq 1 {lines}; echo done >&2")
    proc = subprocess.Popen(
        [str(podrun_bin()), "up", str(write(tmp_path, manifest(name, [writer])))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        proc.communicate()
    log = Path(state(name)["containers"]["writer"]["log"])
    records = log.read_text().splitlines()
    stdout = [r.split(" ", 3)[3] for r in records if r.split(" ", 3)[1] == "stdout"]
    assert stdout == [str(i) for i in range(1, lines + 1)]
    assert [r.split(" ", 3)[1:] for r in records if " stderr " in r] == [["stderr", "F", "done"]]
    assert log.name == "0.log" and log.parent.name == "writer"


def test_share_process_namespace_shows_each_containers_processes(tmp_path, name):
    side = container("side", "exec sleep 3600", restartPolicy="Always")
    # Each process's command line, NULs made spaces.
    cmdlines = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
    app = container(
        "app",
        f"for i in $(seq 100); do {cmdlines} | grep -q '^sleep 3600 $' && break; sleep 0.1; done; "
        f"{cmdlines} | grep -c '^sleep 3600 $'; "
        "echo self=$$",
    )
    pod = manifest(name, [app], init=[side], shareProcessNamespace=True)
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    out = output_of(result.stdout, "app")
    assert out[0] == "1", out
    # PID 1 is podrun's own reaper (what the pause process is in
    # Kubernetes), not a container's process.
    assert out[1].startswith("self=") and out[1] != "self=1", out


def test_host_namespaces_when_asked(tmp_path, name):
    c = container(
        "c",
        "hostname; ls /proc | grep -c '^[0-9]'; ipcs -q | grep -c '^0x' || true",
    )
    pod = manifest(name, [c], hostNetwork=True, hostPID=True, hostIPC=True)
    # A queue on the host that a hostIPC pod sees.
    key = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
    qid = key.strip().split()[-1]
    try:
        result = up(tmp_path, pod)
    finally:
        subprocess.run(["ipcrm", "-q", qid], check=False)
    assert result.returncode == 0, result.stderr
    hostname, processes, queues = output_of(result.stdout, "c")
    assert hostname == subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert int(processes) > 5
    assert int(queues) >= 1


def test_privileged_gets_what_podrun_holds_and_masks_stay_for_others(tmp_path, name):
    held = int(
        next(
            line.split()[1]
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("CapPrm:")
        ),
        16,
    )
    # A masked file this kernel has (masks cover /dev/null: empty).
    masked = next(f for f in ("/proc/timer_list", "/proc/keys", "/proc/kcore") if Path(f).exists())
    script = f"grep '^CapEff' /proc/self/status; wc -c < {masked}"
    privileged = container("privileged", script, securityContext={"privileged": True})
    plain = container("plain", script)
    result = up(tmp_path, manifest(name, [privileged, plain]))
    assert result.returncode == 0, result.stderr
    p = output_of(result.stdout, "privileged")
    assert int(p[0].split()[1], 16) == held
    assert output_of(result.stdout, "plain")[1] == "0"
    assert int(p[1]) > 0


def test_read_only_volumes_keep_their_mount_flags_and_dev_mounts_work(tmp_path, name):
    device_like = tmp_path / "device"
    device_like.write_text("from-host\n")
    c = container("c", "grep ' /mnt ' /proc/mounts; cat /dev/podrun/thing")
    c["volumeMounts"] = [
        {"name": "m", "mountPath": "/mnt", "readOnly": True},
        {"name": "d", "mountPath": "/dev/podrun/thing"},
    ]
    pod = manifest(
        name,
        [c],
        volumes=[
            {"name": "m", "emptyDir": {"medium": "Memory"}},
            {"name": "d", "hostPath": {"path": str(device_like), "type": "File"}},
        ],
    )
    result = up(tmp_path, pod)
    assert result.returncode == 0, result.stderr
    mount_line, content = output_of(result.stdout, "c")
    options = mount_line.split()[3].split(",")
    assert "ro" in options and "nosuid" in options and "nodev" in options, mount_line
    assert content == "from-host"
