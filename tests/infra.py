"""Real test infrastructure: a moto server process, a local docker registry, docker helpers.

Everything here starts real processes (``python -m moto.server``, Debian's
``docker-registry``) on free localhost ports.  ``scripts/test-infra.sh`` installs
what is needed (docker daemon, base image, registry binary).

Used by ``tests/conftest.py``; importable as ``tests.infra``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA_SCRIPT = REPO_ROOT / "scripts" / "test-infra.sh"
DEFAULT_BASE_IMAGE = "mldeploy-test/python:3.11-bookworm"
REGISTRY_BIN = "/usr/bin/docker-registry"

TEST_REGION = "us-east-1"
TEST_ACCOUNT_ID = "123456789012"  # moto's default account

# Variables that could point a subprocess at real AWS / other credentials.
_AWS_VARS_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


# --------------------------------------------------------------------------- generic


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Plain HTTP request that never goes through a proxy; returns (status, headers, body).

    HTTP error statuses are returned, not raised.
    """
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with _NO_PROXY_OPENER.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class RuntimeProc:
    """A running ``python -m runtime`` subprocess: its URL, metrics URL and log file."""

    def __init__(self, popen: subprocess.Popen, url: str, log: Path, metrics_url: str = "") -> None:
        self.popen, self.url, self.log, self.metrics_url = popen, url, log, metrics_url

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)


@contextlib.contextmanager
def runtime_server(log_dir: Path, model_dir: Path | None = None, *, models_dir: Path | None = None,
                   env: Mapping[str, str] | None = None, workers: int = 1, wait_ready: bool = True,
                   ready_timeout: float = 60) -> Iterator[RuntimeProc]:
    """``python -m runtime`` on free 127.0.0.1 ports (serving + metrics) with no ``MLDEPLOY_*`` from the caller's
    environment; yields once ``/ready`` answers 200 (unless ``wait_ready`` is off); SIGTERM (then kill) on exit."""
    import httpx

    port, metrics_port = free_port(), free_port()
    args = [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    args += ["--model-dir", str(model_dir)] if model_dir else ["--models-dir", str(models_dir)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLDEPLOY_", "PROMETHEUS_"))}
    full_env.update({"MLDEPLOY_EMF_INTERVAL_S": "0.5", "MLDEPLOY_METRICS_PORT": str(metrics_port), **(env or {})})
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(args, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    proc = RuntimeProc(popen, f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{metrics_port}")
    try:
        if wait_ready:
            deadline = time.monotonic() + ready_timeout
            while True:
                if popen.poll() is not None:
                    raise AssertionError(f"server exited {popen.returncode}:\n{proc.logs()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(proc.url + "/ready", timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, proc.logs()
                time.sleep(0.05)
        yield proc
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(30)
            except subprocess.TimeoutExpired:
                popen.kill()


def interruptible() -> None:  # pragma: no cover - runs in the child (subprocess preexec_fn)
    """Restore SIGINT's default in a child the test will Ctrl-C: a shell starts background jobs (``cmd &``) with
    SIGINT ignored, children inherit that, and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Child dies with its parent (no orphaned servers when pytest is killed)."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class _ServerProcess:
    """A subprocess server on a free port, started by ``_launch`` and polled by ``_ready``."""

    name = "server"
    start_timeout = 30.0
    start_attempts = 3  # free_port() can race with another process

    def __init__(self) -> None:
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self._own_workdir = False
        self._log_file: Any = None

    # subclasses implement these
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called before each start attempt, after ``self.port`` is chosen."""

    def start(self) -> None:
        if self.proc is not None:
            return
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"mldeploy-{self.name}-"))
            self._own_workdir = True
        self.log_path = self.workdir / f"{self.name}.log"
        last_error = ""
        for _attempt in range(self.start_attempts):
            self.port = free_port()
            self._prepare()
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                self._command(),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = f"exited with code {self.proc.returncode}"
                    break
                with contextlib.suppress(OSError):
                    if self._ready():
                        return
                time.sleep(0.1)
            else:
                last_error = f"not ready after {self.start_timeout}s"
            self._stop_process()
        log = _tail(self.log_path)
        self.stop()
        raise RuntimeError(f"{self.name} failed to start ({last_error}); log:\n{log}")

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        self._stop_process()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- moto


class MotoServer(_ServerProcess):
    """``python -m moto.server`` as a separate process on 127.0.0.1:<free port>.

    ``iam_enforcement``: False (default) = no IAM checks; True = every request is
    authenticated/authorized against moto's IAM (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``;
    the ``testing`` keys are then rejected: create an IAM user + access key first,
    e.g. inside ``with server.auth_disabled(): ...``); an int N = the first N requests
    are unchecked.
    ``load_managed_policies``: ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` so AWS managed
    policies (``arn:aws:iam::aws:policy/...``) exist and can be attached.
    """

    name = "moto"

    def __init__(
        self,
        *,
        iam_enforcement: bool | int = False,
        load_managed_policies: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if iam_enforcement is True:
            self.initial_no_auth_action_count: float | None = 0
        elif iam_enforcement is False:
            self.initial_no_auth_action_count = None
        else:
            self.initial_no_auth_action_count = int(iam_enforcement)
        self.load_managed_policies = load_managed_policies
        self.extra_env = dict(env or {})

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server not started")
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTO_", "TEST_SERVER_MODE"))}
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        if self.load_managed_policies:
            env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        if self.initial_no_auth_action_count is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.initial_no_auth_action_count)
        env.update(self.extra_env)
        return env

    def _ready(self) -> bool:
        # any HTTP answer means the server is up; this GET does not reset anything
        status, _, _ = http_request(f"{self.url}/moto-api/reset", timeout=2)
        return status > 0

    def reset(self) -> None:
        """Forget all mocked AWS state (and restart the IAM enforcement countdown)."""
        status, _, body = http_request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        if status != 200:
            raise RuntimeError(f"moto reset failed: {status} {body!r}")
        if self.initial_no_auth_action_count is not None:
            self.set_no_auth_action_count(self.initial_no_auth_action_count)

    def set_no_auth_action_count(self, count: float) -> None:
        """Let the next ``count`` requests skip IAM checks (``float('inf')``: no checks)."""
        data = str(float(count)).encode()
        # text/plain: with urllib's default form content type Flask swallows the body
        status, _, body = http_request(
            f"{self.url}/moto-api/reset-auth", method="POST", data=data, headers={"Content-Type": "text/plain"}
        )
        if status != 200:
            raise RuntimeError(f"moto reset-auth failed: {status} {body!r}")

    @contextlib.contextmanager
    def auth_disabled(self) -> Iterator[None]:
        """Temporarily switch IAM enforcement off (e.g. to create users/keys/policies)."""
        self.set_no_auth_action_count(float("inf"))
        try:
            yield
        finally:
            restore = self.initial_no_auth_action_count
            self.set_no_auth_action_count(float("inf") if restore is None else restore)

    def client(self, service: str, **kwargs: Any):
        """A boto3 client against this server with the test credentials."""
        import boto3

        kwargs.setdefault("region_name", TEST_REGION)
        kwargs.setdefault("aws_access_key_id", "testing")
        kwargs.setdefault("aws_secret_access_key", "testing")
        return boto3.client(service, endpoint_url=self.url, **kwargs)


def aws_env(moto_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Full environment for a subprocess (e.g. the mldeploy CLI) talking to moto at ``moto_url``.

    Based on ``base`` (default ``os.environ``): fake credentials, fixed region, every
    AWS service pointed at moto (``AWS_ENDPOINT_URL``), profiles/session tokens and
    per-service endpoint overrides removed, ~/.aws config ignored, localhost never proxied.
    """
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key in _AWS_VARS_TO_CLEAR or key.startswith("AWS_ENDPOINT_URL_"):
            del env[key]
    env.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=TEST_REGION,
        AWS_REGION=TEST_REGION,
        # never read the developer's ~/.aws (profiles, sso, credential_process, ...)
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        # on top of moto, reject what AWS documents as invalid (mldeploy/testing/aws_rules/): the suite is only
        # as true as the emulator, and moto accepts names, limits and orderings that a real account refuses
        MLDEPLOY_STRICT_AWS="1",
        # the plain-http moto endpoint stands in for AWS's https endpoints: bucket policies' aws:SecureTransport
        # is true for these requests (mldeploy/testing/aws_rules/s3_policy.py; unset, it is false: denied)
        MLDEPLOY_STRICT_AWS_TLS="1",
    )
    # AWS_CA_BUNDLE is left alone: botocore only uses it for https endpoints (checked:
    # even a non-existent bundle path is harmless against the plain-http moto server).
    # an HTTP(S)_PROXY in CI must not swallow requests to the local moto server
    for key in ("NO_PROXY", "no_proxy"):
        parts = [p for p in env.get(key, "").split(",") if p]
        for host in ("127.0.0.1", "localhost"):
            if host not in parts:
                parts.append(host)
        env[key] = ",".join(parts)
    return env


# ------------------------------------------------------------------------ registry


def use_moto(server: MotoServer, monkeypatch: Any) -> dict[str, str]:
    """Fresh moto state and ``os.environ`` pointing boto3 at ``server`` (strict AWS rules on) for one test, via
    pytest's ``monkeypatch``; returns that environment (pass it as ``env=`` to CLI subprocesses)."""
    server.reset()
    env = aws_env(server.url)
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class LocalRegistry(_ServerProcess):
    """Debian's ``docker-registry`` (distribution v2) on 127.0.0.1:<free port>, storage in a tmp dir.

    Plain http: docker allows insecure registries on 127.0.0.0/8 by default, so the
    local docker daemon can push/pull ``{registry.host}/name:tag``.  Containers cannot
    reach it (127.0.0.1 is the host's loopback), only the daemon can.
    """

    name = "registry"

    def __init__(self, binary: str | None = None, storage_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.binary = binary or os.environ.get("MLDEPLOY_TEST_REGISTRY_BIN") or REGISTRY_BIN
        self._storage_dir = Path(storage_dir) if storage_dir else None

    @property
    def host(self) -> str:
        if self.port is None:
            raise RuntimeError("registry not started")
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def config_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "config.yml"

    @property
    def storage_dir(self) -> Path:
        assert self.workdir is not None
        return self._storage_dir or self.workdir / "storage"

    def _prepare(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"{self.binary} not found; run scripts/test-infra.sh")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "version: 0.1\n"
            "log:\n"
            "  level: warn\n"
            "  accesslog:\n"
            "    disabled: true\n"
            "storage:\n"
            "  filesystem:\n"
            f"    rootdirectory: {self.storage_dir}\n"
            "  delete:\n"
            "    enabled: true\n"
            "http:\n"
            f"  addr: 127.0.0.1:{self.port}\n"
            f"  secret: {secrets.token_hex(16)}\n"
        )

    def _command(self) -> list[str]:
        return [self.binary, "serve", str(self.config_path)]

    def _env(self) -> dict[str, str]:
        # REGISTRY_* variables override config.yml values; do not inherit any
        return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}

    def _ready(self) -> bool:
        status, _, _ = http_request(f"{self.url}/v2/", timeout=2)
        return status == 200

    def tags(self, repository: str) -> list[str]:
        status, _, body = http_request(f"{self.url}/v2/{repository}/tags/list")
        if status == 404:
            return []
        import json

        return json.loads(body).get("tags") or []

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The registry's content digest for ``repository:reference`` (None if missing)."""
        req = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{reference}", method="HEAD")
        req.add_header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        try:
            with _NO_PROXY_OPENER.open(req, timeout=5) as resp:
                return resp.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


# -------------------------------------------------------------------------- docker


def base_image() -> str:
    """Tag of the local Python base image built by scripts/test-infra.sh."""
    return os.environ.get("MLDEPLOY_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def docker_available(timeout: float = 10.0) -> bool:
    """True when a docker daemon answers (via the docker SDK, else the CLI)."""
    try:
        import docker
    except ImportError:
        docker = None
    if docker is not None:
        try:
            client = docker.from_env(timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def image_exists(image: str) -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


def run_infra_script(timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run scripts/test-infra.sh (installs/starts docker, builds the base image)."""
    env = dict(os.environ, MLDEPLOY_TEST_BASE_IMAGE=base_image())
    return subprocess.run(["bash", str(INFRA_SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)


def ensure_base_image(build: bool = True) -> str:
    """Return the base image tag, building it with scripts/test-infra.sh when missing."""
    image = base_image()
    if image_exists(image):
        return image
    if not build:
        raise RuntimeError(f"docker image {image} missing; run scripts/test-infra.sh")
    result = run_infra_script()
    if result.returncode != 0 or not image_exists(image):
        raise RuntimeError(
            f"scripts/test-infra.sh failed to provide {image} (rc={result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return image
