"""``model.store: s3``: the packaged artifact → the account's model bucket, content-addressed, uploaded once.

The artifact folder (``mldeploy package`` output: ``model.json`` + the served model) is described by an *index*
(``INDEX_FILE``: every file's relative path, size and sha256). The index's own sha256 names the upload:
``<app>/<env>/<version>/<index sha256[:16]>/`` holds the files and, written last, the index. The task definition
pins the prefix and the index's full sha256 (``MLDEPLOY_MODEL_INDEX_SHA256``), so a task downloads exactly the
bytes ``up`` uploaded (``runtime.model_fetch`` verifies the index, then every file against it, and the loaders
verify the served file against ``model.json``).

Re-running ``up`` uploads nothing: the index object present with the same sha256 means the upload completed; a
partial upload (killed before the index) re-sends only the files whose object is missing or whose ``sha256``
metadata differs. Large files go through boto3's managed transfer (multipart above ``MULTIPART_THRESHOLD``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui

INDEX_FILE = "mldeploy-files.json"
"""Uploaded last, beside the artifact's files (the runtime reads the same name: ``runtime.model_fetch``)."""
SKIP = {".package-key", ".quantize.json"}
"""Packager bookkeeping in the artifact folder that the server never reads."""
SHA_META = "sha256"
"""User metadata (``x-amz-meta-sha256``) on every uploaded object: what a re-run compares."""
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 64 * 1024 * 1024
"""Parts of 64 MiB: S3 allows at most 10,000 parts per upload (S3 user guide, "Amazon S3 multipart upload
limits": part size 5 MiB to 5 GiB, 10,000 parts), so files up to 625 GiB fit."""
CONCURRENCY = 8


@dataclass(frozen=True)
class IndexedFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ArtifactIndex:
    """What one upload holds: the files, their total size, and the index document's bytes and sha256."""

    files: tuple[IndexedFile, ...]
    version: str

    @property
    def document(self) -> bytes:
        doc = {"schema": 1, "version": self.version,
               "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.document).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ModelLocation:
    """Where a version's artifact lives: what the task definition's environment and the task role's policy name."""

    bucket: str
    prefix: str
    index_sha256: str
    total_bytes: int
    owner: str = ""
    """The bucket's account: the runtime passes it as ``ExpectedBucketOwner``."""

    def environment(self) -> dict[str, str]:
        """The runtime's variables (``runtime.model_fetch``): not secrets, the bucket policy and task role guard it."""
        return {"MLDEPLOY_MODEL_S3_BUCKET": self.bucket, "MLDEPLOY_MODEL_S3_PREFIX": self.prefix,
                "MLDEPLOY_MODEL_INDEX_SHA256": self.index_sha256, "MLDEPLOY_MODEL_BYTES": str(self.total_bytes),
                **({"MLDEPLOY_MODEL_S3_OWNER": self.owner} if self.owner else {})}


_INDEXED: dict[tuple[Any, ...], ArtifactIndex] = {}
"""Indexes by the folder's (path, size, mtime) listing: ``up`` plans twice and uploads; hashing runs once."""


def index_artifact(folder: Path) -> ArtifactIndex:
    """Hash every file of the artifact folder (``model.json`` required)."""
    from mldeploy.artifacts.hashing import sha256_path  # lazy: mldeploy.artifacts imports the packager
    from runtime.manifest import MANIFEST_FILE, Manifest

    if not (folder / MANIFEST_FILE).is_file():
        raise AwsError(f"{folder}: no {MANIFEST_FILE} to upload", hint="run `mldeploy package` first")
    paths = []
    for p in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel not in SKIP and "__pycache__" not in rel:
            paths.append((rel, p))
    key = (str(folder.resolve()), *((rel, p.stat().st_size, p.stat().st_mtime_ns) for rel, p in paths))
    if key not in _INDEXED:
        files = tuple(IndexedFile(rel, p.stat().st_size, sha256_path(p)) for rel, p in paths)
        _INDEXED[key] = ArtifactIndex(files, Manifest.load(folder).version)
    return _INDEXED[key]


def prefix_for(app: str, env: str, version: str, index_sha256: str) -> str:
    """``<app>/<env>/<version>/<index sha256[:16]>/``: one prefix per version and content (a re-packaged version
    gets a new one, so a running task definition's prefix never changes under it)."""
    return f"{app}/{env}/{version}/{index_sha256[:16]}/"


def env_prefix(app: str, env: str) -> str:
    """Everything one app/env uploaded (``down`` deletes it)."""
    return f"{app}/{env}/"


def location(project: Project, account: str, region: str, folder: Path) -> tuple[ModelLocation, ArtifactIndex]:
    from mldeploy.aws.resources.model_store import bucket_name

    index = index_artifact(folder)
    n = project.names
    loc = ModelLocation(bucket_name(account, region), prefix_for(n.app, n.env, index.version, index.sha256),
                        index.sha256, index.total_bytes, account)
    return loc, index


@dataclass(frozen=True)
class UploadResult:
    location: ModelLocation
    uploaded: list[str]
    skipped: list[str]
    uploaded_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.location.bucket, "prefix": self.location.prefix, "uploaded": self.uploaded,
                "skipped": self.skipped, "uploaded_bytes": self.uploaded_bytes, "seconds": round(self.seconds, 2)}


def _head(s3: Any, bucket: str, key: str, owner: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload(clients: Clients, folder: Path, loc: ModelLocation, index: ArtifactIndex, ui: Ui | None = None,
           *, account: str | None = None) -> UploadResult:
    """Upload the artifact's files (those not already there with the same sha256), then the index."""
    from boto3.s3.transfer import TransferConfig

    from mldeploy.aws.clients import aws_errors

    t0 = time.monotonic()
    s3 = clients.get("s3")
    owner = account or clients.account
    # ExpectedBucketOwner on every call: the bucket's name is predictable, so a bucket of that name in another
    # account must get a 403, never our model (S3 user guide, "Verifying bucket ownership with bucket owner
    # condition")
    uploaded, skipped, sent = [], [], 0
    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK,
                            max_concurrency=CONCURRENCY)
    with aws_errors("s3:PutObject"):
        head = _head(s3, loc.bucket, loc.prefix + INDEX_FILE, owner)
        if head is not None and (head.get("Metadata") or {}).get(SHA_META) == index.sha256:
            skipped = [f.path for f in index.files]
        else:
            for f in index.files:
                key = loc.prefix + f.path
                got = _head(s3, loc.bucket, key, owner)
                if got is not None and (got.get("Metadata") or {}).get(SHA_META) == f.sha256 \
                        and got.get("ContentLength") == f.size:
                    skipped.append(f.path)
                    continue
                if ui:
                    ui.info(f"uploading {f.path} ({f.size / 1e6:.1f} MB) to s3://{loc.bucket}/{key}")
                s3.upload_file(str(folder / f.path), loc.bucket, key, Config=config, ExtraArgs={
                    "Metadata": {SHA_META: f.sha256}, "ExpectedBucketOwner": owner})
                uploaded.append(f.path)
                sent += f.size
            s3.put_object(Bucket=loc.bucket, Key=loc.prefix + INDEX_FILE, Body=index.document,
                          ContentType="application/json", Metadata={SHA_META: index.sha256},
                          ExpectedBucketOwner=owner)
    result = UploadResult(loc, uploaded, skipped, sent, time.monotonic() - t0)
    if ui:
        if uploaded:
            ui.info(f"model artifact: uploaded {len(uploaded)} files ({sent / 1e6:.1f} MB) in {result.seconds:.1f}s "
                    f"to s3://{loc.bucket}/{loc.prefix}")
        else:
            ui.info(f"model artifact: already in s3://{loc.bucket}/{loc.prefix} (nothing uploaded)")
    return result


def publish(project: Project, clients: Clients, ui: Ui | None = None, remote: Any = None) -> UploadResult | None:
    """``model.store: s3``: package (cached), make sure the bucket exists, upload; None with ``store: image``.
    ``up`` and ``canary`` call it before they plan the task definition that points at the upload."""
    if project.config.model.store != "s3":
        return None
    from mldeploy.artifacts.packager import package
    from mldeploy.aws.engine.executor import Executor
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import StackSpec
    from mldeploy.aws.resources import model_store
    from mldeploy.ui import NULL_UI

    ui = ui or NULL_UI
    result = package(project)
    remote = remote or Remote(clients)
    spec = StackSpec.of(project, remote)
    Executor(clients, ui).apply(model_store.plan(spec, remote, {}))
    remote.forget()
    loc, index = location(project, spec.account, spec.region, Path(result.dir))
    return upload(clients, Path(result.dir), loc, index, ui, account=spec.account)
