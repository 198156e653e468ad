"""``model.store: s3`` against a hostile bucket (moto S3 server, the runtime's real download code): whoever can write
to the bucket, or a broken uploader, must not make a task write outside its artifact folder, read an unbounded
index into memory, or fill its ephemeral storage with an object the index does not describe; a version name cannot
place the shadow's link outside its folder; and the startup probe, which answers the public port while the model
downloads, tells callers the progress only (not the bucket, prefix or account).

The index itself is pinned by sha256 in the task definition (``MLDEPLOY_MODEL_INDEX_SHA256``), so a *replaced*
index is refused whole (tests/test_model_store.py); the indexes below are pinned as given — what a buggy uploader
or a hand-edited task definition would produce — to show the entries are checked one by one anyway.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime import model_fetch
from runtime.model_fetch import INDEX_FILE, MAX_INDEX_BYTES, FetchError, S3Source

BUCKET = "hostile-models"
PREFIX = "demo/default/1.0.0/abc/"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": _sha(data)}


@pytest.fixture
def s3(aws: dict[str, str]) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def publish(s3: Any, files: dict[str, bytes], entries: Any = None, prefix: str = PREFIX) -> S3Source:
    """Upload ``files`` and an index of ``entries`` (default: one per file; not a list: the whole document),
    pinned by its own sha256."""
    for rel, data in files.items():
        s3.put_object(Bucket=BUCKET, Key=prefix + rel, Body=data)
    listed = [_entry(rel, data) for rel, data in files.items()] if entries is None else entries
    doc = {"schema": 1, "version": "1.0.0", "files": listed} if isinstance(listed, list) else listed
    index = json.dumps(doc).encode()
    s3.put_object(Bucket=BUCKET, Key=prefix + INDEX_FILE, Body=index)
    return S3Source(BUCKET, prefix, _sha(index))


class Counting:
    """The real client, counting the bytes its ``get_object`` bodies deliver and the keys downloaded; ``sizes``
    makes ``head_object`` report another size for a key (an object replaced between HEAD and GET)."""

    def __init__(self, client: Any, sizes: dict[str, int] | None = None) -> None:
        self.client, self.sizes = client, sizes or {}
        self.read = 0
        self.downloads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **kw: Any) -> dict[str, Any]:
        got = self.client.get_object(**kw)
        body, outer = got["Body"], self

        class Body:
            def read(self, n: int = -1) -> bytes:
                data = body.read(n) if n >= 0 else body.read()
                outer.read += len(data)
                return data

            def close(self) -> None:
                body.close()

        return {**got, "Body": Body()}

    def head_object(self, **kw: Any) -> dict[str, Any]:
        got = self.client.head_object(**kw)
        key = kw["Key"].removeprefix(PREFIX)
        return {**got, "ContentLength": self.sizes[key]} if key in self.sizes else got

    def download_file(self, bucket: str, key: str, *args: Any, **kw: Any) -> None:
        self.downloads.append(key.removeprefix(PREFIX))
        self.client.download_file(bucket, key, *args, **kw)


def _written(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


PATHS = ["../../escaped.txt", "/tmp/escaped-absolute.txt", "a/../../escaped.txt", "", ".", "weights/\x00x"]
MALFORMED: list[tuple[Any, str]] = [
    ({"not": "a list"}, "expected an object with a list of files"),
    ([{"path": "model.json", "size": "2", "sha256": _sha(b"{}")}], r"files\[0\] is not \{path, size ≥ 0, sha256\}"),
    ([{"path": "model.json", "size": -1, "sha256": _sha(b"{}")}], r"files\[0\] is not"),
    ([{"path": "model.json", "size": 2}], r"files\[0\] is not"),
    ([{"path": 7, "size": 2, "sha256": _sha(b"{}")}], r"files\[0\] is not"),
    ([_entry("model.json", b"{}"), _entry("model.json", b"{}")], "'model.json' is listed twice"),
    ([_entry("model.json", b"{}"), _entry("w", b"x"), _entry("w/x.bin", b"x")],
     r"'w/x.bin' is listed twice \(as a file and inside 'w'\)"),
]


def test_an_index_path_outside_the_artifact_is_refused_before_anything_is_written(s3: Any, tmp_path: Path) -> None:
    for n, path in enumerate(PATHS):
        entries = [_entry("model.json", b"{}"), {"path": path, "size": 3, "sha256": _sha(b"abc")}]
        source = publish(s3, {"model.json": b"{}"}, entries, prefix=f"paths/{n}/")
        with pytest.raises(FetchError, match=r"^mldeploy-files.json: refusing the path .*\(outside the artifact"):
            model_fetch.fetch(source, tmp_path / "cache" / "deep", client=s3)
    assert _written(tmp_path) == [] and not Path("/tmp/escaped-absolute.txt").exists()


def test_a_malformed_index_entry_is_refused_naming_it(s3: Any, tmp_path: Path) -> None:
    for n, (entries, words) in enumerate(MALFORMED):
        source = publish(s3, {"model.json": b"{}"}, entries, prefix=f"malformed/{n}/")
        with pytest.raises(FetchError, match=words):
            model_fetch.fetch(source, tmp_path / "cache", client=s3)
    assert _written(tmp_path) == []


def test_an_oversized_object_at_the_index_key_is_not_read_into_memory(s3: Any, tmp_path: Path) -> None:
    source = publish(s3, {"model.json": b"{}"})
    s3.put_object(Bucket=BUCKET, Key=PREFIX + INDEX_FILE, Body=b" " * (MAX_INDEX_BYTES + 1))
    client = Counting(s3)
    with pytest.raises(FetchError, match=rf"^mldeploy-files.json: the object at .* is {MAX_INDEX_BYTES + 1} bytes, "
                                         rf"above {MAX_INDEX_BYTES}"):
        model_fetch.fetch(source, tmp_path / "cache", client=client)
    assert client.read == 0 and client.downloads == []


def test_a_replaced_larger_object_is_refused_before_it_is_downloaded(s3: Any, tmp_path: Path) -> None:
    weights = b"w" * 1024
    source = publish(s3, {"model.json": b"{}", "weights.bin": weights})
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "weights.bin", Body=b"x" * (8 * 1024 * 1024))  # the bucket's writer
    progress: dict[str, Any] = {}
    client = Counting(s3)
    with pytest.raises(FetchError, match=r"^weights.bin: the object is 8388608 bytes but the artifact index says "
                                         r"1024: refusing to download it"):
        model_fetch.fetch(source, tmp_path / "cache", client=client, progress=progress)
    assert client.downloads == ["model.json"] and progress["bytes_done"] == 2
    assert _written(tmp_path) == []  # the partial download folder is removed


def test_a_download_stops_once_it_passes_the_indexed_size(s3: Any, tmp_path: Path) -> None:
    """The object replaced between the size check and the download: the transfer is stopped at the index's size,
    not after the whole object is on disk."""
    source = publish(s3, {"model.json": b"{}", "weights.bin": b"w" * 1024})
    big = 40 * 1024 * 1024  # above the transfer's 16 MiB parts: a ranged, parallel download
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "weights.bin", Body=b"x" * big)
    progress: dict[str, Any] = {}
    client = Counting(s3, sizes={"weights.bin": 1024})  # the HEAD still says 1024
    with pytest.raises(FetchError, match=r"^weights.bin: the object is larger than the artifact index says "
                                         r"\(1024 bytes\)"):
        model_fetch.fetch(source, tmp_path / "cache", client=client, progress=progress)
    assert progress["bytes_done"] <= 2 + 1024
    assert _written(tmp_path) == []


def test_an_artifact_larger_than_the_free_space_is_refused_before_downloading(s3: Any, tmp_path: Path) -> None:
    huge = 1 << 60  # an exbibyte: more than any disk this test runs on
    source = publish(s3, {"model.json": b"{}"},
                     [_entry("model.json", b"{}"), {"path": "weights.bin", "size": huge, "sha256": "0" * 64}])
    client = Counting(s3)
    with pytest.raises(FetchError, match=r"^the artifact is 1073741824.00 GiB but .*cache has [0-9.]+ GiB free: "
                                         r"the task's ephemeral storage is too small"):
        model_fetch.fetch(source, tmp_path / "cache", client=client)
    assert client.downloads == [] and _written(tmp_path) == []


def test_the_startup_probe_tells_callers_the_progress_not_the_bucket() -> None:
    """The probe answers every path on the public serving port while the model downloads: phase and bytes only."""
    from tests.infra import free_port, http_request

    url = "s3://mldeploy-123456789012-us-east-1/demo/prod/1.0.0/0123456789abcdef/"
    state = {"phase": "downloading model", "source": url, "bytes_done": 5}
    port = free_port()
    with model_fetch.StartupProbe("127.0.0.1", port, state):
        for path in ("/ready", "/predict", "/ready?verbose=1"):
            status, _, body = http_request(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert status == 503 and json.loads(body) == {"ready": False, "phase": "downloading model",
                                                          "bytes_done": 5}, body
        status, _, body = http_request(f"http://127.0.0.1:{port}/health", timeout=5)
        assert status == 200 and b"123456789012" not in body


def test_a_version_that_is_not_one_path_component_cannot_place_the_shadow_link(tmp_path: Path) -> None:
    """The shadow's models folder links each version by name: ``MLDEPLOY_SHADOW_VERSION`` (and the candidate's
    model.json, which must agree) of ``../../x`` would put the link outside it."""
    from runtime.manifest import Manifest, Tensor

    def artifact(folder: Path, version: str) -> Path:
        folder.mkdir(parents=True)
        m = Manifest(name="m", version=version, format="onnx", source_format="onnx", file="m.onnx", sha256="0",
                     size_bytes=1, created_at="now", inputs=[Tensor(name="x", shape=[None, 1])],
                     outputs=[Tensor(name="y", role="prediction")])
        (folder / "model.json").write_text(m.model_dump_json())
        return folder

    stable = artifact(tmp_path / "stable", "1.0.0")
    for n, bad in enumerate(("../../escaped", "..", "a/b")):
        cand = artifact(tmp_path / "cand" / str(n), bad)
        with pytest.raises(FetchError, match=r"the version .* cannot name a folder \(one path component\)"):
            model_fetch.serving_folder(stable, cand, bad, 0.5, tmp_path / "root")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "root" / "serving").exists()
    good = model_fetch.serving_folder(stable, artifact(tmp_path / "ok", "1.1.0"), "1.1.0", 0.5, tmp_path / "root")
    assert sorted(p.name for p in good.iterdir()) == ["1.0.0", "1.1.0", "routing.json"]
