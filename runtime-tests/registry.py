"""Registries on 127.0.0.1 for the pull tests (test_registry.py), made here
from nothing, with no network beyond the loopback:

- `make_pki()`: a test CA, a server certificate for 127.0.0.1 (IP SAN) and
  localhost that the CA signs, and the token issuer's self-signed RSA
  certificate and key (openssl);
- `Registry`: Debian's docker-registry (`docker-registry serve CONFIG`) on
  a free port of 127.0.0.1 with TLS, its storage in a temporary directory,
  anonymous, with htpasswd basic auth, or with token auth through a
  `TokenServer` (HTTPS on 127.0.0.1, HTTP basic credentials on GET /token,
  RS256 JWTs whose `x5c` header carries the issuer's certificate, which the
  registry's `rootcertbundle` trusts); its access log, to count requests;
  `push()` with `skopeo copy`;
- `write_index_layout()`: an OCI layout whose image is an index of
  linux/arm64/v8, linux/amd64 and linux/arm/v7 manifests;
  `changed_pair()`: two images for one tag, the second the first plus a
  layer;
- `FakeRegistry`: a registry in Python (HTTPS on 127.0.0.1, no auth) that
  serves manifests and configs correctly and one layer blob wrong on
  purpose (its digest, or cut short with an honest Content-Length, or cut
  short by closing the connection);
- `down_address()`: a port on 127.0.0.1 with nothing listening;
- `ClientConfig`: where one podrun call finds certificates
  (`PODRUN_CERTS_D`), registries.conf (`CONTAINERS_REGISTRIES_CONF`) and
  credentials (`REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`), all in a temporary
  directory and passed in its environment, so that no test writes to /etc
  or reads a user's ~/.docker;
- `to_yaml()`, `pull_secret()`: manifests with a second YAML document, the
  `kubernetes.io/dockerconfigjson` Secret of `imagePullSecrets`.

Every server listens on 127.0.0.1 only. A tool that is missing fails the
test that needs it, loudly, naming the package (`need()`).
"""

import base64
import dataclasses
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from images import (
    CONFIG,
    INDEX,
    MANIFEST,
    REF_NAME,
    Image,
    canonical,
    directory,
    file,
    hex_of,
    image_config,
    layer,
    noise,
    sha256,
    write_layout,
)

LOOPBACK = "127.0.0.1"
USER = "podrun"
DOCKER_REGISTRY = "/usr/bin/docker-registry"
# What the token registry and its issuer agree on.
TOKEN_SERVICE = "podrun-test-registry"
TOKEN_ISSUER = "podrun-test-token-issuer"
# Seconds for a registry to answer /v2/ (the VM emulates its CPU).
START_TIMEOUT = 60


def need(tool: str, package: str) -> str:
    """The path of `tool`; the test fails, saying which package to install,
    when it is missing (a registry test that cannot run is a failure)."""
    path = shutil.which(tool)
    if not path:
        pytest.fail(
            f"{tool} is not installed: the registry tests need Debian's {package} "
            "(scripts/setup installs it)",
            pytrace=False,
        )
    return path


def run(*argv, timeout=120, input=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, input=input, env=env
    )


def ok(*argv, timeout=120, input=None, env=None) -> subprocess.CompletedProcess:
    result = run(*argv, timeout=timeout, input=input, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed: {result.stderr}"
    return result


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def down_address() -> str:
    """`127.0.0.1:PORT` with nothing listening (bound, then closed): a
    connection is refused."""
    return f"{LOOPBACK}:{free_port()}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(user: str, password: str) -> str:
    """The `auth` of a config.json / auth.json entry: base64 of user:password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# --- certificates ----------------------------------------------------------------

# Our own openssl config, so that the machine's openssl.cnf does not add or
# clash with extensions.
OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = podrun runtime-tests
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[token]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
"""


@dataclasses.dataclass(frozen=True)
class Pki:
    """The session's certificates, as PEM files."""

    work: Path
    ca: Path  # the test CA: what clients are told to trust
    cert: Path  # every server's certificate: IP 127.0.0.1 and DNS localhost
    key: Path
    token_cert: Path  # the token issuer's (self-signed, RSA): rootcertbundle and x5c
    token_key: Path

    @property
    def ca_dir(self) -> Path:
        """A directory holding only `ca.crt`: skopeo's --cert-dir, and what a
        certs.d host directory looks like."""
        return self.work / "ca"

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def token_cert_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.token_cert.read_text())


def make_pki(work) -> Pki:
    openssl = need("openssl", "openssl")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    cnf = work / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF)
    p = Pki(work, work / "ca.crt", work / "server.crt", work / "server.key",
            work / "token.crt", work / "token.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ok(openssl, "req", "-x509", "-config", cnf, "-extensions", "ca", *ec,
       "-keyout", work / "ca.key", "-out", p.ca, "-days", "7", "-subj", "/CN=podrun runtime-tests CA")
    ok(openssl, "req", "-new", "-config", cnf, *ec, "-keyout", p.key, "-out", work / "server.csr",
       "-subj", "/CN=127.0.0.1")
    ok(openssl, "x509", "-req", "-in", work / "server.csr", "-CA", p.ca, "-CAkey", work / "ca.key",
       "-set_serial", "0x" + secrets.token_hex(8), "-days", "7",
       "-extfile", cnf, "-extensions", "server", "-out", p.cert)
    # RS256 needs an RSA key.
    ok(openssl, "req", "-x509", "-config", cnf, "-extensions", "token",
       "-newkey", "rsa:2048", "-nodes", "-keyout", p.token_key, "-out", p.token_cert,
       "-days", "7", "-subj", "/CN=podrun runtime-tests token issuer")
    p.ca_dir.mkdir()
    shutil.copy(p.ca, p.ca_dir / "ca.crt")
    return p


# --- skopeo --------------------------------------------------------------------------


def skopeo(work, *args, registries_conf=None, timeout=180) -> subprocess.CompletedProcess:
    """`skopeo ARGS...` (not checked), hermetic: with a policy that accepts
    anything and `registries_conf` (default: an empty one, not the
    machine's), both under `work`."""
    work = Path(work)
    policy = work / "skopeo-policy.json"
    if not policy.exists():
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    if registries_conf is None:
        registries_conf = work / "skopeo-registries.conf"
        registries_conf.touch()
    return run(need("skopeo", "skopeo"), "--policy", policy, "--registries-conf", registries_conf, *args,
               timeout=timeout)


# --- docker-registry ---------------------------------------------------------------

# A line of the access log (Apache's combined format), which docker-registry
# writes for every request.
ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) ')
# The query of the requests that sync the access log (left out of it).
SYNC = "podrun-test-sync"


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


class TlsServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 speaking TLS; the handshake is
    made in the request's thread, so a client that never finishes it (or
    refuses the certificate) holds up no one."""

    daemon_threads = True

    def __init__(self, handler, context: ssl.SSLContext):
        self.context = context
        self.errors = []
        super().__init__((LOOPBACK, 0), handler)

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.errors.append(f"TLS handshake with {client_address}: {e}")
            return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        self.errors.append(f"{client_address}: {sys.exc_info()[1]!r}")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.server_address[1]}"

    def start(self):
        threading.Thread(target=self.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def send_json(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class TokenServer(TlsServer):
    """The token registry's issuer (the Docker token protocol): GET /token
    ?service=S&scope=repository:NAME:ACTIONS... with HTTP basic credentials
    answers {"token": JWT, "access_token": JWT, ...} granting every action
    asked for; without credentials, an anonymous token granting nothing (as
    Docker Hub's does); with wrong ones, 401. The OAuth2 password grant
    (POST /token, a form) is answered the same way. `issued` records each
    request: (user or None, scopes, HTTP status)."""

    def __init__(self, pki: Pki, user: str, password: str):
        self.pki, self.user, self.password = pki, user, password
        self.issued = []
        super().__init__(TokenHandler, pki.server_context())

    @property
    def realm(self) -> str:
        return f"https://{self.address}/token"

    def jwt(self, subject, scopes) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name and subject is not None:
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(self.pki.token_cert_der()).decode()]}
        claims = {"iss": TOKEN_ISSUER, "sub": subject or "", "aud": TOKEN_SERVICE, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": secrets.token_hex(16), "access": access}
        signing_input = f"{b64url(canonical(header))}.{b64url(canonical(claims))}"
        signed = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.pki.token_key)],
            input=signing_input.encode(), capture_output=True, timeout=60, check=True,
        )
        return f"{signing_input}.{b64url(signed.stdout)}"


class TokenHandler(QuietHandler):
    server: TokenServer

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        user, password = None, None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                user, password = "", ""
        self.answer(url.path, query, user, password)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        user = (form.get("username") or [None])[0]
        password = (form.get("password") or [None])[0]
        self.answer(url.path, form, user, password)

    def answer(self, path, query, user, password):
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        if path != "/token" or query.get("service", [None])[0] != TOKEN_SERVICE:
            self.server.issued.append((user, scopes, 404))
            self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no such service"}]})
            return
        if user is not None and (user, password) != (self.server.user, self.server.password):
            self.server.issued.append((user, scopes, 401))
            self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "wrong user or password"}]},
                           headers=[("WWW-Authenticate", 'Basic realm="podrun-test-token"')])
            return
        token = self.server.jwt(user, scopes)
        self.server.issued.append((user, scopes, 200))
        self.send_json(200, {"token": token, "access_token": token, "expires_in": 600,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


class Registry:
    """Debian's docker-registry on a free port of 127.0.0.1, TLS with the
    session's certificate, storage in `work`; `auth` is None (anonymous),
    "basic" (htpasswd, user `podrun`) or "token" (a TokenServer, same
    user). `stop()` ends it (and its token server)."""

    def __init__(self, work, pki: Pki, auth=None):
        need(DOCKER_REGISTRY, "docker-registry")
        self.work, self.pki, self.auth = Path(work), pki, auth
        self.work.mkdir(parents=True, exist_ok=True)
        self.user = USER if auth else None
        self.password = secrets.token_urlsafe(12) if auth else None
        self.token_server = None
        self.process = None
        self.log = self.work / "registry.log"
        self._start()

    # -- running it

    def _config(self, port) -> dict:
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.work / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # Only the loopback: never ":PORT", which is every interface.
            "http": {
                "addr": f"{LOOPBACK}:{port}",
                "secret": secrets.token_hex(16),
                "tls": {"certificate": str(self.pki.cert), "key": str(self.pki.key)},
            },
        }
        if self.auth == "basic":
            htpasswd = self.work / "htpasswd"
            # docker-registry reads bcrypt entries only (-B).
            ok(need("htpasswd", "apache2-utils"), "-B", "-b", "-c", htpasswd, self.user, self.password)
            config["auth"] = {"htpasswd": {"realm": "podrun-tests", "path": str(htpasswd)}}
        elif self.auth == "token":
            config["auth"] = {"token": {"realm": self.token_server.realm, "service": TOKEN_SERVICE,
                                        "issuer": TOKEN_ISSUER, "rootcertbundle": str(self.pki.token_cert)}}
        return config

    def _start(self):
        if self.auth == "token":
            self.token_server = TokenServer(self.pki, self.user, self.password).start()
        # A port taken between free_port() and the bind: try another.
        for _ in range(3):
            self.port = free_port()
            config = self.work / "config.yml"
            # YAML is a superset of JSON.
            config.write_text(json.dumps(self._config(self.port), indent=1))
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [DOCKER_REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            if self._wait_until_it_answers():
                return
            if "address already in use" not in self.log.read_text(errors="replace"):
                break
        self.stop()
        pytest.fail(f"docker-registry did not start on {LOOPBACK}:{self.port}; its log:\n"
                    + self.log.read_text(errors="replace")[-3000:], pytrace=False)

    def _wait_until_it_answers(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        ctx = self.pki.client_context()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"{self.url}/v2/", context=ctx, timeout=5).close()
                return True
            except urllib.error.HTTPError as e:
                if e.code == 401:  # an auth variant: up, and asking
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.token_server:
            self.token_server.stop()
            self.token_server = None

    # -- names

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def hosts(self):
        """Every server a client of this registry talks to (the registry,
        and its token server): what a client must trust."""
        return [self.host] + ([self.token_server.address] if self.token_server else [])

    @property
    def creds(self):
        return f"{self.user}:{self.password}" if self.user else None

    def ref(self, repo, tag="latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    # -- using it

    def push(self, source: str, repo: str, tag: str, all_platforms=False) -> str:
        """Pushes `source` (`oci:DIR:REF`) as REPO:TAG with skopeo; the
        digest of the manifest (or index, with all_platforms) pushed, the
        source's own digest (--preserve-digests)."""
        digestfile = self.work / f"digest-{secrets.token_hex(4)}"
        args = ["copy", "-q", "--preserve-digests", "--dest-cert-dir", self.pki.ca_dir,
                "--digestfile", digestfile]
        if self.creds:
            args += ["--dest-creds", self.creds]
        if all_platforms:
            args.append("--all")
        result = skopeo(self.work, *args, source, f"docker://{self.ref(repo, tag)}")
        assert result.returncode == 0, f"skopeo copy {source} to {self.ref(repo, tag)}: {result.stderr}"
        return digestfile.read_text().strip()

    def requests(self, since=0):
        """The requests the registry answered (its access log), from the
        `since`th on: `mark()` before a pull, `requests(mark)` after it, are
        the pull's (a push's are not)."""
        self._sync()
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = ACCESS.match(line)
            if m and SYNC not in m.group(2):
                found.append(Request(m.group(1), urllib.parse.unquote(m.group(2)), int(m.group(3))))
        return found[since:]

    def _sync(self):
        """Waits until a request of our own is in the access log: the lines
        of the requests answered before it are written by then (a line is
        written once its response is)."""
        if not self.process or self.process.poll() is not None:
            return
        nonce = f"{SYNC}={secrets.token_hex(8)}"
        try:
            urllib.request.urlopen(f"{self.url}/v2/?{nonce}", context=self.pki.client_context(), timeout=30).close()
        except urllib.error.HTTPError:
            pass  # 401 from an auth variant: logged all the same
        deadline = time.monotonic() + 10
        while nonce not in self.log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.01)

    def mark(self) -> int:
        return len(self.requests())

    def blob_gets(self, repo, since=0):
        """The digests of the blobs of `repo` sent whole (GET, 200), in order."""
        prefix = f"/v2/{repo}/blobs/"
        return [r.path[len(prefix):] for r in self.requests(since)
                if r.method == "GET" and r.status == 200 and r.path.startswith(prefix)]

    def manifest_requests(self, repo, since=0):
        """The GET and HEAD requests for manifests of `repo` (by tag or
        digest), in order."""
        prefix = f"/v2/{repo}/manifests/"
        return [r for r in self.requests(since) if r.method in ("GET", "HEAD") and r.path.startswith(prefix)]

    def manifests_asked(self, repo, since=0):
        """The tags and digests of `repo` whose manifests were asked for."""
        return {r.path.rsplit("/", 1)[-1] for r in self.manifest_requests(repo, since)}


# --- images to push ------------------------------------------------------------------

# The index's platforms, in its order: amd64 is not first, so that a client
# taking the first entry takes the wrong image.
PLATFORMS = (("linux", "arm64", "v8"), ("linux", "amd64", None), ("linux", "arm", "v7"))


def platform_name(os_, arch, variant) -> str:
    return "/".join(p for p in (os_, arch, variant) if p)


@dataclasses.dataclass(frozen=True)
class IndexImage:
    """An image index in an OCI layout: its digest, and per platform
    (`linux/arm64/v8`, ...) the digest of its manifest and its config."""

    layout: Path
    ref: str
    digest: str
    manifests: dict
    configs: dict

    @property
    def source(self) -> str:
        return f"oci:{self.layout}:{self.ref}"


def _put(layout: Path, blob: bytes) -> dict:
    path = layout / "blobs" / "sha256" / hex_of(sha256(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return {"digest": sha256(blob), "size": len(blob)}


def write_index_layout(layout, amd64_layers, ref) -> IndexImage:
    """An OCI layout whose image `ref` is an index of one manifest per
    PLATFORMS entry: linux/amd64 of `amd64_layers` (the test image's, so
    that it runs), the others one tiny layer each that names its platform,
    with a config of that architecture and variant."""
    layout = Path(layout)
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    entries, manifests, configs = [], {}, {}
    for os_, arch, variant in PLATFORMS:
        name = platform_name(os_, arch, variant)
        if arch == "amd64":
            layers = list(amd64_layers)
        else:
            layers = [layer([directory("platform"), file("platform/name", name + "\n")])]
        config = image_config([x.diff_id for x in layers])
        config["os"], config["architecture"] = os_, arch
        if variant:
            config["variant"] = variant
        config_blob = canonical(config)
        for x in layers:
            _put(layout, x.blob)
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, **_put(layout, config_blob)},
            "layers": [{"mediaType": x.media_type, "digest": x.digest, "size": len(x.blob)} for x in layers],
        })
        platform = {"architecture": arch, "os": os_}
        if variant:
            platform["variant"] = variant
        entries.append({"mediaType": MANIFEST, **_put(layout, manifest), "platform": platform})
        manifests[name], configs[name] = sha256(manifest), config
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries})
    entry = {"mediaType": INDEX, **_put(layout, index), "annotations": {REF_NAME: ref}}
    (layout / "index.json").write_bytes(
        canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]})
    )
    return IndexImage(layout, ref, sha256(index), manifests, configs)


def marker_layer(tag: str, what: str):
    """A small layer of its own: /marker/<what> holding `tag`."""
    return layer([directory("marker"), file(f"marker/{what}", f"{tag}\n")])


def changed_pair(work, base_layers, tag: str):
    """Two versions of one image for a "changed tag": v1 is `base_layers`
    plus a layer of its own (/marker/v1), v2 the same layers plus one more
    (/marker/v2). Pushed under one tag in turn, only v2's new layer (and
    its config and manifest) is new to a client that pulled v1."""
    work = Path(work)
    own = marker_layer(tag, "v1")
    v1 = write_layout(work / "v1", [*base_layers, own], "v1")
    v2 = write_layout(work / "v2", [*base_layers, own, marker_layer(tag, "v2")], "v2")
    return v1, v2


# --- a registry serving a bad blob ---------------------------------------------------

BAD_BLOB_MODES = ("wrong-digest", "truncated", "closed-early")


@dataclasses.dataclass
class Served:
    manifest: bytes
    blobs: dict  # digest -> bytes
    bad: str  # the layer digest served wrong
    mode: str


class FakeRegistry(TlsServer):
    """A registry in Python, HTTPS on 127.0.0.1 (the session's server
    certificate), no auth: /v2/ answers 200, and the images `serve()`d here
    have their manifest (by tag or digest) and config served as a registry
    serves them, and one layer blob wrong as `mode` says:

    - "wrong-digest": the blob's size, one byte changed;
    - "truncated": the first half, with a Content-Length of that half (an
      honest response shorter than the manifest's size);
    - "closed-early": a Content-Length of the whole blob, half of it sent,
      then the connection closed.

    and its tags are listed. Anything else is 404 with the registry's error
    codes. `requests` records (method, path)."""

    def __init__(self, pki: Pki):
        self.images = {}  # (repo, tag or digest) -> Served
        self.requests = []
        super().__init__(FakeRegistryHandler, pki.server_context())

    @property
    def host(self) -> str:
        return self.address

    def serve(self, repo: str, tag: str, image: Image, bad_digest: str, mode: str):
        assert mode in BAD_BLOB_MODES, mode
        blobs = {"sha256:" + p.name: p.read_bytes() for p in (image.layout / "blobs" / "sha256").iterdir()}
        manifest = blobs[image.manifest_digest]
        assert bad_digest in blobs, bad_digest
        served = Served(manifest, blobs, bad_digest, mode)
        self.images[(repo, tag)] = self.images[(repo, image.manifest_digest)] = served
        return f"{self.host}/{repo}:{tag}"


class FakeRegistryHandler(QuietHandler):
    server: FakeRegistry
    PATH = re.compile(r"^/v2/(.+)/(manifests|blobs|tags)/([^/]+)$")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        self.server.requests.append((self.command, path))
        api = [("Docker-Distribution-API-Version", "registry/2.0")]
        if path in ("/v2", "/v2/"):
            self.send_json(200, {}, api)
            return
        m = self.PATH.match(path)
        repos = {repo for repo, _ in self.server.images}
        if not m or m.group(1) not in repos:
            self.send_json(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}, api)
            return
        repo, kind, ref = m.groups()
        if kind == "tags":
            tags = sorted(t for r, t in self.server.images if r == repo and not t.startswith("sha256:"))
            self.send_json(200, {"name": repo, "tags": tags}, api)
            return
        if kind == "manifests":
            served = self.server.images.get((repo, ref))
            if not served:
                self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, api)
                return
            self.send_blob(served.manifest, [*api, ("Content-Type", MANIFEST),
                                             ("Docker-Content-Digest", sha256(served.manifest))])
            return
        served = next((s for (r, _), s in self.server.images.items() if r == repo and ref in s.blobs), None)
        if not served:
            self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}, api)
            return
        blob = served.blobs[ref]
        headers = [*api, ("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", ref)]
        if ref != served.bad:
            self.send_blob(blob, headers)
        elif served.mode == "wrong-digest":
            wrong = bytearray(blob)
            wrong[len(wrong) // 2] ^= 0xFF
            self.send_blob(bytes(wrong), headers)
        elif served.mode == "truncated":
            self.send_blob(blob[: len(blob) // 2], headers)
        else:  # closed-early
            self.send_response(200)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(blob[: len(blob) // 2])
                self.wfile.flush()
            # The server closes the connection once this returns.
            self.close_connection = True

    def send_blob(self, data: bytes, headers):
        self.send_response(200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)


def bad_blob_image(work, base_layers, tag: str):
    """An image for the FakeRegistry: `base_layers` plus a layer of 256 KiB
    of noise (so that a cut or a changed byte lands inside a file's data);
    returns the image and the noise layer's digest, the blob to serve
    wrong."""
    big = layer([directory("data"), file("data/noise", noise(256 * 1024, tag))])
    image = write_layout(Path(work) / "bad-blob", [*base_layers, big], "bad")
    return image, big.digest


# --- podrun's side: certificates, registries.conf, credentials -------------------


class ClientConfig:
    """Where one podrun call finds its registry settings, under `work`, and
    the environment that says so (`env()`):

    - PODRUN_CERTS_D: certs.d, a HOST:PORT directory per trusted server
      holding the test CA as ca.crt (`trust()`);
    - CONTAINERS_REGISTRIES_CONF: a registries.conf, empty unless written
      (`registries_conf()`, `mirrors()`), never the machine's;
    - DOCKER_CONFIG: a directory with no config.json unless written
      (`docker_config()`), so that ~/.docker is never read;
    - REGISTRY_AUTH_FILE: set only once `auth_file()` wrote one (unset,
      podrun's default is /run/containers/0/auth.json; XDG_RUNTIME_DIR is
      unset too, which containers-auth.json(5) would put first)."""

    def __init__(self, work, pki: Pki):
        self.work, self.pki = Path(work), pki
        self.certs_d = self.work / "certs.d"
        self.docker_dir = self.work / "docker"
        self.conf = self.work / "registries.conf"
        self.auth_path = None
        self.certs_d.mkdir(parents=True, exist_ok=True)
        self.docker_dir.mkdir(exist_ok=True)
        self.conf.write_text("")

    def trust(self, *servers):
        """Trusts the test CA for these servers (a Registry, trusting its
        token server too, a FakeRegistry, or HOST:PORT)."""
        for server in servers:
            hosts = server.hosts if isinstance(server, Registry) else [getattr(server, "host", server)]
            for host in hosts:
                (self.certs_d / host).mkdir(exist_ok=True)
                shutil.copy(self.pki.ca, self.certs_d / host / "ca.crt")
        return self

    def registries_conf(self, text: str) -> Path:
        self.conf.write_text(text)
        return self.conf

    def mirrors(self, prefix: str, mirrors, location: str) -> Path:
        """A registries.conf (v2) in which `prefix` (e.g. docker.io) is
        served by `mirrors`, tried in order, then by `location`. Tests give
        a `location` on the loopback, so that even a client that falls
        back to the registry itself sends nothing off this machine."""
        lines = ['unqualified-search-registries = ["docker.io"]', "", "[[registry]]",
                 f'prefix = "{prefix}"', f'location = "{location}"']
        for mirror in mirrors:
            lines += ["", "[[registry.mirror]]", f'location = "{mirror}"']
        return self.registries_conf("\n".join(lines) + "\n")

    def auth_file(self, entries: dict) -> Path:
        """containers-auth.json with {host: (user, password)}; podrun is
        told of it through REGISTRY_AUTH_FILE."""
        self.auth_path = self.work / "auth.json"
        self.auth_path.write_text(auths_json(entries))
        return self.auth_path

    def docker_config(self, entries: dict) -> Path:
        path = self.docker_dir / "config.json"
        path.write_text(auths_json(entries))
        return path

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        for name in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "CONTAINERS_REGISTRIES_CONF", "PODRUN_CERTS_D",
                     "XDG_RUNTIME_DIR"):
            env.pop(name, None)
        env.update(PODRUN_CERTS_D=str(self.certs_d), CONTAINERS_REGISTRIES_CONF=str(self.conf),
                   DOCKER_CONFIG=str(self.docker_dir))
        if self.auth_path:
            env["REGISTRY_AUTH_FILE"] = str(self.auth_path)
        env.update({k: str(v) for k, v in extra.items()})
        return env


def auths_json(entries: dict) -> str:
    """{"auths": {host: {"auth": base64(user:password)}}}, the format of
    containers-auth.json and docker's config.json alike."""
    return json.dumps({"auths": {host: {"auth": basic(*cred)} for host, cred in entries.items()}}, indent=1)


# --- manifests with a Secret ---------------------------------------------------------


def pull_secret(name: str, entries: dict) -> dict:
    """A `kubernetes.io/dockerconfigjson` Secret holding {host: (user,
    password)}, as `kubectl create secret docker-registry` makes it."""
    config = auths_json(entries).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a double-quoted YAML scalar


def to_yaml(obj, indent=0) -> str:
    """Block-style YAML of dicts, lists and scalars (strings double-quoted),
    enough for manifests."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(value, indent + 2))
            else:
                empty = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else None
                lines.append(f"{pad}{key}: {empty or _scalar(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


def yaml_documents(*docs) -> str:
    return "".join(f"---\n{to_yaml(d)}\n" for d in docs)


# --- fixtures (test_registry.py imports them) ---------------------------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _registry(tmp_path_factory, pki, auth):
    registry = Registry(tmp_path_factory.mktemp(f"registry-{auth or 'anonymous'}"), pki, auth)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry_anon(tmp_path_factory, pki):
    """docker-registry, anonymous (pull and push for anyone)."""
    yield from _registry(tmp_path_factory, pki, None)


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory, pki):
    """docker-registry with htpasswd basic auth: user `podrun`,
    `registry.password`."""
    yield from _registry(tmp_path_factory, pki, "basic")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory, pki):
    """docker-registry with token auth, its TokenServer in
    `registry.token_server`: user `podrun`, `registry.password`."""
    yield from _registry(tmp_path_factory, pki, "token")


@pytest.fixture(scope="session")
def fake_registry(pki):
    server = FakeRegistry(pki).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(tmp_path, pki) -> ClientConfig:
    return ClientConfig(tmp_path / "client", pki)
