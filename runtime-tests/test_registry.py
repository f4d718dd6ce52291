"""Pulling images from registries: `podrun image pull`, `login`, `logout`,
`image ls`'s source, and pods pulling their images as the kubelet does
(imagePullPolicy and its defaults, ErrImagePull and ImagePullBackOff, the
Pulling, Pulled, Failed and BackOff events), against real registries on
127.0.0.1 (registry.py): Debian's docker-registry anonymous, with basic
auth and with token auth, a registry in Python serving a bad blob, and a
port with nothing listening. Every credential source (REGISTRY_AUTH_FILE,
/run/containers/0/auth.json through `podrun login`, DOCKER_CONFIG,
imagePullSecrets in the manifest's file or given with `--secret`), TLS
through certs.d, registries.conf mirrors, and the "Sidecar Containers"
page's Deployment and Job run unchanged with `alpine:latest` served by a
mirror of docker.io on the loopback. On the host and in the VM.

The `test_fixture_*` tests prove the registries with skopeo alone, so that
a failure of the others is podrun's.

Nothing leaves this machine: every server listens on 127.0.0.1, the
registries.conf of a mirror test sends docker.io's own location to the
loopback too, and podrun is given its certificates, registries.conf and
credentials through its environment (registry.ClientConfig), never /etc.
Every repository is the test's own (`podrun-test/<stem>-<hex>`); the images
pulled are removed at the end, and a user's docker.io/library/alpine:latest
is put back as it was.
"""

import base64
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import podrun_bin
from images import hex_of, store_trees, tree_diff, write_layout
from pods import container, container_status, image_container, manifest, output_of, running, state, stop, wait_for
from registry import (  # noqa: F401 - the fixtures are used by name
    BAD_BLOB_MODES,
    PLATFORMS,
    USER,
    ClientConfig,
    Registry,
    bad_blob_image,
    basic,
    changed_pair,
    client,
    down_address,
    fake_registry,
    pki,
    platform_name,
    pull_secret,
    registry_anon,
    registry_basic,
    registry_token,
    skopeo,
    write_index_layout,
    yaml_documents,
)
from test_images import assert_store_unchanged

DATA = Path(__file__).resolve().parent / "data"
# The "Sidecar Containers" page's manifests, copied verbatim: their pods'
# names, and their image.
SIDECAR_DEPLOYMENT = DATA / "sidecar-deployment.yaml"
SIDECAR_JOB = DATA / "sidecar-job.yaml"
ALPINE = "docker.io/library/alpine:latest"
RUN_AUTH = Path("/run/containers/0/auth.json")
LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
# Pulls through the VM's emulated CPU take their time.
PULL_TIMEOUT = 300


def unique() -> str:
    return uuid.uuid4().hex[:8]


# --- fixtures ------------------------------------------------------------------------


class Repos:
    """Repository names of one test's own; every image of the store whose
    reference holds one of them is removed at the end."""

    def __init__(self, stem):
        self.stem, self.made = stem, []

    def new(self, what="image"):
        self.made.append(f"podrun-test/{self.stem}-{what}-{unique()}")
        return self.made[-1]


@pytest.fixture
def repos(request, podrun):
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    made = Repos(stem)
    yield made
    listed = podrun("image", "ls", "-o", "json")
    if listed.returncode == 0:
        for image in json.loads(listed.stdout or "[]"):
            reference = image.get("reference", "")
            if any(repo in reference for repo in made.made):
                podrun("image", "rm", reference)
    podrun("image", "prune")


@pytest.fixture
def pods(request, repos):
    """new() -> a unique pod name; each is removed (`rm --force`) at the
    end, before the test's images (this fixture needs `repos`, so it ends
    first)."""
    made = []
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")

    def new():
        made.append(f"{stem}-{unique()}")
        return made[-1]

    yield new
    for pod in made:
        subprocess.run([str(podrun_bin()), "rm", "--force", pod], capture_output=True, timeout=120)


@pytest.fixture
def run_auth_json():
    """/run/containers/0/auth.json (podrun login's default) as it was before
    the test, put back after it: its content, or its absence and that of
    the directories login made."""
    made = [d for d in (RUN_AUTH.parent.parent, RUN_AUTH.parent) if not d.exists()]
    before = RUN_AUTH.read_bytes() if RUN_AUTH.exists() else None
    yield RUN_AUTH
    if before is None:
        RUN_AUTH.unlink(missing_ok=True)
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass
    else:
        RUN_AUTH.write_bytes(before)


@pytest.fixture
def docker_io_alpine(tmp_path, podrun):
    """docker.io/library/alpine:latest in podrun's store is the test's: a
    user's is copied out of the store (an OCI layout) by skopeo first and
    imported back at the end."""
    saved = None
    if podrun("image", "inspect", ALPINE).returncode == 0:
        saved = tmp_path / "users-alpine"
        copied = skopeo(tmp_path, "copy", "-q", f"oci:/var/lib/podrun/images:{ALPINE}", f"oci:{saved}:{ALPINE}")
        assert copied.returncode == 0, f"saving the store's {ALPINE}: {copied.stderr}"
    yield ALPINE
    podrun("image", "rm", ALPINE)
    if saved:
        back = podrun("image", "import", f"oci:{saved}:{ALPINE}", ALPINE, timeout=PULL_TIMEOUT)
        assert back.returncode == 0, f"putting the user's {ALPINE} back: {back.stderr}"
    podrun("image", "prune")


@pytest.fixture(scope="session")
def alpine_in_registry(registry_anon, test_image):
    """The test image pushed to the anonymous registry as
    library/alpine:latest (what a mirror of docker.io serves for
    `alpine:latest`); its digest."""
    return registry_anon.push(test_image.source, "library/alpine", "latest")


# --- helpers -------------------------------------------------------------------------


def pull(podrun, ref, client, *args):
    return podrun("image", "pull", ref, *args, env=client.env(), timeout=PULL_TIMEOUT)


def pulled(podrun, ref, client, *args):
    """Pulls `ref`; the last line of stdout, split into the reference and the
    digest: (`NORMALISED_REF`, `sha256:...`)."""
    result = pull(podrun, ref, client, *args)
    assert result.returncode == 0, f"podrun image pull {ref} {' '.join(args)} failed: {result.stderr}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"podrun image pull {ref} printed nothing on stdout (stderr: {result.stderr})"
    reference, _, digest = lines[-1].rpartition("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), lines[-1]
    return reference, digest


def listed(podrun, repo_or_ref):
    """The images of `podrun image ls -o json` whose reference holds
    `repo_or_ref`."""
    result = podrun("image", "ls", "-o", "json")
    assert result.returncode == 0, result.stderr
    return [i for i in json.loads(result.stdout) if repo_or_ref in i.get("reference", "")]


def inspect_config(podrun, ref):
    result = podrun("image", "inspect", ref)
    assert result.returncode == 0, f"podrun image inspect {ref}: {result.stderr}"
    return json.loads(result.stdout)


def events(podrun, pod):
    result = podrun("events", pod, "-o", "json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def of(evs, container_name, reason=None):
    """The events of one container (any reason, or `reason`)."""
    return [e for e in evs if e.get("object", "").endswith(f"{{{container_name}}}")
            and (reason is None or e.get("reason") == reason)]


def pulled_message_ok(message, image):
    """The kubelet's Pulled after a pull: the image, the time, the size."""
    return message.startswith(f'Successfully pulled image "{image}" in ') and re.search(r"\d+ bytes", message)


def already_present(image):
    return f'Container image "{image}" already present on machine'


def write_pod(tmp_path, pod) -> Path:
    path = tmp_path / f"{pod['metadata']['name']}.yaml"
    path.write_text(yaml_documents(pod))
    return path


def up(podrun, path, client, *args, timeout=PULL_TIMEOUT):
    """`podrun up [ARGS] FILE` in the foreground, with the client's
    environment (its supervisor inherits it)."""
    return podrun("up", *args, path, env=client.env(), timeout=timeout)


def start(path, client, *args):
    """`podrun up [ARGS] FILE` in the background: Popen."""
    return subprocess.Popen([str(podrun_bin()), "up", *map(str, args), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=client.env())


def assert_images_unchanged(before, what):
    """The image store and layer cache as they were (pods come and go in
    /var/lib/podrun/pods meanwhile)."""
    after = store_trees()
    for part in ("images", "layers"):
        diff = tree_diff(before[part], after[part])
        assert not diff, f"{what} changed /var/lib/podrun/{part}:\n" + "\n".join(diff)


def listening_on(port):
    """The local addresses of the LISTEN sockets on `port`, from
    /proc/net/tcp and tcp6 (hex, as the kernel writes them)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state_ = line.split()[1], line.split()[3]
            address, _, hexport = local.rpartition(":")
            if state_ == "0A" and int(hexport, 16) == port:
                found.append(address)
    return found


# --- the fixtures, proven with skopeo -------------------------------------------------


def test_fixture_registries_listen_on_127_0_0_1_only_and_ask_for_their_auth(
    registry_anon, registry_basic, registry_token, fake_registry, pki
):
    ctx = pki.client_context()
    with urllib.request.urlopen(f"{registry_anon.url}/v2/", context=ctx, timeout=30) as r:
        assert r.status == 200
    for registry, scheme in ((registry_basic, "Basic"), (registry_token, "Bearer")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{registry.url}/v2/", context=ctx, timeout=30)
        assert refused.value.code == 401
        challenge = refused.value.headers["WWW-Authenticate"]
        assert challenge.startswith(scheme), challenge
    # The token registry sends clients to its token server.
    assert f'realm="{registry_token.token_server.realm}"' in challenge, challenge
    # 127.0.0.1, little-endian hex: nothing on every interface.
    ports = [registry_anon.port, registry_basic.port, registry_token.port,
             registry_token.token_server.server_address[1], fake_registry.server_address[1]]
    for port in ports:
        assert listening_on(port) == ["0100007F"], (port, listening_on(port))


@pytest.mark.parametrize("kind", ["anonymous", "basic", "token"])
def test_fixture_skopeo_pushes_to_and_copies_from_each_registry(
    kind, request, tmp_path, test_image, pki
):
    registry = request.getfixturevalue({"anonymous": "registry_anon", "basic": "registry_basic",
                                        "token": "registry_token"}[kind])
    repo = f"podrun-test/fixture-{kind}-{unique()}"
    digest = registry.push(test_image.source, repo, "1.0")
    assert digest == test_image.manifest_digest
    source = f"docker://{registry.ref(repo, '1.0')}"
    creds = ["--src-creds", registry.creds] if registry.creds else []
    copied = skopeo(tmp_path, "copy", "-q", "--src-cert-dir", pki.ca_dir, *creds, source, f"oci:{tmp_path / 'copy'}:x")
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [test_image.manifest_digest]
    layer = test_image.layers[0]
    assert (tmp_path / "copy" / "blobs" / "sha256" / hex_of(layer.digest)).read_bytes() == layer.blob
    assert layer.digest in registry.blob_gets(repo)

    # Without the CA, skopeo refuses the certificate.
    untrusted = skopeo(tmp_path, "inspect", *(["--creds", registry.creds] if registry.creds else []), source)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr, untrusted.stderr
    if registry.creds:
        for creds in ([], ["--creds", f"{USER}:wrong-{registry.password}"]):
            refused = skopeo(tmp_path, "inspect", "--cert-dir", pki.ca_dir, *creds, source)
            assert refused.returncode != 0, refused.stdout
            assert re.search(r"unauthorized|401|authentication required", refused.stderr, re.I), refused.stderr
    if kind == "token":
        issued = registry.token_server.issued
        assert (USER, [f"repository:{repo}:pull"], 200) in issued, issued
        assert any(user == USER and status == 401 for user, _, status in issued), issued


def test_fixture_an_index_of_three_platforms_is_pushed_whole(tmp_path, registry_anon, test_image, pki):
    repo = f"podrun-test/fixture-index-{unique()}"
    index = write_index_layout(tmp_path / "layout", test_image.layers, "multi")
    assert registry_anon.push(index.source, repo, "1.0", all_platforms=True) == index.digest
    source = f"docker://{registry_anon.ref(repo, '1.0')}"
    raw = skopeo(tmp_path, "inspect", "--raw", "--cert-dir", pki.ca_dir, source)
    assert raw.returncode == 0, raw.stderr
    pushed = json.loads(raw.stdout)
    assert [m["digest"] for m in pushed["manifests"]] == [index.manifests[platform_name(*p)] for p in PLATFORMS]
    for (os_, arch, variant) in PLATFORMS:
        override = ["--override-os", os_, "--override-arch", arch] + (["--override-variant", variant] if variant else [])
        config = skopeo(tmp_path, *override, "inspect", "--config", "--cert-dir", pki.ca_dir, source)
        assert config.returncode == 0, config.stderr
        assert json.loads(config.stdout) == index.configs[platform_name(os_, arch, variant)]


def test_fixture_a_changed_tag_shares_layers_and_blob_gets_are_counted(tmp_path, registry_anon, test_image, pki):
    repo = f"podrun-test/fixture-changed-{unique()}"
    v1, v2 = changed_pair(tmp_path, test_image.layers, unique())
    assert v2.layers[:-1] == v1.layers
    source = f"docker://{registry_anon.ref(repo, 'tag')}"
    layout = f"oci:{tmp_path / 'copy'}:x"
    registry_anon.push(v1.source, repo, "tag")
    copied = skopeo(tmp_path, "copy", "-q", "--src-cert-dir", pki.ca_dir, source, layout)
    assert copied.returncode == 0, copied.stderr
    assert sorted(registry_anon.blob_gets(repo)) == sorted([v1.config_digest, *(x.digest for x in v1.layers)])
    # The same tag, now v2: skopeo, into the same layout, fetches only
    # what it lacks.
    registry_anon.push(v2.source, repo, "tag")
    copied = skopeo(tmp_path, "copy", "-q", "--src-cert-dir", pki.ca_dir, source, layout)
    assert copied.returncode == 0, copied.stderr
    gets = registry_anon.blob_gets(repo)
    assert gets.count(v1.layers[-1].digest) == 1 and gets.count(v2.layers[-1].digest) == 1, gets
    assert gets.count(v2.config_digest) == 1, gets


@pytest.mark.parametrize("mode", BAD_BLOB_MODES)
def test_fixture_the_fake_registry_serves_the_manifest_and_config_and_a_bad_blob(
    mode, tmp_path, fake_registry, test_image, pki
):
    repo = f"podrun-test/fixture-bad-{mode}-{unique()}"
    image, bad = bad_blob_image(tmp_path, test_image.layers, unique())
    ref = fake_registry.serve(repo, "1.0", image, bad, mode)
    inspected = skopeo(tmp_path, "inspect", "--cert-dir", pki.ca_dir, f"docker://{ref}")
    assert inspected.returncode == 0, inspected.stderr
    facts = json.loads(inspected.stdout)
    assert facts["Digest"] == image.manifest_digest and facts["Layers"][-1] == bad
    with urllib.request.urlopen(f"https://{fake_registry.host}/v2/{repo}/blobs/{image.config_digest}",
                                context=pki.client_context(), timeout=30) as r:
        assert r.read() == image.blob(image.config_digest).read_bytes()
    copied = skopeo(tmp_path, "copy", "-q", "--src-cert-dir", pki.ca_dir, f"docker://{ref}", f"oci:{tmp_path / 'copy'}:x")
    assert copied.returncode != 0, f"skopeo copied the {mode} blob"
    expected = {"wrong-digest": r"digest", "truncated": r"size|unexpected EOF|digest",
                "closed-early": r"EOF|closed|reset|size"}[mode]
    assert re.search(expected, copied.stderr, re.I), copied.stderr
    assert ("GET", f"/v2/{repo}/blobs/{bad}") in fake_registry.requests


def test_fixture_a_down_address_refuses_connections(tmp_path, pki):
    address = down_address()
    host, port = address.split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=10)
    refused = skopeo(tmp_path, "inspect", "--cert-dir", pki.ca_dir, f"docker://{address}/podrun-test/none:1.0")
    assert refused.returncode != 0 and "connection refused" in refused.stderr, refused.stderr


def test_fixture_a_mirrors_conf_of_docker_io_serves_alpine_from_the_second_mirror(
    tmp_path, client, registry_anon, alpine_in_registry, pki
):
    conf = client.mirrors("docker.io", [down_address(), registry_anon.host], location=down_address())
    mark = registry_anon.mark()
    # --no-tags: skopeo lists tags at docker.io itself, past the mirrors.
    inspected = skopeo(tmp_path, "inspect", "--no-tags", "--cert-dir", pki.ca_dir, "docker://alpine:latest",
                       registries_conf=conf)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == alpine_in_registry
    assert registry_anon.manifests_asked("library/alpine", mark) & {"latest", alpine_in_registry}


def test_fixture_client_config_writes_what_podrun_reads(client, registry_token, pki):
    client.trust(registry_token)
    for host in registry_token.hosts:
        assert (client.certs_d / host / "ca.crt").read_bytes() == pki.ca.read_bytes()
    auth = client.auth_file({registry_token.host: (USER, "pw")})
    assert json.loads(auth.read_text()) == {"auths": {registry_token.host: {"auth": basic(USER, "pw")}}}
    env = client.env()
    assert env["REGISTRY_AUTH_FILE"] == str(auth)
    assert env["PODRUN_CERTS_D"] == str(client.certs_d)
    assert env["CONTAINERS_REGISTRIES_CONF"] == str(client.conf)
    assert not (Path(env["DOCKER_CONFIG"]) / "config.json").exists()
    secret = pull_secret("regcred", {registry_token.host: (USER, "pw")})
    assert json.loads(base64.b64decode(secret["data"][".dockerconfigjson"])) == json.loads(auth.read_text())


# --- pull: by tag, by digest, platforms, TLS ------------------------------------------


def test_pull_by_tag_prints_the_reference_and_digest_and_ls_shows_the_registry(
    podrun, repos, client, registry_anon, test_image
):
    repo = repos.new()
    digest = registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    mark = registry_anon.mark()

    reference, printed = pulled(podrun, ref, client)
    assert (reference, printed) == (ref, digest)
    (image,) = listed(podrun, repo)
    assert image["reference"] == ref
    assert image["digest"] == digest
    assert image["source"] == registry_anon.host
    assert inspect_config(podrun, ref) == test_image.config
    assert "1.0" in registry_anon.manifests_asked(repo, mark)


def test_pull_by_digest(podrun, repos, client, registry_anon, test_image):
    repo = repos.new()
    digest = registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = f"{registry_anon.host}/{repo}@{digest}"
    mark = registry_anon.mark()

    reference, printed = pulled(podrun, ref, client)
    assert printed == digest
    assert reference.startswith(f"{registry_anon.host}/{repo}"), reference
    (image,) = listed(podrun, repo)
    assert image["digest"] == digest and image["source"] == registry_anon.host
    assert inspect_config(podrun, ref) == test_image.config
    # By digest: the manifest was asked for by its digest, never by a tag.
    assert registry_anon.manifests_asked(repo, mark) == {digest}


def test_pull_of_an_index_takes_linux_amd64_by_default(tmp_path, podrun, repos, client, registry_anon, test_image):
    repo = repos.new("index")
    index = write_index_layout(tmp_path / "layout", test_image.layers, "multi")
    registry_anon.push(index.source, repo, "1.0", all_platforms=True)
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    mark = registry_anon.mark()

    reference, printed = pulled(podrun, ref, client)
    assert reference == ref
    # The index's digest (as docker prints it) or the amd64 manifest's.
    assert printed in (index.digest, index.manifests["linux/amd64"]), printed
    config = inspect_config(podrun, ref)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config == index.configs["linux/amd64"]
    asked = registry_anon.manifests_asked(repo, mark)
    assert index.manifests["linux/amd64"] in asked, asked
    for other in ("linux/arm64/v8", "linux/arm/v7"):
        assert index.manifests[other] not in asked, f"podrun fetched the {other} manifest too"


@pytest.mark.parametrize("platform, name", [("linux/arm64", "linux/arm64/v8"), ("linux/arm/v7", "linux/arm/v7")])
def test_pull_with_platform_takes_that_platforms_image(
    platform, name, tmp_path, podrun, repos, client, registry_anon, test_image
):
    repo = repos.new("index")
    index = write_index_layout(tmp_path / "layout", test_image.layers, "multi")
    registry_anon.push(index.source, repo, "1.0", all_platforms=True)
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    mark = registry_anon.mark()

    reference, printed = pulled(podrun, ref, client, "--platform", platform)
    assert reference == ref
    assert printed in (index.digest, index.manifests[name]), printed
    config = inspect_config(podrun, ref)
    assert config == index.configs[name], config
    # Only that platform's manifest was fetched (by digest).
    asked = registry_anon.manifests_asked(repo, mark)
    assert index.manifests[name] in asked, asked
    for other, digest in index.manifests.items():
        if other != name:
            assert digest not in asked, f"podrun fetched the {other} manifest too"


def test_pull_trusts_a_registry_by_any_crt_file_in_podrun_certs_d(podrun, repos, client, registry_anon, test_image, pki):
    repo = repos.new()
    digest = registry_anon.push(test_image.source, repo, "1.0")
    # certs.d(5): every *.crt of the host's directory is a CA to trust.
    (client.certs_d / registry_anon.host).mkdir()
    shutil.copy(pki.ca, client.certs_d / registry_anon.host / "podrun-test-ca.crt")
    assert pulled(podrun, registry_anon.ref(repo, "1.0"), client)[1] == digest


# --- credentials -----------------------------------------------------------------------


def test_login_writes_an_entry_to_the_auth_file_and_logout_removes_only_it(podrun, client, registry_basic):
    client.trust(registry_basic)
    other = {"auth": basic("someone", "else")}
    auth = client.auth_file({})
    auth.write_text(json.dumps({"auths": {"127.0.0.2:1": other}}))

    login = podrun("login", registry_basic.host, "-u", USER, "--password-stdin",
                   input=registry_basic.password + "\n", env=client.env())
    assert login.returncode == 0, login.stderr
    assert registry_basic.password not in login.stdout + login.stderr
    entries = json.loads(auth.read_text())["auths"]
    assert entries[registry_basic.host]["auth"] == basic(USER, registry_basic.password)
    assert entries["127.0.0.2:1"] == other

    logout = podrun("logout", registry_basic.host, env=client.env())
    assert logout.returncode == 0, logout.stderr
    assert json.loads(auth.read_text())["auths"] == {"127.0.0.2:1": other}


PULL_SOURCES = ["REGISTRY_AUTH_FILE", "podrun-login", "DOCKER_CONFIG"]
# imagePullSecrets naming a Secret in the manifest's file, or in --secret FILE.
POD_SOURCES = ["secret-in-manifest", "secret-flag"]


@pytest.mark.parametrize("kind", ["basic", "token"])
@pytest.mark.parametrize("source", PULL_SOURCES)
def test_pull_with_credentials_from(source, kind, request, podrun, repos, client, test_image, run_auth_json):
    registry = request.getfixturevalue(f"registry_{kind}")
    repo = repos.new(kind)
    digest = registry.push(test_image.source, repo, "1.0")
    client.trust(registry)
    ref = registry.ref(repo, "1.0")
    creds = {registry.host: (USER, registry.password)}
    if source == "REGISTRY_AUTH_FILE":
        client.auth_file(creds)
    elif source == "DOCKER_CONFIG":
        client.docker_config(creds)
    else:
        # REGISTRY_AUTH_FILE unset: login writes /run/containers/0/auth.json.
        login = podrun("login", registry.host, "-u", USER, "--password-stdin",
                       input=registry.password + "\n", env=client.env())
        assert login.returncode == 0, login.stderr
        entry = json.loads(run_auth_json.read_text())["auths"][registry.host]
        assert entry["auth"] == basic(USER, registry.password)

    assert pulled(podrun, ref, client)[1] == digest
    if kind == "token":
        assert (USER, [f"repository:{repo}:pull"], 200) in registry.token_server.issued
    if source == "podrun-login":
        logout = podrun("logout", registry.host, env=client.env())
        assert logout.returncode == 0, logout.stderr
        assert registry.host not in json.loads(run_auth_json.read_text()).get("auths", {})
        # Logged out, the registry refuses; the image pulled before stays.
        again = pull(podrun, ref, client)
        assert again.returncode != 0, again.stdout
        assert re.search(r"unauthorized|401", again.stderr, re.I), again.stderr
        assert listed(podrun, repo)


@pytest.mark.parametrize("kind", ["basic", "token"])
@pytest.mark.parametrize("source", POD_SOURCES)
def test_a_pod_pulls_with_credentials_from(source, kind, request, tmp_path, podrun, pods, repos, client, test_image):
    registry = request.getfixturevalue(f"registry_{kind}")
    repo = repos.new(kind)
    registry.push(test_image.source, repo, "1.0")
    client.trust(registry)
    ref = registry.ref(repo, "1.0")
    pod = manifest(pods(), [image_container("c", ref, "echo pulled-and-ran")],
                   imagePullSecrets=[{"name": "regcred"}])
    secret = pull_secret("regcred", {registry.host: (USER, registry.password)})
    path = tmp_path / "pod.yaml"
    if source == "secret-in-manifest":
        path.write_text(yaml_documents(pod, secret))
        result = up(podrun, path, client)
    else:
        path.write_text(yaml_documents(pod))
        (tmp_path / "secret.yaml").write_text(yaml_documents(secret))
        result = up(podrun, path, client, "--secret", tmp_path / "secret.yaml")
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["pulled-and-ran"]
    if kind == "token":
        assert (USER, [f"repository:{repo}:pull"], 200) in registry.token_server.issued


# --- failures: each a clear error, the store unchanged ----------------------------------


class Failure:
    """A pull that must fail: `setup(ctx)` pushes or serves what it needs
    and returns the reference to pull; the error must name it and match
    every regex of `says`."""

    def __init__(self, setup, *says):
        self.setup, self.says = setup, says


def _pushed(ctx, kind, password=None, trust=True):
    registry = ctx.request.getfixturevalue(kind)
    repo = ctx.repos.new()
    registry.push(ctx.test_image.source, repo, "1.0")
    if trust:
        ctx.client.trust(registry)
    if password is not None:
        ctx.client.auth_file({registry.host: (USER, password)})
    return registry.ref(repo, "1.0")


def _wrong_password(kind):
    return lambda ctx: _pushed(ctx, kind, password="wrong-" + ctx.request.getfixturevalue(kind).password)


def _unknown(ctx):
    registry = ctx.request.getfixturevalue("registry_anon")
    ctx.client.trust(registry)
    return registry.ref(ctx.repos.new("never-pushed"), "1.0")


def _down(ctx):
    return f"{down_address()}/{ctx.repos.new()}:1.0"


def _bad_blob(mode):
    def setup(ctx):
        fake = ctx.request.getfixturevalue("fake_registry")
        image, bad = bad_blob_image(ctx.tmp_path, ctx.test_image.layers, unique())
        ctx.client.trust(fake)
        ctx.named.append(hex_of(bad)[:12])
        return fake.serve(ctx.repos.new(mode), "1.0", image, bad, mode)
    return setup


UNAUTHORIZED = r"unauthorized|\b401\b"
FAILURES = {
    "wrong-password-basic": Failure(_wrong_password("registry_basic"), UNAUTHORIZED),
    "wrong-password-token": Failure(_wrong_password("registry_token"), UNAUTHORIZED),
    "no-credentials-basic": Failure(lambda ctx: _pushed(ctx, "registry_basic"), UNAUTHORIZED),
    # An anonymous token that grants nothing: the registry then refuses.
    "no-credentials-token": Failure(lambda ctx: _pushed(ctx, "registry_token"),
                                    UNAUTHORIZED + r"|denied|insufficient.scope"),
    "unknown-image": Failure(_unknown, r"not found|manifest unknown|name unknown|\b404\b"),
    "registry-down": Failure(_down, r"connection refused"),
    "blob-wrong-digest": Failure(_bad_blob("wrong-digest"), r"digest", r"mismatch|(does|did) not match"),
    "blob-truncated": Failure(_bad_blob("truncated"), r"size|truncated|short"),
    "blob-connection-closed": Failure(_bad_blob("closed-early"), r"truncated|eof|closed|size|short|incomplete"),
    "certificate-not-trusted": Failure(lambda ctx: _pushed(ctx, "registry_anon", trust=False), r"certificate"),
}


class Ctx:
    def __init__(self, request, tmp_path, repos, client, test_image):
        self.request, self.tmp_path, self.repos = request, tmp_path, repos
        self.client, self.test_image = client, test_image
        self.named = []  # more that the error must name (a blob's digest)


def assert_says(text, ref, case, named=()):
    """The error names the image (and `named`) and says what went wrong."""
    # The image, as given (its repository at least, in any normal form).
    repository = ref.rsplit(":", 1)[0] if "@" not in ref else ref.split("@")[0]
    assert repository in text, f"the error does not name {repository}: {text}"
    for pattern in FAILURES[case].says:
        assert re.search(pattern, text, re.I), f"the error does not say /{pattern}/: {text}"
    for what in named:
        assert what in text, f"the error does not name {what}: {text}"


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_pull_says_why_and_leaves_the_store_unchanged(case, request, tmp_path, podrun, repos, client, test_image):
    ctx = Ctx(request, tmp_path, repos, client, test_image)
    ref = FAILURES[case].setup(ctx)
    before = store_trees()
    result = pull(podrun, ref, client)
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "error: " in result.stderr, result.stderr
    assert_says(result.stderr, ref, case, ctx.named)
    assert_store_unchanged(before, f"the failed pull ({case})")
    assert not listed(podrun, repos.made[-1])


def alive(proc):
    """Fails the test at once when `podrun up` (a Popen) has ended."""
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise AssertionError(f"podrun up exited {proc.returncode}: {err or out}")


def waiting_reasons(proc, pod, name, until, timeout=120):
    """The waiting reasons container `name` goes through (each change, in
    order) until it waits for `until`; that last waiting state."""
    seen = []

    def now():
        alive(proc)
        try:
            w = container_status(state(pod)["status"], name)["state"].get("waiting")
        except (AssertionError, OSError, ValueError, KeyError):
            return None
        reason = (w or {}).get("reason")
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        return w if reason == until else None

    try:
        last = wait_for(now, f"{name} of {pod} to wait with {until}", timeout=timeout, step=0.02)
    except AssertionError as e:
        raise AssertionError(f"{e} (waiting reasons seen: {seen})") from None
    return seen, last


# In a pod, the failures of the issue: each costs the kubelet's back-off
# before ImagePullBackOff shows (the others differ only in podrun's error,
# which the pulls above check).
POD_FAILURES = ["wrong-password-basic", "unknown-image", "registry-down", "blob-wrong-digest", "blob-truncated"]


@pytest.mark.parametrize("case", POD_FAILURES)
def test_a_pod_whose_image_cannot_be_pulled_backs_off_and_runs_its_other_containers(
    case, request, tmp_path, podrun, pods, repos, client, test_image
):
    ctx = Ctx(request, tmp_path, repos, client, test_image)
    ref = FAILURES[case].setup(ctx)
    pod = pods()
    spec = manifest(pod, [container("good", LOOP), image_container("bad", ref, "true", pull="Always")],
                    restart="Always")
    before = store_trees()
    proc = start(write_pod(tmp_path, spec), client)
    try:
        seen, last = waiting_reasons(proc, pod, "bad", "ImagePullBackOff")
        assert "ErrImagePull" in seen and seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen
        assert running(pod, ["good"]), state(pod)
        status = podrun("status", pod, "-o", "json")
        assert status.returncode == 0, status.stderr
        waiting = container_status(json.loads(status.stdout), "bad")["state"]["waiting"]
        assert waiting["reason"] in ("ImagePullBackOff", "ErrImagePull"), waiting
        assert ref in waiting.get("message", ""), waiting

        def backoff():
            evs = events(podrun, pod)
            return evs if of(evs, "bad", "BackOff") else None

        evs = wait_for(backoff, "a BackOff event", timeout=120)
        assert of(evs, "bad", "Pulling")[0]["message"] == f'Pulling image "{ref}"'
        failed = of(evs, "bad", "Failed")
        pull_failed = [e for e in failed if e["message"].startswith(f'Failed to pull image "{ref}": ')]
        assert pull_failed, failed
        assert_says(pull_failed[0]["message"], ref, case, ctx.named)
        assert all(e["type"] == "Warning" for e in failed)
        assert of(evs, "bad", "BackOff")[0]["message"] == f'Back-off pulling image "{ref}"'
        assert not of(evs, "bad", "Started")
        assert of(evs, "good", "Started")
    finally:
        stop(proc)
    assert_images_unchanged(before, f"the pod's failed pull ({case})")


# --- imagePullPolicy ----------------------------------------------------------------------


def test_always_pulls_an_image_already_present_and_fetches_no_blob_again(
    tmp_path, podrun, pods, repos, client, registry_anon, test_image
):
    repo = repos.new()
    registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    pulled(podrun, ref, client)
    mark = registry_anon.mark()

    pod = pods()
    result = up(podrun, write_pod(tmp_path, manifest(pod, [image_container("c", ref, "echo ran", pull="Always")])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["ran"]
    assert "1.0" in registry_anon.manifests_asked(repo, mark), "Always did not ask the registry"
    assert registry_anon.blob_gets(repo, mark) == [], "an unchanged image's blobs were fetched again"
    evs = events(podrun, pod)
    assert [e["message"] for e in of(evs, "c", "Pulling")] == [f'Pulling image "{ref}"']
    (done,) = of(evs, "c", "Pulled")
    assert pulled_message_ok(done["message"], ref), done


def test_if_not_present_pulls_an_absent_image_once_and_then_finds_it_present(
    tmp_path, podrun, pods, repos, client, registry_anon, test_image
):
    repo = repos.new()
    digest = registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    assert not listed(podrun, repo)

    first = pods()
    c = image_container("c", ref, "echo ran", pull="IfNotPresent")
    result = up(podrun, write_pod(tmp_path, manifest(first, [c])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["ran"]
    evs = events(podrun, first)
    assert [e["message"] for e in of(evs, "c", "Pulling")] == [f'Pulling image "{ref}"']
    (done,) = of(evs, "c", "Pulled")
    assert pulled_message_ok(done["message"], ref), done
    (image,) = listed(podrun, repo)
    assert image["digest"] == digest and image["source"] == registry_anon.host

    mark = registry_anon.mark()
    second = pods()
    result = up(podrun, write_pod(tmp_path, manifest(second, [c])), client)
    assert result.returncode == 0, result.stderr
    evs = events(podrun, second)
    assert not of(evs, "c", "Pulling")
    assert [e["message"] for e in of(evs, "c", "Pulled")] == [already_present(ref)]
    assert registry_anon.requests(mark) == [], "IfNotPresent asked the registry for a present image"


def test_never_runs_a_present_image_without_asking_the_registry(
    tmp_path, podrun, pods, repos, client, registry_anon, test_image
):
    repo = repos.new()
    registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    pulled(podrun, ref, client)
    mark = registry_anon.mark()

    pod = pods()
    result = up(podrun, write_pod(tmp_path, manifest(pod, [image_container("c", ref, "echo ran", pull="Never")])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["ran"]
    evs = events(podrun, pod)
    assert not of(evs, "c", "Pulling")
    assert [e["message"] for e in of(evs, "c", "Pulled")] == [already_present(ref)]
    assert registry_anon.requests(mark) == []


def test_never_with_an_absent_image_waits_in_err_image_never_pull(
    tmp_path, podrun, pods, repos, client, registry_anon, test_image
):
    repo = repos.new()
    # Pullable, but Never does not pull.
    registry_anon.push(test_image.source, repo, "1.0")
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "1.0")
    mark = registry_anon.mark()
    pod = pods()
    spec = manifest(pod, [container("good", LOOP), image_container("bad", ref, "true", pull="Never")], restart="Always")
    before = store_trees()
    proc = start(write_pod(tmp_path, spec), client)
    try:
        _, waiting = waiting_reasons(proc, pod, "bad", "ErrImageNeverPull")
        assert ref in waiting.get("message", ""), waiting
        assert running(pod, ["good"])
        evs = wait_for(lambda: of(events(podrun, pod), "bad", "ErrImageNeverPull"), "an ErrImageNeverPull event")
        assert ref in evs[0]["message"] and evs[0]["type"] == "Warning", evs
        assert not of(events(podrun, pod), "bad", "Pulling")
    finally:
        stop(proc)
    assert registry_anon.requests(mark) == []
    assert_images_unchanged(before, "a pod with imagePullPolicy Never")


# The image as written -> the policy Kubernetes gives it when none is set.
DEFAULTS = {
    "latest-tag": (lambda host, repo, digest: f"{host}/{repo}:latest", "Always"),
    "no-tag": (lambda host, repo, digest: f"{host}/{repo}", "Always"),
    "other-tag": (lambda host, repo, digest: f"{host}/{repo}:1.0", "IfNotPresent"),
    "digest": (lambda host, repo, digest: f"{host}/{repo}@{digest}", "IfNotPresent"),
}


@pytest.mark.parametrize("case", list(DEFAULTS))
def test_the_default_pull_policy_of_an_image_with(case, tmp_path, podrun, pods, repos, client, registry_anon, test_image):
    make, policy = DEFAULTS[case]
    repo = repos.new()
    tag = "1.0" if case == "other-tag" else "latest"
    digest = registry_anon.push(test_image.source, repo, tag)
    client.trust(registry_anon)
    image = make(registry_anon.host, repo, digest)
    pulled(podrun, image, client)
    mark = registry_anon.mark()

    pod = pods()
    result = up(podrun, write_pod(tmp_path, manifest(pod, [image_container("c", image, "echo ran", pull=None)])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["ran"]
    evs = events(podrun, pod)
    if policy == "Always":
        assert [e["message"] for e in of(evs, "c", "Pulling")] == [f'Pulling image "{image}"']
        assert registry_anon.manifest_requests(repo, mark), "Always did not ask the registry"
    else:
        assert not of(evs, "c", "Pulling")
        assert [e["message"] for e in of(evs, "c", "Pulled")] == [already_present(image)]
        assert registry_anon.requests(mark) == [], "IfNotPresent asked the registry"


def test_always_pulls_a_changed_tag_without_fetching_its_unchanged_layers_again(
    tmp_path, podrun, pods, repos, client, registry_anon, test_image
):
    repo = repos.new("changed")
    v1, v2 = changed_pair(tmp_path, test_image.layers, unique())
    client.trust(registry_anon)
    ref = registry_anon.ref(repo, "tag")
    show = "ls /marker"
    registry_anon.push(v1.source, repo, "tag")
    first = pods()
    result = up(podrun, write_pod(tmp_path, manifest(first, [image_container("c", ref, show, pull="Always")])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["v1"]

    registry_anon.push(v2.source, repo, "tag")
    second = pods()
    result = up(podrun, write_pod(tmp_path, manifest(second, [image_container("c", ref, show, pull="Always")])), client)
    assert result.returncode == 0, result.stderr
    assert output_of(result.stdout, "c") == ["v1", "v2"], "the second pod did not run v2"
    (image,) = listed(podrun, repo)
    assert image["digest"] == v2.manifest_digest
    gets = registry_anon.blob_gets(repo)
    assert gets.count(v1.layers[-1].digest) == 1, f"v1's layer, unchanged, was fetched again: {gets}"
    assert gets.count(v2.layers[-1].digest) == 1, gets
    # The test image's layer: fetched at most once (not at all when the
    # session's busybox image brought it into the store first).
    assert gets.count(test_image.layers[0].digest) <= 1, gets


# --- mirrors, and the Sidecar Containers page ---------------------------------------------


def mirrored_alpine(client, registry_anon):
    """registries.conf: docker.io's mirrors a port with nothing listening,
    then the anonymous registry (holding library/alpine:latest); docker.io's
    own location is another dead loopback port, so a fallback past the
    mirrors stays on this machine."""
    client.trust(registry_anon)
    client.mirrors("docker.io", [down_address(), registry_anon.host], location=down_address())


def test_a_mirror_of_docker_io_is_used_when_the_first_one_is_down(
    podrun, client, registry_anon, alpine_in_registry, docker_io_alpine
):
    mirrored_alpine(client, registry_anon)
    mark = registry_anon.mark()
    reference, digest = pulled(podrun, "alpine:latest", client)
    assert (reference, digest) == (ALPINE, alpine_in_registry)
    assert registry_anon.manifest_requests("library/alpine", mark)
    (image,) = [i for i in listed(podrun, ALPINE) if i["reference"] == ALPINE]
    assert image["digest"] == alpine_in_registry
    assert image["source"] == registry_anon.host


def page_pod_free(podrun, pod):
    if podrun("status", pod).returncode == 0:
        pytest.fail(f"a pod named {pod} exists on this machine: the test runs the Sidecar Containers "
                    f"page's manifests unchanged, under their names (podrun rm {pod} frees it)", pytrace=False)


def test_the_sidecar_pages_deployment_runs_unchanged_with_alpine_from_a_mirror(
    tmp_path, podrun, client, registry_anon, alpine_in_registry, docker_io_alpine
):
    text = SIDECAR_DEPLOYMENT.read_text()
    assert text.count("image: alpine:latest") == 2
    page_pod_free(podrun, "myapp")
    mirrored_alpine(client, registry_anon)
    proc = start(SIDECAR_DEPLOYMENT, client)
    try:
        wait_for(lambda: alive(proc) or running("myapp", ["myapp", "logshipper"]),
                 "myapp and its logshipper to run", timeout=PULL_TIMEOUT)
        wait_for(lambda: "logging" in podrun("logs", "myapp", "logshipper").stdout,
                 "the logshipper to ship a line", timeout=60)
        # It has an address on the node's network, as a cluster's pod has.
        shown = podrun("status", "myapp", "-o", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["podIP"].startswith("10.89."), shown.stdout
        down = podrun("down", "myapp", "--grace", "5", timeout=120)
        assert down.returncode == 0, down.stderr
        _, out, err = stop(proc)
        output = out + err
        assert "alpine:latest" in output and re.search(r"Pull(ing|ed)", output), output
        evs = events(podrun, "myapp")
        for c in ("logshipper", "myapp"):
            assert [e["message"] for e in of(evs, c, "Pulling")] == ['Pulling image "alpine:latest"'], of(evs, c)
            (done,) = of(evs, c, "Pulled")
            assert pulled_message_ok(done["message"], "alpine:latest"), done
        assert any(i["reference"] == ALPINE and i["source"] == registry_anon.host for i in listed(podrun, ALPINE))
    finally:
        if proc.poll() is None:
            stop(proc)
        podrun("rm", "--force", "myapp", timeout=120)


def test_the_sidecar_pages_job_runs_unchanged_with_alpine_from_a_mirror(
    podrun, client, registry_anon, alpine_in_registry, docker_io_alpine
):
    assert SIDECAR_JOB.read_text().count("image: alpine:latest") == 2
    page_pod_free(podrun, "myjob")
    mirrored_alpine(client, registry_anon)
    try:
        # The sidecar's tail ignores SIGTERM: the Job ends after the
        # default 30 s grace period.
        result = up(podrun, SIDECAR_JOB, client)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert "alpine:latest" in output and re.search(r"Pull(ing|ed)", output), output
        status = json.loads(podrun("status", "myjob", "-o", "json").stdout)
        assert status["phase"] == "Succeeded"
        assert container_status(status, "myjob")["state"]["terminated"]["reason"] == "Completed"
        evs = events(podrun, "myjob")
        for c in ("logshipper", "myjob"):
            assert [e["message"] for e in of(evs, c, "Pulling")] == ['Pulling image "alpine:latest"'], of(evs, c)
        assert "logging" in podrun("logs", "myjob", "logshipper").stdout.splitlines()
    finally:
        podrun("rm", "--force", "myjob", timeout=120)
