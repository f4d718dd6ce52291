"""The binary's verbs on the repository's examples, checked as a user sees them:
exit codes, what is printed, and JSON that tools can read."""

import json
import re

import pytest

from conftest import EXAMPLES

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def top_level_name(text: str, where) -> str:
    """metadata.name of a manifest's top level, read without a YAML library:
    the first `  name:` line under the column-0 `metadata:` line."""
    in_metadata = False
    for line in text.splitlines():
        if re.match(r"^metadata:\s*$", line):
            in_metadata = True
        elif in_metadata and re.match(r"^\S", line):
            break
        elif in_metadata:
            m = re.match(r"^  name:\s*['\"]?([^'\"\s#]+)", line)
            if m:
                return m.group(1)
    raise AssertionError(f"{where}: no top-level metadata.name")


def pod_names(path) -> list:
    """The names of the example's pods: its Pod, Job and Deployment
    documents' (a file may hold ConfigMaps and Secrets too)."""
    documents = re.split(r"^---\s*$", path.read_text(), flags=re.M)
    return [
        top_level_name(d, path)
        for d in documents
        if re.search(r"^kind:\s*(Pod|Job|Deployment)\s*$", d, flags=re.M)
    ]


def test_the_examples_are_there():
    names = {p.name for p in EXAMPLE_FILES}
    assert "all-kinds.yaml" in names, f"examples found: {sorted(names)}"


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_validate_example(podrun, example):
    result = podrun("validate", example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"pod/{n} valid" for n in pod_names(example)]


def test_validate_reads_standard_input(podrun):
    example = EXAMPLES / "all-kinds.yaml"
    result = podrun("validate", "-", input=example.read_text())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"pod/{n} valid" for n in pod_names(example)]


def test_plan_json(podrun):
    result = podrun("plan", EXAMPLES / "all-kinds.yaml", "-o", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {"pod", "qosClass", "effective", "cgroup", "oomScoreAdj", "startOrder"} <= set(plan)
    assert plan["pod"] == "web"
    assert plan["qosClass"] == "Burstable"
    # The figures the example's own header comment works out.
    requests = plan["effective"]["requests"]
    assert requests["cpuMillis"] == 1750
    assert requests["memoryBytes"] == 448 * 2**20


BAD_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
{spec}
"""


@pytest.mark.parametrize(
    "spec, path",
    [
        (
            "  bogus: 1\n  containers:\n    - name: app\n      image: busybox",
            "spec.bogus",
        ),
        (
            "  containers:\n    - name: app\n      image: busybox\n      imagePullPolicyy: Always",
            "spec.containers[0].imagePullPolicyy",
        ),
    ],
    ids=["spec", "container"],
)
def test_validate_unknown_field(podrun, tmp_path, spec, path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_POD.format(spec=spec))
    result = podrun("validate", manifest)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert path in result.stderr, result.stderr
    assert "valid" not in result.stdout
