"""``model.store: s3``: the packaged artifact → the account's model bucket, content-addressed, uploaded once.

The artifact folder (``mldeploy package`` output: ``model.json`` + the served model) is described by an *index*
(``INDEX_FILE``: every file's relative path, size and sha256). The index's own sha256 names the upload:
``<app>/<env>/<version>/<index sha256[:16]>/`` holds the files and, written last, the index. The task definition
pins the prefix and the index's full sha256 (``MLDEPLOY_MODEL_INDEX_SHA256``), so a task downloads exactly the
bytes ``up`` uploaded (``runtime.model_fetch`` verifies the index, then every file against it, and the loaders
verify the served file against ``model.json``).

Re-running ``up`` uploads nothing: the index object present with S3's own SHA-256 of the index we computed means
the upload completed; a partial upload (killed before the index) re-sends only the files whose object is missing or
whose S3 checksum differs. Every object is uploaded with ``ChecksumAlgorithm=SHA256``, so S3 computes (and, when
the client sends one, validates) the checksum from the bytes it stores: nobody who can write to the bucket can make
``up`` skip a file it replaced (user metadata such as ``x-amz-meta-sha256`` is whatever the writer says, so it
decides nothing). Large files go through boto3's managed transfer (multipart above ``MULTIPART_THRESHOLD``); their
S3 checksum is a checksum of the parts' checksums, compared with the same computed locally over our part layout.

The artifact folder is the user's: a symlink in it that leaves it (or dangles, or loops) is refused before anything
is hashed or uploaded (``mldeploy.artifacts.safe_copy``), as when it is copied into an image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import ArtifactError, AwsError, ExitCode

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui

INDEX_FILE = "mldeploy-files.json"
"""Uploaded last, beside the artifact's files (the runtime reads the same name: ``runtime.model_fetch``)."""
SKIP = {".package-key", ".quantize.json"}
"""Packager bookkeeping in the artifact folder that the server never reads."""
SHA_META = "sha256"
"""User metadata (``x-amz-meta-sha256``) on every uploaded object: for people reading the bucket; never trusted (any
writer sets it), a re-run compares S3's own ``ChecksumSHA256``."""
CHECKSUM = "SHA256"
"""``ChecksumAlgorithm`` of every upload. S3 API reference (HeadObject ``ChecksumSHA256``): "The Base64 encoded,
256-bit SHA256 digest of the object ... When you use an API operation on an object that was uploaded using multipart
uploads, this value may not be a direct checksum value of the full object. Instead, it's a calculation based on the
checksum values of each individual part"; it is returned only with ``ChecksumMode=ENABLED`` ("To retrieve the
checksum, this parameter must be enabled"). A SHA-256 full-object checksum exists for single-part objects only
(S3 user guide, "Checking object integrity": full-object multipart checksums are CRC-based), so a multipart file is
compared on the COMPOSITE value: sha256 of the concatenated part digests (``composite_sha256``)."""
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
    """Hash every file of the artifact folder (``model.json`` required; a symlink out of it refused: exit 3)."""
    from mldeploy.artifacts.hashing import sha256_path  # lazy: mldeploy.artifacts imports the packager
    from mldeploy.artifacts.safe_copy import check_links
    from runtime.manifest import MANIFEST_FILE, Manifest

    if not (folder / MANIFEST_FILE).is_file():
        raise AwsError(f"{folder}: no {MANIFEST_FILE} to upload", hint="run `mldeploy package` first")
    check_links(folder, folder, lambda problem: ArtifactError(
        f"model artifact {folder}: {problem}", hint="package again (mldeploy package writes no links), or replace "
        "the link by the file", exit_code=ExitCode.CONFIG), within="the artifact folder")
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


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def composite_sha256(path: Path, part_size: int = MULTIPART_CHUNK) -> tuple[str, int]:
    """(base64 sha256 of the parts' sha256 digests, part count): S3's ``ChecksumSHA256`` of a multipart upload of
    ``path`` in ``part_size`` parts (boto3's managed transfer cuts ``MULTIPART_CHUNK`` parts)."""
    digests = []
    with open(path, "rb") as fh:
        while chunk := fh.read(part_size):
            digests.append(hashlib.sha256(chunk).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode(), len(digests)


def _verified(head: dict[str, Any] | None, f: IndexedFile, folder: Path) -> bool:
    """The object S3 holds is ``f``: its size, and S3's SHA-256 checksum equal to ours (single part: the file's
    sha256; multipart: the composite over our part layout, "<b64>-<parts>"). No checksum (uploaded without one, by
    an older mldeploy or by hand): not verified, uploaded again."""
    if head is None or head.get("ContentLength") != f.size or not head.get("ChecksumSHA256"):
        return False
    value, _, parts = str(head["ChecksumSHA256"]).partition("-")
    if f.size < MULTIPART_THRESHOLD:  # what boto3 sends in one PutObject: a full-object checksum
        return not parts and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT" and value == _b64(f.sha256)
    if head.get("ChecksumType", "COMPOSITE") != "COMPOSITE":
        return False
    want, count = composite_sha256(folder / f.path)
    return value == want and (not parts or parts == str(count))  # moto omits the "-<parts>" suffix


def _head(s3: Any, bucket: str, key: str, owner: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner, ChecksumMode="ENABLED")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload(clients: Clients, folder: Path, loc: ModelLocation, index: ArtifactIndex, ui: Ui | None = None,
           *, account: str | None = None) -> UploadResult:
    """Upload the artifact's files (those not already there with S3's checksum equal to ours), then the index."""
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
        document = IndexedFile(INDEX_FILE, len(index.document), index.sha256)
        if _verified(head, document, folder):  # S3's SHA-256 of the stored index is ours: the upload completed
            skipped = [f.path for f in index.files]
        else:
            for f in index.files:
                key = loc.prefix + f.path
                if _verified(_head(s3, loc.bucket, key, owner), f, folder):
                    skipped.append(f.path)
                    continue
                if ui:
                    ui.info(f"uploading {f.path} ({f.size / 1e6:.1f} MB) to s3://{loc.bucket}/{key}")
                s3.upload_file(str(folder / f.path), loc.bucket, key, Config=config, ExtraArgs={
                    "Metadata": {SHA_META: f.sha256}, "ExpectedBucketOwner": owner, "ChecksumAlgorithm": CHECKSUM})
                uploaded.append(f.path)
                sent += f.size
            s3.put_object(Bucket=loc.bucket, Key=loc.prefix + INDEX_FILE, Body=index.document,
                          ContentType="application/json", Metadata={SHA_META: index.sha256},
                          ChecksumAlgorithm=CHECKSUM, ExpectedBucketOwner=owner)
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
