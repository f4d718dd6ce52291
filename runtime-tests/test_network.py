"""Pod networking: each pod joins a CNI network (podrun's default one, or
the node's configuration) with the plugins of Debian's
containernetworking-plugins, publishes its hostPorts through portmap, and
leaves nothing of it behind.

Every test runs in the test session's own network namespace, standing for
the node (conftest.py): the bridge, the addresses and the rules are made
there, and traffic goes only to addresses inside it.
"""

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import podrun_bin
from podrun_host import (
    NODE_IP,
    firewall_rules,
    host_interfaces,
    links,
    network_leftovers,
    network_record,
    reservations,
)
from pods import container, manifest, running, start, state, status, stop, up, wait_for, write

PLUGINS = Path("/usr/lib/cni")
# busybox's httpd in the foreground, ended by SIGTERM (a container's PID 1
# has no default action for it).
HTTPD = ("d=/tmp/www-$$; mkdir -p $d && echo hello from $(hostname) > $d/index.html; "
         "trap 'rm -rf $d; exit 0' TERM; busybox httpd -f -p 8080 -h $d & wait")


@pytest.fixture(autouse=True)
def _plugins_installed():
    missing = [p for p in ("bridge", "host-local", "portmap", "firewall", "bandwidth", "loopback")
               if not (PLUGINS / p).exists()]
    if missing:
        pytest.fail(f"CNI plugins {missing} are not in {PLUGINS}: scripts/setup installs containernetworking-plugins",
                    pytrace=False)


@pytest.fixture
def conf_dir(tmp_path, monkeypatch):
    """An empty CNI configuration directory, given to podrun (and so to
    everything the test starts) through PODRUN_CNI_CONF_DIR: podrun's
    default network, whatever /etc/cni/net.d holds."""
    d = tmp_path / "net.d"
    d.mkdir()
    monkeypatch.setenv("PODRUN_CNI_CONF_DIR", str(d))
    return d


def fetch(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def answers(url):
    try:
        return fetch(url)
    except OSError:
        return None


def httpd_pod(name, host_port=None, host_ip=None):
    port = {"containerPort": 8080, "protocol": "TCP"}
    if host_port:
        port["hostPort"] = host_port
    if host_ip:
        port["hostIP"] = host_ip
    web = container("web", HTTPD, ports=[port])
    return manifest(name, [web])


def serving(tmp_path, pod):
    """Starts `pod` (an httpd pod) with `up -d` and waits until it answers
    on its pod IP: (its status, its network record)."""
    name = pod["metadata"]["name"]
    result = subprocess.run([str(podrun_bin()), "up", "-d", str(write(tmp_path, pod))],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    s = status(name)
    assert s.get("podIP"), s
    wait_for(lambda: answers(f"http://{s['podIP']}:8080/"), f"{name} to answer on {s['podIP']}:8080")
    return s, network_record(name)


def down(name):
    result = subprocess.run([str(podrun_bin()), "down", name], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_pod_answers_on_its_ip_and_on_its_host_port(tmp_path, name, conf_dir):
    s, record = serving(tmp_path, httpd_pod(name, host_port=18080))
    ip = s["podIP"]
    assert s["podIPs"] == [{"ip": ip}]
    assert s["hostIP"] == NODE_IP and s["hostIPs"] == [{"ip": NODE_IP}]
    assert ip.startswith("10.89."), ip
    assert fetch(f"http://{ip}:8080/") == f"hello from {name}\n"
    # Published on the node: on its loopback and on its own address.
    assert fetch("http://127.0.0.1:18080/") == f"hello from {name}\n"
    assert fetch(f"http://{NODE_IP}:18080/") == f"hello from {name}\n"
    assert record["network"]["name"] == "podrun" and record["network"]["file"] is None
    assert [p["type"] for p in record["network"]["plugins"]] == ["bridge", "portmap", "firewall", "bandwidth", "loopback"]
    assert host_interfaces(record), record
    assert network_leftovers(record), "nothing to find while the pod runs"
    ps = subprocess.run([str(podrun_bin()), "ps", "-o", "wide"], capture_output=True, text=True, timeout=30)
    (row,) = [l for l in ps.stdout.splitlines() if l.startswith(name + " ")]
    assert row.split()[5] == ip, ps.stdout
    assert ps.stdout.splitlines()[0].split()[5:] == ["IP", "NODE"]
    down(name)
    assert network_leftovers(record) == []
    assert answers("http://127.0.0.1:18080/") is None
    # The status keeps the address the pod had, as the kubelet's does.
    assert status(name)["podIP"] == ip


def test_a_host_port_on_a_host_ip_is_published_there_only(tmp_path, name, conf_dir):
    s, record = serving(tmp_path, httpd_pod(name, host_port=18081, host_ip=NODE_IP))
    assert fetch(f"http://{NODE_IP}:18081/") == f"hello from {name}\n"
    assert answers("http://127.0.0.1:18081/") is None
    down(name)
    assert network_leftovers(record) == []


def test_two_pods_reach_each_other_by_ip(tmp_path, name, conf_dir):
    s, server_record = serving(tmp_path, httpd_pod(name))
    client_name = name[:50] + "-c"
    client = container("client", f"busybox wget -q -O - http://{s['podIP']}:8080/ && hostname -i")
    result = up(tmp_path, manifest(client_name, [client]))
    try:
        assert result.returncode == 0, result.stderr
        lines = [l.split(" | ", 1)[1] for l in result.stdout.splitlines() if l.startswith("client | ")]
        assert lines[0] == f"hello from {name}"
        client_ip = status(client_name)["podIP"]
        assert client_ip != s["podIP"] and lines[1].split() == [client_ip]
    finally:
        subprocess.run([str(podrun_bin()), "rm", "--force", client_name], capture_output=True, timeout=60)
    down(name)
    assert network_leftovers(server_record) == []


def test_the_downward_api_and_etc_hosts_have_the_pods_address(tmp_path, name, conf_dir):
    show = container(
        "show",
        'echo "ip=$POD_IP ips=$POD_IPS host=$HOST_IP hosts=$HOST_IPS url=$URL"; cat /etc/hosts',
        env=[
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080"},
        ],
    )
    result = up(tmp_path, manifest(name, [show], subdomain="sub"))
    assert result.returncode == 0, result.stderr
    ip = status(name)["podIP"]
    out = [l.split(" | ", 1)[1] for l in result.stdout.splitlines() if l.startswith("show | ")]
    assert out[0] == f"ip={ip} ips={ip} host={NODE_IP} hosts={NODE_IP} url=http://{ip}:8080"
    assert f"{ip}\t{name}.sub\t{name}" in out
    assert not any(l.endswith(f"\t{name}") and l.startswith("127.") for l in out), out


def test_a_host_network_pod_has_the_nodes_address_and_no_cni(tmp_path, name, conf_dir):
    show = container("show", 'echo "ip=$POD_IP"',
                     env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])
    result = up(tmp_path, manifest(name, [show], hostNetwork=True))
    assert result.returncode == 0, result.stderr
    s = status(name)
    assert s["podIP"] == NODE_IP and s["hostIP"] == NODE_IP
    assert f"show | ip={NODE_IP}" in result.stdout
    assert network_record(name) is None


def test_a_host_port_held_by_another_pod_is_refused_and_nothing_is_made(tmp_path, name, conf_dir):
    s, record = serving(tmp_path, httpd_pod(name, host_port=18082))
    other = name[:50] + "-b"
    before = snapshot()
    result = up(tmp_path, httpd_pod(other, host_port=18082))
    try:
        assert result.returncode != 0
        assert f'hostPort 18082/tcp is already taken by pod "{name}"' in result.stderr, result.stderr
        assert snapshot() == before
        assert not Path("/run/podrun", other).exists()
        # The first pod still answers there.
        assert fetch("http://127.0.0.1:18082/") == f"hello from {name}\n"
    finally:
        subprocess.run([str(podrun_bin()), "rm", "--force", other], capture_output=True, timeout=60)
    down(name)
    # Once it is down the port is free again.
    s2, record2 = serving(tmp_path, httpd_pod(other, host_port=18082))
    try:
        assert fetch("http://127.0.0.1:18082/") == f"hello from {other}\n"
    finally:
        down(other)
        subprocess.run([str(podrun_bin()), "rm", "--force", other], capture_output=True, timeout=60)
    assert network_leftovers(record2) == []


def snapshot():
    """The node's links, address reservations and rules."""
    return sorted(links()), sorted(reservations()), sorted(firewall_rules())


def refused(tmp_path, name, conf_dir_files, expected):
    """`up` of a pod on the network of `conf_dir_files` fails at once with
    each of `expected` in its message, and leaves nothing anywhere."""
    before = snapshot()
    result = up(tmp_path, httpd_pod(name, host_port=18090))
    assert result.returncode != 0, result.stdout
    for e in expected:
        assert e in result.stderr, result.stderr
    assert snapshot() == before
    assert not Path("/run/podrun", name).exists()
    return result


def test_a_missing_plugin_is_refused_naming_the_file_and_plugin(tmp_path, name, conf_dir):
    f = conf_dir / "10-mine.conflist"
    f.write_text(json.dumps({"cniVersion": "1.0.0", "name": "mine", "plugins": [
        {"type": "bridge", "bridge": "mine0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]]}},
        {"type": "no-such-plugin"}]}))
    refused(tmp_path, name, f, [str(f), 'plugin "no-such-plugin" not found in /opt/cni/bin, /usr/lib/cni'])


def test_a_bad_configuration_is_refused_naming_the_file(tmp_path, name, conf_dir):
    f = conf_dir / "10-bad.conflist"
    f.write_text('{"cniVersion": "1.0.0", "name": "bad", "plugins": [')
    refused(tmp_path, name, f, [f"{f}: not a CNI network configuration"])


def test_a_host_port_without_portmap_is_refused(tmp_path, name, conf_dir):
    f = conf_dir / "10-noports.conflist"
    f.write_text(json.dumps({"cniVersion": "1.0.0", "name": "noports", "plugins": [
        {"type": "bridge", "bridge": "noports0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24"}]]}}]}))
    refused(tmp_path, name, f, [str(f), "portMappings capability"])


def test_an_exhausted_subnet_is_refused_and_nothing_is_held(tmp_path, name, conf_dir):
    f = conf_dir / "10-tiny.conflist"
    f.write_text(json.dumps({"cniVersion": "1.0.0", "name": "tiny", "plugins": [
        {"type": "bridge", "bridge": "tiny0", "isGateway": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.79.0.0/29", "rangeStart": "10.79.0.2", "rangeEnd": "10.79.0.2"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"}]}))
    first, record = serving(tmp_path, httpd_pod(name))
    assert first["podIP"] == "10.79.0.2"
    assert record["network"]["file"] == str(f)
    second = name[:50] + "-2"
    try:
        result = refused(tmp_path, second, f, [str(f), 'plugin "bridge" failed', "no IP addresses available"])
        assert 'network "tiny"' in result.stderr
    finally:
        subprocess.run([str(podrun_bin()), "rm", "--force", second], capture_output=True, timeout=60)
    down(name)
    assert network_leftovers(record) == []


def test_down_after_a_killed_supervisor_releases_the_address(tmp_path, name, conf_dir):
    pod = httpd_pod(name, host_port=18083)
    proc = start(tmp_path, pod)
    wait_for(lambda: running(name, ["web"]), "the pod to run")
    record = wait_for(lambda: (r := network_record(name)) and r.get("result") and r, "its network record")
    wait_for(lambda: answers("http://127.0.0.1:18083/"), "its host port to answer")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # The pod keeps its network until down.
    assert network_leftovers(record)
    result = subprocess.run([str(podrun_bin()), "down", name], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert network_leftovers(record) == []
    assert answers("http://127.0.0.1:18083/") is None
    again = subprocess.run([str(podrun_bin()), "down", name], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr


def test_down_from_another_network_namespace_tears_down_in_the_nodes(tmp_path, name, conf_dir):
    s, record = serving(tmp_path, httpd_pod(name, host_port=18084))
    # `down` run from elsewhere (a namespace of its own) still removes
    # the rules from the node's namespace, where ADD made them.
    result = subprocess.run(["unshare", "--net", str(podrun_bin()), "down", name],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert network_leftovers(record) == []


def test_info_shows_the_network_in_use(conf_dir):
    result = subprocess.run([str(podrun_bin()), "info", "-o", "json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    net = json.loads(result.stdout)["network"]
    assert net["name"] == "podrun" and net["source"] == "default" and net["subnet"] == "10.89.0.0/16"
    assert net["plugins"] == ["bridge", "portmap", "firewall", "bandwidth", "loopback"]
    assert net["confDir"] == str(conf_dir) and net["nodeIps"] == [NODE_IP]
    assert "error" not in net
    text = subprocess.run([str(podrun_bin()), "info"], capture_output=True, text=True, timeout=30).stdout
    assert "network      podrun (default on 10.89.0.0/16): bridge, portmap, firewall, bandwidth, loopback" in text


def qdiscs(dev):
    return subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True, text=True).stdout


def test_bandwidth_annotations_shape_the_pods_traffic(tmp_path, name, conf_dir):
    pod = httpd_pod(name)
    pod["metadata"]["annotations"] = {"kubernetes.io/ingress-bandwidth": "1M",
                                      "kubernetes.io/egress-bandwidth": "2M"}
    before = links()
    s, record = serving(tmp_path, pod)
    # Into the pod: a token bucket on the veth's node end; out of it: on an
    # ifb the plugin makes for the pod (the result names both).
    ours = host_interfaces(record)
    (veth,) = [i for i in ours if i.startswith("veth")]
    (ifb,) = [i for i in ours if i != veth]
    assert links() - before - {"podrun0"} == {veth, ifb}
    assert "tbf" in qdiscs(veth) and "rate 1Mbit" in qdiscs(veth), qdiscs(veth)
    assert "rate 2Mbit" in qdiscs(ifb), qdiscs(ifb)
    assert fetch(f"http://{s['podIP']}:8080/") == f"hello from {name}\n"
    down(name)
    assert network_leftovers(record) == []
    assert ifb not in links()


def test_bad_or_unshapeable_bandwidth_annotations_are_refused(tmp_path, name, conf_dir):
    pod = httpd_pod(name)
    pod["metadata"]["annotations"] = {"kubernetes.io/egress-bandwidth": "10"}
    result = up(tmp_path, pod)
    assert result.returncode == 2
    assert '"10" is unreasonably small (< 1kbit)' in result.stderr, result.stderr
    pod["metadata"]["annotations"] = {"kubernetes.io/egress-bandwidth": "10M"}
    pod["spec"]["hostNetwork"] = True
    result = up(tmp_path, pod)
    assert result.returncode == 2
    assert "a hostNetwork pod has no interface of its own to shape" in result.stderr, result.stderr
    assert not Path("/run/podrun", name).exists()
