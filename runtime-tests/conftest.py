"""Shared fixtures: the podrun binary under test, run as a user runs it;
the test image (scripts/build-test-image), built once and imported once.

PODRUN_BIN names the binary (default: <repo>/target/release/podrun).
PODRUN_IN_VM=1 says the tests run inside scripts/vm-test's VM (full cgroup v2).
"""

import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from images import build_test_image
from podrun_host import enter_node_namespace

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
IN_VM = os.environ.get("PODRUN_IN_VM") == "1"

# Pods join a CNI network: its bridge, addresses and firewall rules go into
# a network namespace of this test session's own, standing for the node,
# never into the machine's. Everything the tests start (podrun, the test
# registry, the clients) is in it; it ends with the session.
# The node has no network configuration of its own (whatever the
# machine's /etc/cni/net.d holds): pods join podrun's default network
# unless a test gives one.
if os.geteuid() == 0:
    NODE_IPS = enter_node_namespace()
    os.environ["PODRUN_CNI_CONF_DIR"] = tempfile.mkdtemp(prefix="podrun-tests-net.d-")


def podrun_bin() -> Path:
    return Path(os.environ.get("PODRUN_BIN") or REPO / "target" / "release" / "podrun")


@pytest.fixture(scope="session", autouse=True)
def _as_root_with_a_binary():
    """Every test errors, loudly, when not root or when there is no binary:
    these tests exist to run as root, so skipping them would hide that they
    never ran."""
    if os.geteuid() != 0:
        pytest.fail(
            f"runtime-tests must run as root (euid is {os.geteuid()}): "
            "they drive podrun as the node's root user does",
            pytrace=False,
        )
    binary = podrun_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"no podrun binary at {binary}: run `cargo build --release --locked` "
            "or set PODRUN_BIN",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def podrun():
    """podrun(*args, input=None, timeout=60) -> CompletedProcess (text, captured)."""

    def run(*args, input=None, timeout=60, env=None):
        return subprocess.run(
            [str(podrun_bin()), *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    return run


@pytest.fixture
def name(request):
    """A unique pod name for the test, removed (with everything of it)
    afterwards by `podrun rm --force`."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    pod = f"{stem}-{uuid.uuid4().hex[:8]}"
    yield pod
    subprocess.run(
        [str(podrun_bin()), "rm", "--force", pod], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="session")
def test_image(tmp_path_factory):
    """The test image (an `images.Image`): busybox-static in an OCI layout,
    built once by scripts/build-test-image into a temporary directory."""
    return build_test_image(tmp_path_factory.mktemp("test-image") / "layout")


@pytest.fixture(scope="session")
def busybox_image(test_image, podrun):
    """The test image imported into podrun's store, under a name of this
    session's own (`podrun.local/podrun-test-<hex>/busybox:1.35`) so that a
    user's `podrun.local/busybox:1.35` is never replaced or removed. At the
    end it is removed, and `podrun image prune` drops what no image uses
    any more (a user's images keep theirs)."""
    ref = f"podrun.local/podrun-test-{uuid.uuid4().hex[:12]}/busybox:1.35"
    result = podrun("image", "import", test_image.source, ref, timeout=120)
    assert result.returncode == 0, f"podrun image import {test_image.source} {ref}: {result.stderr}"
    assert result.stdout.split() == [ref, test_image.manifest_digest], result.stdout
    yield ref
    podrun("image", "rm", ref)
    podrun("image", "prune")
