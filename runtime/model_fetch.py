"""``model.store: s3``: download the model artifact into the task's ephemeral storage and verify it, before serving.

The task definition names the upload (``MLDEPLOY_MODEL_S3_BUCKET``, ``MLDEPLOY_MODEL_S3_PREFIX``) and pins the
sha256 of its index (``MLDEPLOY_MODEL_INDEX_SHA256``; the index ``mldeploy-files.json`` lists every file's path,
size and sha256, written by ``mldeploy.aws.model_upload``). The index is refused unless its sha256 is the pinned
one; every file is downloaded (boto3's managed transfer: parallel ranged GETs) and refused unless its sha256 is
the index's; ``model.json`` must be among them and name the same version; the loaders then verify the served
file against ``model.json`` as for a model baked into the image. Any mismatch raises ``FetchError`` naming the
file, and the server exits non-zero without ever reporting ready.

Nothing unbounded is read on the strength of an object in the bucket: the index is read up to ``MAX_INDEX_BYTES``
(its sha256 is checked after); each entry must be a relative path inside the artifact with an integer size and a
sha256; the artifact must fit the free space under the cache folder; and each object's size is compared with the
index before it is downloaded, and counted while it downloads (a replaced object is refused, not stored).

While the download runs, ``StartupProbe`` answers on the server's port: ``/health`` 200 and ``/ready`` (and
everything else) 503 with the phase, so the load balancer and ECS see a live task that is not ready yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.contract import shadow as shadow_limits
from runtime.manifest import MANIFEST_FILE, Manifest

log = logging.getLogger("mldeploy.model_fetch")

INDEX_FILE = "mldeploy-files.json"
ENV_BUCKET, ENV_PREFIX = "MLDEPLOY_MODEL_S3_BUCKET", "MLDEPLOY_MODEL_S3_PREFIX"
ENV_INDEX = "MLDEPLOY_MODEL_INDEX_SHA256"
ENV_OWNER, ENV_CACHE = "MLDEPLOY_MODEL_S3_OWNER", "MLDEPLOY_MODEL_CACHE_DIR"
ENV_SHADOW_PREFIX, ENV_SHADOW_INDEX = "MLDEPLOY_SHADOW_S3_PREFIX", "MLDEPLOY_SHADOW_INDEX_SHA256"
ENV_SHADOW_VERSION, ENV_SHADOW_SAMPLE = "MLDEPLOY_SHADOW_VERSION", "MLDEPLOY_SHADOW_SAMPLE"
ENV_SHADOW_QUEUE, ENV_SHADOW_QUEUE_BYTES = "MLDEPLOY_SHADOW_QUEUE", "MLDEPLOY_SHADOW_QUEUE_BYTES"
"""``canary --shadow`` on AWS: a second artifact (the candidate) in the same bucket, evaluated off the request path
by ``runtime.shadow`` (the stable tasks' task definition names it, and the shadow queue's bounds from
``release.gates.queue`` / ``queue_bytes``; see docs/release-gates.md)."""
SERVING_DIR = "serving"
CHUNK = 16 * 1024 * 1024
CONCURRENCY = 10
MAX_INDEX_BYTES = 16 * 1024 * 1024
"""An index entry is ~120 bytes (path, size, sha256): 16 MiB lists over 100,000 files. A larger object at the
index's key is not an index ``up`` wrote: refused after reading at most this much."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FetchError(Exception):
    """The artifact cannot be downloaded or does not verify; the message names the file."""


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str
    index_sha256: str
    owner: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Fetched:
    folder: Path
    files: int
    bytes: int
    seconds: float
    multi: bool = False
    """True: ``folder`` is a models folder (one sub-folder per version + ``routing.json``), not one artifact."""

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def requested(environ: dict[str, str] | os._Environ[str] | None = None) -> S3Source | None:
    """The S3 source the environment names (None: the model is in the image)."""
    env = os.environ if environ is None else environ
    bucket, prefix, digest = env.get(ENV_BUCKET), env.get(ENV_PREFIX), env.get(ENV_INDEX)
    if not bucket and not prefix:
        return None
    missing = [k for k, v in ((ENV_BUCKET, bucket), (ENV_PREFIX, prefix), (ENV_INDEX, digest)) if not v]
    if missing:
        raise FetchError(f"model.store s3: {', '.join(missing)} not set (the task definition sets all three)")
    assert bucket and prefix and digest
    return S3Source(bucket, prefix if prefix.endswith("/") else prefix + "/", digest.lower(), env.get(ENV_OWNER))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _safe(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\x00" in rel:
        raise FetchError(f"{INDEX_FILE}: refusing the path {rel!r} (outside the artifact folder)")
    return p.as_posix()


def _entries(index: Any) -> list[tuple[str, int, str]]:
    """The index's ``files`` as (path, size, sha256), each path inside the artifact folder and listed once (not
    also as another file's folder); a FetchError naming the entry otherwise."""
    files = index.get("files") if isinstance(index, dict) else None
    if not isinstance(files, list):
        raise FetchError(f"{INDEX_FILE}: expected an object with a list of files")
    out: list[tuple[str, int, str]] = []
    for i, f in enumerate(files):
        ok = isinstance(f, dict) and isinstance(f.get("path"), str) and type(f.get("size")) is int \
            and f["size"] >= 0 and isinstance(f.get("sha256"), str) and _SHA256.fullmatch(f["sha256"])
        if not ok:
            raise FetchError(f"{INDEX_FILE}: files[{i}] is not {{path, size ≥ 0, sha256}}: {str(f)[:120]}")
        out.append((_safe(f["path"]), f["size"], f["sha256"]))
    paths = [p for p, _, _ in out]
    listed = set(paths)
    for rel in paths:
        clash = next((d.as_posix() for d in PurePosixPath(rel).parents if d.as_posix() in listed), None)
        if clash is not None or paths.count(rel) > 1:
            raise FetchError(f"{INDEX_FILE}: the path {rel!r} is listed twice"
                             + (f" (as a file and inside {clash!r})" if clash else ""))
    return out


def _read_index(s3: Any, source: S3Source, owner: dict[str, str]) -> bytes:
    """The index object's bytes, at most ``MAX_INDEX_BYTES + 1`` of them read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        got = s3.get_object(Bucket=source.bucket, Key=source.prefix + INDEX_FILE, **owner)
        size = int(got.get("ContentLength") or 0)
        with contextlib.closing(got["Body"]) as body:
            data = b"" if size > MAX_INDEX_BYTES else body.read(MAX_INDEX_BYTES + 1)
    except (ClientError, BotoCoreError) as e:
        raise FetchError(f"{source.url}{INDEX_FILE}: cannot download the artifact index: {e}") from None
    if size > MAX_INDEX_BYTES or len(data) > MAX_INDEX_BYTES:
        raise FetchError(f"{INDEX_FILE}: the object at {source.url} is {max(size, len(data))} bytes, above "
                         f"{MAX_INDEX_BYTES}: not an artifact index mldeploy wrote; refusing to read it")
    return data


class _Bounded:
    """A download's progress callback that counts one file's bytes and stops the transfer past its indexed size."""

    def __init__(self, rel: str, size: int, advance: Any) -> None:
        self.rel, self.size, self.advance, self.done = rel, size, advance, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.done > self.size:
            raise FetchError(f"{self.rel}: the object is larger than the artifact index says ({self.size} bytes): "
                             "refusing to store it")
        self.advance(n)


def _check_space(root: Path, total: int) -> None:
    free = shutil.disk_usage(root).free
    if total > free:
        raise FetchError(f"the artifact is {total / 2**30:.2f} GiB but {root} has {free / 2**30:.2f} GiB free: the "
                         "task's ephemeral storage is too small for it (`up` sizes it from the artifact: re-run it)")


def _client() -> Any:
    import boto3
    from botocore.config import Config

    # AWS_ENDPOINT_URL and the task role's credentials come from the environment (boto3's standard chain)
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 8},
                                            max_pool_connections=CONCURRENCY * 2))


def fetch(source: S3Source, dest_root: Path | str | None = None, client: Any = None,
          progress: dict[str, Any] | None = None) -> Fetched:
    """Download and verify the artifact under ``dest_root`` (``$MLDEPLOY_MODEL_CACHE_DIR``, else the temporary
    folder: ``/tmp``, the task's ephemeral storage); returns its folder. ``progress`` gets ``bytes_done``."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    t0 = time.perf_counter()
    root = Path(dest_root or os.environ.get(ENV_CACHE) or Path(tempfile.gettempdir()) / "mldeploy-model")
    dest = root / source.index_sha256[:16]
    s3 = client or _client()
    owner = {"ExpectedBucketOwner": source.owner} if source.owner else {}
    body = _read_index(s3, source, owner)
    got = hashlib.sha256(body).hexdigest()
    if got != source.index_sha256:
        raise FetchError(f"{INDEX_FILE}: sha256 {got[:12]}… does not match {ENV_INDEX} ({source.index_sha256[:12]}…): "
                         f"the index at {source.url} is not the one this task definition was made for")
    try:
        index = json.loads(body)
    except ValueError as e:
        raise FetchError(f"{INDEX_FILE}: not JSON ({e})") from None
    files = _entries(index)
    if MANIFEST_FILE not in {p for p, _, _ in files}:
        raise FetchError(f"{INDEX_FILE}: no {MANIFEST_FILE} in the artifact at {source.url}")
    root.mkdir(parents=True, exist_ok=True)
    _check_space(root, sum(size for _, size, _ in files))
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    config = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=CONCURRENCY)
    done = 0
    lock = threading.Lock()

    def advance(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            if progress is not None:
                progress["bytes_done"] = done

    try:
        for rel, size, digest in files:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # the object's size first: a replaced larger object is refused before a byte is stored (a
                # smaller one is bounded anyway, and its sha256 is refused below)
                stored = int(s3.head_object(Bucket=source.bucket, Key=source.prefix + rel, **owner)["ContentLength"])
                if stored > size:
                    raise FetchError(f"{rel}: the object is {stored} bytes but the artifact index says {size}: "
                                     "refusing to download it")
                s3.download_file(source.bucket, source.prefix + rel, str(target), Config=config,
                                 Callback=_Bounded(rel, size, advance), ExtraArgs=owner or None)
            except (ClientError, BotoCoreError) as e:
                raise FetchError(f"{rel}: cannot download {source.url}{rel}: {e}") from None
            actual = _sha256(target)
            if actual != digest or target.stat().st_size != size:
                raise FetchError(f"{rel}: sha256 {actual[:12]}… ({target.stat().st_size} bytes) does not match "
                                 f"the artifact index ({digest[:12]}…, {size} bytes): refusing to serve it")
        try:
            manifest = Manifest.load(tmp)
        except ValueError as e:
            raise FetchError(f"{MANIFEST_FILE}: invalid manifest: {e}") from None
        if index.get("version") and manifest.version != index["version"]:
            raise FetchError(f"{MANIFEST_FILE}: version {manifest.version} but the index says {index['version']}")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Fetched(dest, len(files), sum(s for _, s, _ in files), time.perf_counter() - t0)


@dataclass(frozen=True)
class ShadowSource:
    """The candidate named by ``MLDEPLOY_SHADOW_*``: its artifact (same bucket and owner as the stable's) and the
    share of stable requests it answers."""

    source: S3Source
    version: str
    sample: float
    queue: int = shadow_limits.QUEUE
    queue_bytes: int = shadow_limits.QUEUE_BYTES


def _bounded(env: Any, name: str, default: int, low: int, high: int) -> int:
    """An integer variable in ``low..high`` (unset: ``default``); FetchError names the variable."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FetchError(f"{name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise FetchError(f"{name}: {value} is not in {low}..{high}")
    return value


def shadow_requested(stable: S3Source, environ: dict[str, str] | os._Environ[str] | None = None
                     ) -> ShadowSource | None:
    """The shadow candidate the environment names (None: no shadow phase)."""
    env = os.environ if environ is None else environ
    prefix, digest, version = env.get(ENV_SHADOW_PREFIX), env.get(ENV_SHADOW_INDEX), env.get(ENV_SHADOW_VERSION)
    if not (prefix or digest or version):
        return None
    missing = [k for k, v in ((ENV_SHADOW_PREFIX, prefix), (ENV_SHADOW_INDEX, digest), (ENV_SHADOW_VERSION, version))
               if not v]
    if missing:
        raise FetchError(f"shadow evaluation: {', '.join(missing)} not set (the task definition sets all three)")
    try:
        sample = float(env.get(ENV_SHADOW_SAMPLE) or "0.1")
    except ValueError:
        raise FetchError(f"{ENV_SHADOW_SAMPLE}: {env.get(ENV_SHADOW_SAMPLE)!r} is not a number") from None
    if not 0 < sample <= 1:
        raise FetchError(f"{ENV_SHADOW_SAMPLE}: {sample} is not in (0, 1]")
    lim = shadow_limits  # the bounds runtime.shadow.ShadowConfig.parse applies to routing.json
    queue = _bounded(env, ENV_SHADOW_QUEUE, lim.QUEUE, lim.QUEUE_MIN, lim.QUEUE_MAX)
    queue_bytes = _bounded(env, ENV_SHADOW_QUEUE_BYTES, lim.QUEUE_BYTES, lim.QUEUE_BYTES_MIN, lim.QUEUE_BYTES_MAX)
    assert prefix and digest and version
    src = S3Source(stable.bucket, prefix if prefix.endswith("/") else prefix + "/", digest.lower(), stable.owner)
    return ShadowSource(src, version, sample, queue, queue_bytes)


def serving_folder(stable: Path, candidate: Path, candidate_version: str, sample: float, root: Path, *,
                   queue: int = shadow_limits.QUEUE, queue_bytes: int = shadow_limits.QUEUE_BYTES) -> Path:
    """A models folder holding both artifacts (symlinks, nothing copied) and the ``routing.json`` the local target
    writes for a shadow: every request to the stable version, ``sample`` of them shadowed by the candidate, through
    a queue of at most ``queue`` offers and ``queue_bytes`` bytes."""
    stable_version = Manifest.load(stable).version
    got = Manifest.load(candidate).version
    if got != candidate_version:
        raise FetchError(f"{MANIFEST_FILE}: the shadow artifact is version {got}, {ENV_SHADOW_VERSION} says "
                         f"{candidate_version}")
    if stable_version == candidate_version:
        raise FetchError(f"shadow evaluation: the candidate {candidate_version} is the stable version")
    for v in (stable_version, candidate_version):  # each names a folder (a symlink) inside the models folder
        if not v or v in (".", "..") or any(c in v for c in "/\\\x00"):
            raise FetchError(f"shadow evaluation: the version {v!r} cannot name a folder (one path component)")
    dest = root / SERVING_DIR
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    (dest / stable_version).symlink_to(stable.resolve(), target_is_directory=True)
    (dest / candidate_version).symlink_to(candidate.resolve(), target_is_directory=True)
    routing = {"weights": {stable_version: 100, candidate_version: 0},
               "shadow": {"version": candidate_version, "sample": sample, "queue": queue, "queue_bytes": queue_bytes}}
    (dest / "routing.json").write_text(json.dumps(routing))
    return dest


PROBE_FIELDS = ("phase", "bytes_done")
"""What the probe tells any caller: progress only; the bucket, prefix and account stay in the task's log. The
serving port is public behind the ALB, and the ALB routes to unhealthy targets when no target is healthy (ELB guide,
"Health checks for Application Load Balancer target groups": "If a target group contains only unhealthy registered
targets, the load balancer routes requests to all those targets"), so a first deployment's downloading tasks answer
the internet."""


class StartupProbe:
    """A minimal HTTP server on the serving port while the artifact downloads: ``/health`` 200, the rest 503."""

    def __init__(self, host: str, port: int, state: dict[str, Any]) -> None:
        self.state = state
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                live = self.path.split("?", 1)[0] == "/health"
                doc = {"status": "starting"} if live else {
                    "ready": False, **{k: v for k, v in probe.state.items() if k in PROBE_FIELDS}}
                body = json.dumps(doc).encode()
                self.send_response(200 if live else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="startup-probe", daemon=True)

    def __enter__(self) -> StartupProbe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


ENV_LOCAL = "MLDEPLOY_MODEL_ARTIFACT_DIR"
"""A model.store s3 image run locally (``mldeploy run``): the packaged artifact mounted read-only instead of S3."""


def link_local(artifact: Path, settings_dir: str | None, dest_root: Path | str | None = None) -> Fetched:
    """The mounted artifact plus the image's ``runtime.json`` as one folder of symlinks under the temporary folder
    (nothing copied; the loaders verify the served file against ``model.json`` as always)."""
    t0 = time.perf_counter()
    if not (artifact / MANIFEST_FILE).is_file():
        raise FetchError(f"{ENV_LOCAL} {artifact}: no {MANIFEST_FILE} (mount the `mldeploy package` output folder)")
    root = Path(dest_root or os.environ.get(ENV_CACHE) or Path(tempfile.gettempdir()) / "mldeploy-model")
    dest = root / "local"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for entry in artifact.iterdir():
        if entry.name != "runtime.json":
            (dest / entry.name).symlink_to(entry.resolve())
    size = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file())
    if settings_dir and (Path(settings_dir) / "runtime.json").is_file():
        shutil.copy(Path(settings_dir) / "runtime.json", dest / "runtime.json")
    return Fetched(dest, sum(1 for _ in artifact.rglob("*")), size, time.perf_counter() - t0)


def prepare(settings_dir: str | None, host: str, port: int, environ: dict[str, str] | None = None) -> Fetched | None:
    """Runtime startup: when the environment names an S3 artifact, download and verify it behind a
    ``StartupProbe``, copy the image's ``runtime.json`` next to it, and return where it is (None: nothing to do)."""
    env = os.environ if environ is None else environ
    source = requested(env)
    if source is None and env.get(ENV_LOCAL):
        linked = link_local(Path(env[ENV_LOCAL]), settings_dir)
        log.info("serving the mounted artifact %s (model.store s3, run locally)", env[ENV_LOCAL])
        return linked
    if source is None:
        return None
    shadow = shadow_requested(source, env)
    state: dict[str, Any] = {"phase": "downloading model", "source": source.url, "bytes_done": 0}
    log.info("downloading the model artifact from %s", source.url)
    with StartupProbe(host, port, state):
        fetched = fetch(source, progress=state)
        if shadow is not None:  # the shadow candidate, verified the same way, before the stable serves
            state.update(phase="downloading shadow model", source=shadow.source.url, bytes_done=0)
            log.info("downloading the shadow candidate %s from %s", shadow.version, shadow.source.url)
            cand = fetch(shadow.source, progress=state)
        state["phase"] = "verified"
    if settings_dir and (Path(settings_dir) / "runtime.json").is_file():
        shutil.copy(Path(settings_dir) / "runtime.json", fetched.folder / "runtime.json")
    if shadow is not None:
        folder = serving_folder(fetched.folder, cand.folder, shadow.version, shadow.sample, fetched.folder.parent,
                                queue=shadow.queue, queue_bytes=shadow.queue_bytes)
        if (fetched.folder / "runtime.json").is_file():  # load_settings reads it in MLDEPLOY_MODELS_DIR
            shutil.copy(fetched.folder / "runtime.json", folder / "runtime.json")
        log.info("shadow evaluation of %s on %.0f%% of the requests (%d files, %.1f MB verified)", shadow.version,
                 100 * shadow.sample, cand.files, cand.bytes / 1e6)
        fetched = Fetched(folder, fetched.files + cand.files, fetched.bytes + cand.bytes,
                          fetched.seconds + cand.seconds, multi=True)
    log.info("downloaded and verified %d files (%.1f MB) from %s in %.2fs (%.0f MB/s)", fetched.files,
             fetched.bytes / 1e6, source.url, fetched.seconds, fetched.mb_per_s,
             extra={"seconds": round(fetched.seconds, 3), "bytes": fetched.bytes})
    return fetched
