"""``model.store: s3`` against a moto S3 server (strict AWS rules on): the bucket as planned and applied, the upload
of an artifact over 100 MB (multipart), a re-run that uploads nothing, the runtime's download + verification
(in-process and as the real ``python -m runtime`` with ``AWS_ENDPOINT_URL`` at moto: /ready 503 while
downloading), tampered objects refused with the file named, and ``down`` deleting this env's objects and the
bucket only once no other app's objects remain.

The TLS-only bucket policy stays applied: moto ignores Conditions (its put_bucket_policy: "Conditions are not taken
into account", so the ``aws:SecureTransport`` deny would refuse every request), and the strict layer
(mldeploy/testing/aws_rules/s3_policy.py) keeps it from moto and evaluates it itself (the moto endpoint stands in
for TLS: ``MLDEPLOY_STRICT_AWS_TLS=1``). What moto cannot show: ``ExpectedBucketOwner`` across accounts (moto
accepts any owner; one account here), and S3's real throughput (the figures printed are moto on localhost).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import boto3
import pytest

from benchmarks import models as ex
from mldeploy.aws import model_upload
from mldeploy.aws.clients import Clients
from mldeploy.aws.engine.executor import Executor
from mldeploy.aws.engine.model import Action
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.resources import model_store
from mldeploy.testing import hooks_from_env
from mldeploy.ui import NULL_UI
from mldeploy.workspace import Workspace
from runtime import model_fetch
from tests.infra import http_request, runtime_server
from tests.unit.fakes import ACCOUNT, spec
from tests.unit.fakes import project as make_project

BIG = 110 * 1024 * 1024
CONFIG = "name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\n  store: s3\n"


@pytest.fixture
def strict(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Clients:
    monkeypatch.setenv("MLDEPLOY_STRICT_AWS", "1")
    return Clients(boto3.Session(), "us-east-1", hooks=hooks_from_env())


@pytest.fixture(scope="module")
def artifact_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged iris ONNX artifact plus a 110 MB weights file (random bytes: nothing compresses or dedupes)."""
    folder = tmp_path_factory.mktemp("artifact") / "artifact"
    ex.iris_onnx(folder)
    (folder / "weights").mkdir()
    (folder / "weights" / "extra.bin").write_bytes(os.urandom(BIG))
    return folder


@pytest.fixture
def proj(tmp_path: Path, artifact_src: Path):
    p = make_project(CONFIG, root=tmp_path)
    dest = Workspace.of(p).artifact_dir
    dest.parent.mkdir(parents=True)
    os.symlink(artifact_src, dest)  # the workspace's package output, without copying 110 MB per test
    return p


def _apply_bucket(clients: Clients, proj) -> list:
    """Plan + apply the bucket, TLS-only policy included (read back through the strict layer, as the CLI reads it)."""
    remote = Remote(clients)
    steps = model_store.plan(spec(proj), remote, {})
    Executor(clients, NULL_UI).apply(steps)
    name = model_store.bucket_name(ACCOUNT, "us-east-1")
    policy = json.loads(clients.s3.get_bucket_policy(Bucket=name)["Policy"])
    assert policy == model_store.bucket_policy(spec(proj), name)
    return steps


def test_bucket_upload_rerun_fetch_and_tamper(strict: Clients, proj, tmp_path: Path, capsys) -> None:
    s3 = boto3.client("s3")
    (created,) = _apply_bucket(strict, proj)
    name = f"mldeploy-{ACCOUNT}-us-east-1"
    assert (created.action, created.name) == (Action.create, name)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    enc = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    (statement,) = json.loads(strict.s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"]  # as applied
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["mldeploy:purpose"] == "model-store"
    (again,) = _apply_bucket(strict, proj)  # applied = desired, the TLS-only policy included: nothing to change
    assert again.action == Action.noop, again.changes

    folder = Workspace.of(proj).artifact_dir
    loc, index = model_upload.location(proj, ACCOUNT, "us-east-1", folder)
    assert loc.prefix == f"demo/default/1.0.0/{index.sha256[:16]}/" and loc.total_bytes > BIG
    t0 = time.perf_counter()
    first = model_upload.upload(strict, folder, loc, index, account=ACCOUNT)
    upload_s = time.perf_counter() - t0
    assert sorted(first.uploaded) == ["model.json", "model.onnx", "weights/extra.bin"] and not first.skipped
    head = s3.head_object(Bucket=name, Key=loc.prefix + "weights/extra.bin")
    assert head["ContentLength"] == BIG and "-" in head["ETag"]  # a multipart upload's ETag: "<md5>-<parts>"
    assert head["Metadata"]["sha256"] == hashlib.sha256((folder / "weights/extra.bin").read_bytes()).hexdigest()
    # S3's own checksums (ChecksumAlgorithm=SHA256): the small files' sha256, the multipart file's checksum of its
    # parts' checksums (moto returns it without real S3's "-<parts>" suffix and without ChecksumType)
    checks = {f: s3.head_object(Bucket=name, Key=loc.prefix + f, ChecksumMode="ENABLED").get("ChecksumSHA256")
              for f in ("model.onnx", "weights/extra.bin", model_upload.INDEX_FILE)}
    onnx_sha = hashlib.sha256((folder / "model.onnx").read_bytes()).digest()
    assert checks["model.onnx"] == base64.b64encode(onnx_sha).decode()
    composite, parts = model_upload.composite_sha256(folder / "weights/extra.bin")
    assert parts == 2 and checks["weights/extra.bin"].split("-")[0] == composite
    assert checks[model_upload.INDEX_FILE] == base64.b64encode(bytes.fromhex(index.sha256)).decode()

    strict.counter.calls.clear()
    again = model_upload.upload(strict, folder, loc, index, account=ACCOUNT)
    assert again.uploaded == [] and again.uploaded_bytes == 0 and len(again.skipped) == 3
    assert [op for _, op in strict.counter.calls] == ["HeadObject"]  # the index is there: one request, no upload

    source = model_fetch.requested(loc.environment())
    assert source is not None and source.owner == ACCOUNT
    fetched = model_fetch.fetch(source, tmp_path / "cache", client=s3)
    assert fetched.bytes == loc.total_bytes
    assert (fetched.folder / "weights/extra.bin").read_bytes() == (folder / "weights/extra.bin").read_bytes()
    with capsys.disabled():
        print(f"\n[model.store s3, moto] upload {loc.total_bytes / 1e6:.0f} MB in {upload_s:.2f}s; re-run "
              f"{again.seconds:.3f}s; download + verify {fetched.seconds:.2f}s ({fetched.mb_per_s:.0f} MB/s)")

    # tampered: same key, different bytes → the file is named, nothing is served
    s3.put_object(Bucket=name, Key=loc.prefix + "model.onnx", Body=b"not the model")
    with pytest.raises(model_fetch.FetchError, match=r"^model.onnx: sha256 .* does not match the artifact index"):
        model_fetch.fetch(source, tmp_path / "cache2", client=s3)
    # a replaced index cannot vouch for replaced files: it must be the one the task definition pinned
    s3.put_object(Bucket=name, Key=loc.prefix + model_upload.INDEX_FILE, Body=b'{"files": []}')
    with pytest.raises(model_fetch.FetchError, match=r"^mldeploy-files.json: sha256 .* does not match "
                                                     "MLDEPLOY_MODEL_INDEX_SHA256"):
        model_fetch.fetch(source, tmp_path / "cache3", client=s3)
    assert not list((tmp_path / "cache2").glob(".download-*"))  # partial downloads are removed

    # a bucket writer replaces a file and the index and forges their sha256 metadata: `up` used to skip both (the
    # task then refused to serve); S3's checksums are of the bytes stored, so both are uploaded again
    s3.put_object(Bucket=name, Key=loc.prefix + "model.onnx", Body=b"not the model",
                  Metadata={"sha256": onnx_sha.hex()})
    s3.put_object(Bucket=name, Key=loc.prefix + model_upload.INDEX_FILE, Body=b'{"files": []}',
                  Metadata={"sha256": index.sha256})
    strict.counter.calls.clear()
    healed = model_upload.upload(strict, folder, loc, index, account=ACCOUNT)
    assert healed.uploaded == ["model.onnx"] and sorted(healed.skipped) == ["model.json", "weights/extra.bin"]
    assert [op for _, op in strict.counter.calls].count("PutObject") == 2  # model.onnx, then the index
    assert model_fetch.fetch(source, tmp_path / "cache4", client=s3).bytes == loc.total_bytes  # serves again
    # a forged checksum header is no way around it either: S3 validates the value sent against the body
    # (PutObject ChecksumSHA256; moto stores no checksum then, which `up` also treats as not verified)
    s3.put_object(Bucket=name, Key=loc.prefix + model_upload.INDEX_FILE, Body=b'{"files": []}',
                  ChecksumSHA256=base64.b64encode(bytes.fromhex(index.sha256)).decode())
    strict.counter.calls.clear()
    again = model_upload.upload(strict, folder, loc, index, account=ACCOUNT)
    assert again.uploaded == [] and [op for _, op in strict.counter.calls] == ["HeadObject"] * 4 + ["PutObject"]


def test_runtime_downloads_verifies_then_serves(strict: Clients, proj, aws: dict[str, str], tmp_path: Path) -> None:
    """The real server, with the image's /app/model holding runtime.json only: /ready 503 while downloading,
    then 200 serving the downloaded model; a tampered object: exit 2 naming the file, never ready."""
    _apply_bucket(strict, proj)
    folder = Workspace.of(proj).artifact_dir
    loc, index = model_upload.location(proj, ACCOUNT, "us-east-1", folder)
    model_upload.upload(strict, folder, loc, index, account=ACCOUNT)
    settings_dir = tmp_path / "image-model"
    settings_dir.mkdir()
    (settings_dir / "runtime.json").write_text(json.dumps({"top_k": 1}))
    env = {**aws, **loc.environment(), "MLDEPLOY_MODEL_CACHE_DIR": str(tmp_path / "ephemeral")}
    env.pop("MLDEPLOY_STRICT_AWS")
    t0 = time.perf_counter()
    seen_503 = []
    with runtime_server(tmp_path, settings_dir, env=env, wait_ready=False) as proc:
        while time.perf_counter() - t0 < 60:
            try:
                status, _, body = http_request(proc.url + "/ready", timeout=1)
            except OSError:
                status, body = 0, b""  # between the probe and uvicorn: the port is closed while the model loads
            if status == 503:
                seen_503.append(json.loads(body))
            if status == 200:
                break
            assert proc.popen.poll() is None, proc.logs()
            time.sleep(0.02)
        ready_s = time.perf_counter() - t0
        assert status == 200, proc.logs()
        status, _, body = http_request(proc.url + "/predict", "POST", json.dumps(
            {"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode(), headers={"Content-Type": "application/json"})
        assert status == 200 and b"setosa" in body, body
        logs = proc.logs()
    assert seen_503 and seen_503[0]["phase"] == "downloading model", "no /ready 503 seen while downloading"
    assert "downloaded and verified 4 files" in logs or "downloaded and verified" in logs, logs
    print(f"\n[model.store s3, moto] runtime start → ready {ready_s:.2f}s ({loc.total_bytes / 1e6:.0f} MB)")

    boto3.client("s3").put_object(Bucket=loc.bucket, Key=loc.prefix + "weights/extra.bin", Body=b"x" * 1024)
    env["MLDEPLOY_MODEL_CACHE_DIR"] = str(tmp_path / "ephemeral2")
    with runtime_server(tmp_path, settings_dir, env=env, wait_ready=False) as proc:
        assert proc.popen.wait(60) == 2
        assert "error: weights/extra.bin: sha256" in proc.logs(), proc.logs()


def test_down_deletes_this_env_and_keeps_a_shared_bucket(strict: Clients, proj, tmp_path: Path) -> None:
    _apply_bucket(strict, proj)
    name = model_store.bucket_name(ACCOUNT, "us-east-1")
    s3 = boto3.client("s3")
    for key in ("demo/default/1.0.0/abc/model.json", "demo/default/1.0.0/abc/model.json", "other/prod/1/x/m.json"):
        s3.put_object(Bucket=name, Key=key, Body=b"{}")  # twice: two versions of one key
    remote = Remote(strict)
    steps = model_store.delete(spec(proj), remote, {})
    assert [(s.kind, s.action) for s in steps] == [("s3 objects", Action.delete), ("s3 bucket", Action.noop)]
    assert "other/prod" in steps[1].note
    Executor(strict, NULL_UI).apply(steps)
    left = s3.list_object_versions(Bucket=name)
    assert [v["Key"] for v in left.get("Versions", [])] == ["other/prod/1/x/m.json"]
    assert not left.get("DeleteMarkers")
    s3.delete_object(Bucket=name, Key="other/prod/1/x/m.json")  # the other app leaves (a delete marker remains)
    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in (
        s3.list_object_versions(Bucket=name).get("Versions", []))]})
    steps = model_store.delete(spec(proj), Remote(strict), {})
    assert [(s.kind, s.name, s.action) for s in steps] == [("s3 objects", f"s3://{name}/", Action.delete),
                                                           ("s3 bucket", name, Action.delete)]
    assert steps[0].changes == ("1 delete markers of removed models",)
    Executor(strict, NULL_UI).apply(steps)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_strict_rules_refuse_bad_bucket_names_and_location_constraints(strict: Clients) -> None:
    from botocore.exceptions import ClientError

    for bad in ("Upper-Case", "ab", "a..b", "192.168.5.4", "xn--bucket", "bucket-s3alias"):
        with pytest.raises(ClientError, match="InvalidBucketName"):
            strict.s3.create_bucket(Bucket=bad)
    with pytest.raises(ClientError, match="InvalidLocationConstraint"):
        strict.s3.create_bucket(Bucket="fine-name", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    strict.s3.create_bucket(Bucket="fine-name")



def test_the_image_context_holds_the_runtime_and_no_model_files(tmp_path: Path, artifact_src: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``model.store: s3``: /app/model gets runtime.json only (boto3 joins the runtime's wheels); ``image``: the
    artifact as before. The wheelhouse is stubbed (an empty folder): this checks the context, not pip."""
    from mldeploy.image import context
    from mldeploy.image.wheelhouse import Wheelhouse
    from runtime.manifest import Manifest

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    seen: list[list[str]] = []

    def fake_wheelhouse(requirements: list[str], **_: object) -> Wheelhouse:
        seen.append(requirements)
        return Wheelhouse(wheels, [], cached=True)

    monkeypatch.setattr(context, "ensure_wheelhouse", fake_wheelhouse)
    manifest = Manifest.load(artifact_src)
    for store, cfg in (("s3", CONFIG), ("image", CONFIG.replace("  store: s3\n", ""))):
        p = make_project(cfg, root=tmp_path / store)
        ctx = context.assemble(p, artifact_src, manifest, tmp_path / store / "ctx", warn=lambda _: None)
        files = sorted(f.relative_to(ctx.dir / "model").as_posix() for f in (ctx.dir / "model").rglob("*")
                       if f.is_file())
        if store == "s3":
            assert files == ["runtime.json"]
            assert any(r.startswith("boto3") for r in seen[-1])
        else:
            assert {"model.json", "model.onnx", "weights/extra.bin", "runtime.json"} <= set(files)
            assert not any(r.startswith("boto3") for r in seen[-1])


def test_an_s3_store_image_run_locally_serves_the_mounted_artifact(tmp_path: Path) -> None:
    """``mldeploy run`` of a ``model.store: s3`` image mounts the package output read-only
    (``MLDEPLOY_MODEL_ARTIFACT_DIR``): the runtime links it beside the image's runtime.json and serves it."""
    from benchmarks import models as ex

    ex.iris_onnx(tmp_path / "artifact")
    settings_dir = tmp_path / "image-model"
    settings_dir.mkdir()
    (settings_dir / "runtime.json").write_text(json.dumps({"top_k": 1}))
    env = {"MLDEPLOY_MODEL_ARTIFACT_DIR": str(tmp_path / "artifact"), "MLDEPLOY_MODEL_CACHE_DIR": str(tmp_path / "c")}
    with runtime_server(tmp_path, settings_dir, env=env) as proc:
        status, _, body = http_request(proc.url + "/predict", "POST", json.dumps(
            {"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode(), headers={"Content-Type": "application/json"})
    assert status == 200 and b"setosa" in body, body
    assert (tmp_path / "c" / "local" / "model.onnx").is_symlink()
    assert json.loads((tmp_path / "c" / "local" / "runtime.json").read_text()) == {"top_k": 1}


def test_a_whole_up_with_store_s3_keeps_the_tls_only_policy(tmp_path: Path, aws: dict[str, str]) -> None:
    """``mldeploy up`` with ``model.store: s3`` as a subprocess against moto + the strict layer, nothing patched:
    the bucket is created with its TLS-only policy, the artifact uploaded under it (the layer evaluates
    ``aws:SecureTransport``: the moto endpoint stands in for TLS), the task definition points at the upload, and a
    re-plan finds the bucket as desired (the policy reads back as put)."""
    from tests.release_helpers import REGISTRY, Emulator, cli_env, ok
    from tests.test_shadow_aws import project_at

    project = project_at(tmp_path / "proj", "1.0.0")
    cfg = project / "mldeploy.yaml"
    cfg.write_text(cfg.read_text().replace("  convert: none\n", "  convert: none\n  store: s3\n"))
    env = cli_env(aws)
    ok(["up", "--no-wait", "--image", f"{REGISTRY}:1.0.0"], project, env)

    name = model_store.bucket_name(ACCOUNT, "us-east-1")
    strict = Clients(boto3.Session(), "us-east-1", hooks=hooks_from_env())
    (statement,) = json.loads(strict.s3.get_bucket_policy(Bucket=name)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    td = Emulator().task_definition("app")
    task_env = {e["name"]: e["value"] for e in td["containerDefinitions"][0]["environment"]}
    prefix = task_env["MLDEPLOY_MODEL_S3_PREFIX"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=name, Prefix=prefix)["Contents"]]
    assert prefix + model_upload.INDEX_FILE in keys and len(keys) >= 2  # the index and the model files

    plan = json.loads(ok(["plan", "--json"], project, env).stdout)
    bucket = [s for s in plan["steps"] if s["kind"] == model_store.KIND]
    assert [s["action"] for s in bucket] == ["no-op"], bucket


def test_a_skip_rests_on_s3_checksums_as_real_s3_returns_them(tmp_path: Path) -> None:
    """``_verified`` on HeadObject answers shaped as real S3 returns them (moto omits ``ChecksumType`` and the
    composite's "-<parts>" suffix): user metadata decides nothing; a wrong part layout, type or size re-uploads."""
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(b"weights")
    big.write_bytes(os.urandom(model_upload.MULTIPART_CHUNK + 1024))
    fs = model_upload.IndexedFile("small.bin", 7, hashlib.sha256(b"weights").hexdigest())
    fb = model_upload.IndexedFile("big.bin", big.stat().st_size, hashlib.sha256(big.read_bytes()).hexdigest())
    b64 = base64.b64encode(hashlib.sha256(b"weights").digest()).decode()
    composite, parts = model_upload.composite_sha256(big)
    ok = {"ContentLength": 7, "ChecksumSHA256": b64, "ChecksumType": "FULL_OBJECT"}
    assert model_upload._verified(ok, fs, tmp_path)
    for bad in ({**ok, "ChecksumSHA256": None, "Metadata": {"sha256": fs.sha256}}, {**ok, "ContentLength": 8},
                {**ok, "ChecksumSHA256": base64.b64encode(b"x" * 32).decode()}, {**ok, "ChecksumSHA256": b64 + "-1"}):
        assert not model_upload._verified(bad, fs, tmp_path), bad
    assert parts == 2
    real = {"ContentLength": fb.size, "ChecksumSHA256": f"{composite}-2", "ChecksumType": "COMPOSITE"}
    assert model_upload._verified(real, fb, tmp_path)
    for bad in ({**real, "ChecksumSHA256": f"{composite}-3"}, {**real, "ChecksumType": "FULL_OBJECT"},
                {**real, "ChecksumSHA256": base64.b64encode(hashlib.sha256(big.read_bytes()).digest()).decode()}):
        assert not model_upload._verified(bad, fb, tmp_path), bad
