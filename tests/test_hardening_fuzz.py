"""Runtime fuzzing: the real server (``python -m runtime`` under uvicorn on 127.0.0.1) for each example format gets
schemathesis cases generated from its own ``/openapi.json`` plus ≥ 10,000 hypothesis-generated requests in total:
malformed JSON, wrong dtypes/shapes, huge and empty bodies, bad npy/raw tensors, bad images and multipart uploads,
bad auth headers, odd paths and query strings. Zero 5xx, zero crashes, RSS bounded.

``MLDEPLOY_FUZZ_REQUESTS`` sets the total (default 10,200); ``MLDEPLOY_FUZZ_SEED`` varies the (otherwise fixed,
so CI is reproducible) hypothesis seed.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from benchmarks import models as ex
from benchmarks.hardening_summary import record
from tests.test_runtime_server import serve

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TOTAL = int(os.environ.get("MLDEPLOY_FUZZ_REQUESTS", "10200"))
SEED = int(os.environ.get("MLDEPLOY_FUZZ_SEED", "20261125"))
BATCH = 100
API_KEY = "fuzz-key-0123456789abcdef"
MAX_BODY = 256 * 1024
RSS_GROWTH_LIMIT_MB = 64


@dataclass
class Req:
    method: str = "POST"
    path: str = "/predict"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    chunked: bool = False
    kind: str = "?"

    def short(self) -> str:
        body = (self.body or b"")[:160]
        return f"{self.kind}: {self.method} {self.path} {self.headers} {body!r}"


# ---------------------------------------------------------------------------------------------- strategies

numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1]))
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=8), c,
                                                                                         max_size=4), max_leaves=40)


def _nested(shape: list[int], item: st.SearchStrategy) -> st.SearchStrategy:
    s = item
    for d in reversed(shape):
        s = st.lists(s, min_size=d, max_size=d)
    return s


@st.composite
def tensor_json(draw, spec: dict) -> Req:
    """Near-valid JSON tensors: right or wrong rank/dims/dtypes, rows/records/columns/named layouts."""
    shape = [d or 1 for d in spec["shape"]]
    shape[0] = draw(st.integers(0, 3))
    if draw(st.booleans()):  # wrong rank or dims
        shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=5))
    if len(shape) > 2 and np.prod(shape) > 4096:
        shape = [1] * len(shape)
    item = draw(st.sampled_from([numbers, st.floats(-10, 10, width=32), st.integers(-3, 3), scalars]))
    value = draw(_nested(shape, item)) if np.prod(shape or [1]) <= 4096 else []
    layout = draw(st.sampled_from(["inputs", "instances", "bare", "named", "records", "columns", "junk"]))
    feats = spec.get("features") or ["f0", "f1"]
    if layout == "named":
        doc = {"inputs": {draw(st.sampled_from([spec["name"], "other"])): value}}
    elif layout == "records":
        doc = {"inputs": [{f: draw(item) for f in draw(st.lists(st.sampled_from([*feats, "x"]), max_size=6))}
                          for _ in range(draw(st.integers(0, 3)))]}
    elif layout == "columns":
        doc = {"inputs": {f: draw(st.lists(item, max_size=3)) for f in draw(st.lists(st.sampled_from([*feats, "x"]),
                                                                                       max_size=6))}}
    elif layout == "junk":
        doc = draw(json_values)
    elif layout == "bare":
        doc = value
    else:
        doc = {layout: value}
    body = json.dumps(doc, allow_nan=False).encode()
    ctype = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/json",
                                  "application/vnd.x+json"]))
    return Req(headers={"content-type": ctype}, body=body, kind=f"json-{layout}")


malformed_json = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1, 5000)),  # deep nesting
    st.sampled_from([b"", b"{", b'{"inputs": [[1,2,3,4]]', b'{"inputs": NaN}', b'{"inputs": [1e99999]}',
                     b'{"inputs": [[Infinity, 1, 2, 3]]}', b"\xff\xfe{}", b'{"inputs": "' + b"A" * 5000 + b'"}',
                     b'{"inputs": null}', b"null", b"123", b'"str"', b'{"inputs": {}}', b'{"inputs": []}',
                     b'{"inputs": [[]]}', b'{"inputs": [{}]}', b'{"inputs": [[1,2,3,4]], "inputs": 1}']),
).map(lambda b: Req(headers={"content-type": "application/json"}, body=b, kind="json-malformed"))

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool", "complex64", "<U4", "S3",
          "datetime64[s]", "V4", "object"]


@st.composite
def npy_body(draw, spec: dict) -> Req:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 6), max_size=5))
    if draw(st.booleans()):
        shape = [draw(st.integers(0, 3)), *[d or 1 for d in spec["shape"][1:]]]
    size = int(np.prod(shape)) if shape else 1
    if size > 200_000:
        shape, size = [1], 1
    arr = np.zeros(shape, dtype=dtype) if dtype != "object" else np.array([None] * size, dtype=object).reshape(shape)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    data = buf.getvalue()
    cut = draw(st.sampled_from(["ok", "truncate", "flip", "header"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    elif cut == "header":
        data = data.replace(b"'shape': (", b"'shape': (" + str(draw(st.integers(-5, 10**12))).encode() + b", ", 1)
    return Req(headers={"content-type": "application/x-npy"}, body=data, kind=f"npy-{cut}")


@st.composite
def raw_body(draw, spec: dict) -> Req:
    headers = {"content-type": "application/octet-stream"}
    if draw(st.booleans()):
        headers["x-tensor-dtype"] = draw(st.sampled_from([*DTYPES, "float33", "[(", "i8,i8", "(2,3)f4", "M8[x]",
                                                          "", "O", "U", "f4,", "'", "<f4", ">i2", "c16"]))
    if draw(st.integers(0, 9)):
        headers["x-tensor-shape"] = draw(st.one_of(
            st.lists(st.integers(-2, 300), max_size=5).map(lambda s: ",".join(map(str, s))),
            st.text(alphabet="0123456789,x- ab", max_size=12).map(str.strip),
            st.just(",".join(str(d or 1) for d in spec["shape"]))))
    n = draw(st.sampled_from([0, 1, 3, 4, 16, 48, 3 * 224 * 224 * 4, 7777]))
    return Req(headers=headers, body=os.urandom(n) if n < 5000 else b"\0" * n, kind="raw")


def _image(fmt: str, mode: str, w: int, h: int) -> bytes:
    from PIL import Image

    img = Image.new(mode, (w, h), color=None)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _png_bomb(w: int, h: int) -> bytes:
    """A PNG header claiming w×h pixels with a tiny IDAT (decompression-bomb shaped)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@st.composite
def image_body(draw) -> bytes:
    kind = draw(st.sampled_from(["png", "jpeg", "gif", "bmp", "bomb", "truncated", "random", "empty", "webp"]))
    if kind in ("png", "jpeg", "gif", "bmp", "webp"):
        modes = {"png": ["RGB", "RGBA", "L", "P", "I;16", "1", "LA"], "jpeg": ["RGB", "L", "CMYK"],
                 "gif": ["P", "L"], "bmp": ["RGB", "L"], "webp": ["RGB"]}[kind]
        return _image(kind.upper(), draw(st.sampled_from(modes)), draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    if kind == "bomb":
        return _png_bomb(draw(st.sampled_from([50_000, 100_000, 2**31 - 1])), draw(st.sampled_from([50_000, 1])))
    if kind == "truncated":
        data = _image("PNG", "RGB", 32, 32)
        return data[: draw(st.integers(0, len(data) - 1))]
    return b"" if kind == "empty" else draw(st.binary(max_size=200))


@st.composite
def image_req(draw) -> Req:
    data = draw(image_body())
    if draw(st.booleans()):
        return Req(headers={"content-type": draw(st.sampled_from(["image/png", "image/jpeg"]))}, body=data,
                   kind="image-raw")
    boundary = "fuzzb0undary"
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["file", "image", "x"]))
        if draw(st.integers(0, 4)):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="a.png"\r\n'
                         f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\nvalue\r\n'.encode())
    body = b"".join(parts) + (f"--{boundary}--\r\n".encode() if draw(st.integers(0, 5)) else b"")
    ctype = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data",
                                  "multipart/form-data; boundary=other", "multipart/form-data; boundary="]))
    return Req(headers={"content-type": ctype}, body=body, kind="multipart")


huge_body = st.builds(
    lambda n, chunked, ctype: Req(headers={"content-type": ctype}, body=b"[" + b"1," * (n // 2) + b"1]",
                                  chunked=chunked, kind="huge-chunked" if chunked else "huge"),
    st.integers(MAX_BODY, MAX_BODY * 4), st.booleans(),
    st.sampled_from(["application/json", "application/x-npy", "image/png", "application/octet-stream"]))
empty_body = st.builds(lambda ctype: Req(headers={"content-type": ctype} if ctype else {}, body=b"", kind="empty"),
                       st.sampled_from(["application/json", "application/x-npy", "image/jpeg", "multipart/form-data",
                                        "application/octet-stream", "", "text/plain", "*/*", "application/xml"]))
odd_paths = st.one_of(
    st.builds(lambda n, v: f"/v1/models/{n}/versions/{v}/predict", st.text(alphabet="abc.-_%20", max_size=8),
              st.sampled_from(["1.0.0", "0.1.0", "9.9.9", "..", "x", "1.0.0%00"])),
    st.sampled_from(["/v1/models/iris/predict", "/v1/models/cnn/predict", "/v1/models/wine-keras/predict",
                     "/predict/", "/predict?top_k=", "/predict?top_k=-3", "/predict?top_k=99999999999999999999",
                     "/predict?top_k=abc", "/predict?top_k=1", "/v1/models", "/metrics", "/ready", "/nope"]))
auth_headers = st.one_of(
    st.just({"x-api-key": API_KEY}),
    st.just({"authorization": f"Bearer {API_KEY}"}),
    st.just({}),
    st.builds(lambda v: {"authorization": v}, st.sampled_from(["Bearer", "Bearer\tx", "Basic abc", "bearer x", "Token",
                                                                "Bearer " + "A" * 9000, b"Bearer \xc3\xa9\xff"])),
    st.builds(lambda v: {"x-api-key": v}, st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                                                   min_size=1, max_size=40)),
    st.builds(lambda v: {"authorization": "Bearer " + v}, st.sampled_from([
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c", "eyJ.eyJ.sig", "....."])),
)
extra_headers = st.dictionaries(
    st.sampled_from(["x-request-id", "accept", "x-model-version", "x-tensor-shape", "content-encoding",
                     "x-forwarded-for", "transfer-encoding-x"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80), max_size=3)


@st.composite
def request(draw, spec: dict) -> Req:
    base = draw(st.one_of(tensor_json(spec), tensor_json(spec), malformed_json, npy_body(spec), raw_body(spec),
                          image_req(), huge_body, empty_body))
    if not draw(st.integers(0, 7)):
        base.path = draw(odd_paths)
        base.method = draw(st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "OPTIONS"]))
    if spec.get("auth"):
        base.headers.update(draw(auth_headers) if not draw(st.integers(0, 4)) else {"x-api-key": API_KEY})
    extra = draw(extra_headers)
    extra.pop("transfer-encoding-x", None)
    if extra.get("accept") and draw(st.booleans()):
        extra["accept"] = "application/x-npy"
    base.headers.update({k: v.strip() for k, v in extra.items()})  # h11 refuses edge whitespace client-side
    if "x-model-version" in base.headers:
        base.headers.pop("x-model-version")
    return base


# ------------------------------------------------------------------------------------------------- harness


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def send(client: httpx.Client, base: str, req: Req) -> tuple[int, dict, bytes]:
    content = req.body
    if req.chunked and content is not None:
        data = content
        content = (data[i:i + 65536] for i in range(0, len(data), 65536))
    r = client.request(req.method, base + req.path, headers=req.headers, content=content)
    return r.status_code, dict(r.headers), r.content


@dataclass
class Tally:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def check(req: Req, status: int, headers: dict, body: bytes, tally: Tally) -> None:
    tally.sent += 1
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    if status >= 500:
        tally.failures.append(f"{status} {body[:300]!r} for {req.short()}")
    elif status >= 400 and status != 405 and req.method == "POST":
        try:
            doc = json.loads(body)
            assert "detail" in doc
        except (ValueError, AssertionError):
            tally.failures.append(f"{status} without a JSON detail: {body[:200]!r} for {req.short()}")
        if status == 401 and "www-authenticate" not in {k.lower() for k in headers}:
            tally.failures.append(f"401 without WWW-Authenticate for {req.short()}")


def fuzz(proc, spec: dict, n: int, pool: cf.ThreadPoolExecutor, clients: list[httpx.Client]) -> Tally:
    tally = Tally()
    examples = max(1, n // BATCH)

    @seed(SEED)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(request(spec), min_size=BATCH, max_size=BATCH))
    def run(batch: list[Req]) -> None:
        futures = [pool.submit(send, clients[i % len(clients)], proc.url, r) for i, r in enumerate(batch)]
        for req, fut in zip(batch, futures, strict=True):
            try:
                status, headers, body = fut.result(timeout=60)
            except httpx.HTTPError as e:
                tally.sent += 1
                tally.failures.append(f"transport error {type(e).__name__}: {e} for {req.short()}")
                continue
            check(req, status, headers, body, tally)

    run()
    return tally


def schemathesis_cases(proc, spec: dict, per_mode: int, tally: Tally) -> None:
    """Cases generated by schemathesis from the server's own OpenAPI document (positive and negative)."""
    import schemathesis
    from schemathesis.generation import GenerationMode

    doc = httpx.get(proc.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    ops = [r.ok() for r in schema.get_all_operations()]
    predict = next(o for o in ops if o.path == "/predict")
    cases = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @seed(SEED)
        @settings(max_examples=per_mode, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(predict.as_strategy(generation_mode=mode))
        def collect(case) -> None:
            cases.append(case)

        collect()
    with httpx.Client(timeout=30) as client:
        for case in cases:
            kwargs = case.as_transport_kwargs(base_url=proc.url)
            # the documented security schemes make schemathesis send credentials: replace them with the valid key
            headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
                       if k.lower() not in ("authorization", "x-api-key")}
            headers.update({"x-api-key": API_KEY} if spec.get("auth") else {})
            body = kwargs.get("json")
            content = json.dumps(body).encode() if "json" in kwargs else kwargs.get("data")
            if isinstance(content, str):
                content = content.encode()
            if "json" in kwargs:
                headers.setdefault("Content-Type", "application/json")
            req = Req(path="/predict", headers=headers, body=content if isinstance(content, bytes) else None,
                      kind=f"schemathesis-{case.media_type}")
            r = client.post(proc.url + "/predict", headers=headers, content=req.body)
            check(req, r.status_code, dict(r.headers), r.content, tally)


# --------------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("fuzz-models")
    out = {}
    m = ex.iris_onnx(root / "iris", n_estimators=10)
    out["iris-onnx"] = (root / "iris", {"name": "input", "shape": [None, 4], "features": m.feature_names,
                                        "auth": True})
    ex.cnn_torchscript(root / "cnn")
    out["cnn-torchscript"] = (root / "cnn", {"name": "image", "shape": [None, 3, 224, 224]})
    keras = root / "keras"
    subprocess.run([sys.executable, "-m", "mldeploy", "package", "--output", str(root / "keras-art")],
                   cwd=_copy_example("keras-tf", keras), check=True, capture_output=True, timeout=300)
    km = json.loads((root / "keras-art" / "model.json").read_text())
    t = km["inputs"][0]
    out["keras-onnx"] = (root / "keras-art", {"name": t["name"], "shape": t["shape"]})
    return out


def _copy_example(name: str, dst: Path) -> Path:
    import shutil

    shutil.copytree(ROOT / "examples" / name, dst, ignore=shutil.ignore_patterns(".mldeploy", "__pycache__"))
    # the models are made by a script, not committed: a fresh clone has none
    subprocess.run([sys.executable, "make_model.py"], cwd=dst, check=True, capture_output=True, timeout=600)
    return dst


@pytest.mark.parametrize("fmt", ["iris-onnx", "cnn-torchscript", "keras-onnx"])
def test_fuzz_no_5xx_no_crash_bounded_memory(fmt, models, tmp_path):
    folder, spec = models[fmt]
    env = {"MLDEPLOY_MAX_BODY_BYTES": str(MAX_BODY), "MLDEPLOY_ACCESS_LOG": "false", "MLDEPLOY_LOG_LEVEL": "warning",
           "MLDEPLOY_MAX_QUEUE": "10000"}
    if spec.get("auth"):
        env.update(MLDEPLOY_AUTH_MODE="api_key", MLDEPLOY_API_KEYS=API_KEY)
    share = TOTAL // 3
    with serve(tmp_path, folder, env=env) as proc, cf.ThreadPoolExecutor(8) as pool:
        clients = [httpx.Client(timeout=60) for _ in range(8)]
        try:
            pid = proc.popen.pid
            warm = fuzz(proc, spec, 2 * BATCH, pool, clients)  # allocator/import warm-up
            rss_before = rss_mb(pid)
            tally = fuzz(proc, spec, share - 2 * BATCH - 100, pool, clients)
            schemathesis_cases(proc, spec, 50, tally)
            rss_after = rss_mb(pid)
            alive = proc.popen.poll() is None
            ready = httpx.get(proc.url + "/ready").status_code
        finally:
            for c in clients:
                c.close()
    total = warm.sent + tally.sent
    failures = warm.failures + tally.failures
    fivexx = sum(v for k, v in {**tally.statuses}.items() if k >= 500) + sum(
        v for k, v in warm.statuses.items() if k >= 500)
    record("fuzz", fmt, {"requests": total, "5xx": fivexx, "crashes": 0 if alive else 1,
                         "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_after, 1),
                         "statuses": dict(sorted({**warm.statuses, **tally.statuses}.items()))})
    assert alive and ready == 200, proc.logs()[-3000:]
    assert not failures, f"{len(failures)} failures, first: " + "\n".join(failures[:10])
    assert total >= share - 100
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MB, (rss_before, rss_after)


def test_npy_header_and_raw_dtype_regressions(models, tmp_path):
    """Regression (found by the fuzzer): a 100-byte .npy body whose header declares 10^12 elements made np.load
    try to allocate terabytes (500, or an OOM-killed task for claims that fit in virtual memory); now a 422."""
    folder, _ = models["iris-onnx"]
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 4), np.float32))
    body = buf.getvalue().replace(b"'shape': (", b"'shape': (250000000000, ", 1)
    with serve(tmp_path, folder) as proc:
        r = httpx.post(proc.url + "/predict", content=body, headers={"content-type": "application/x-npy"})
        assert r.status_code == 422, r.text
        assert "declares shape [250000000000, 1, 4]" in r.json()["detail"][0]["msg"]
        ok = httpx.post(proc.url + "/predict", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
        assert ok.status_code == 200, ok.text
        # a corrupted header made numpy's parser raise tokenize.TokenError: 500
        bad = b"\x93NUMPY\x01\x00v\x00{'descr': '<f2', 'fortran_order': False, 'shape': \xd73, 4), }"
        bad += b" " * 49 + b"\n"
        r = httpx.post(proc.url + "/predict", content=bad, headers={"content-type": "application/x-npy"})
        assert r.status_code == 422, r.text
        # (also found by the fuzzer) a zero-size raw dtype divided by zero: 500
        for dtype in ("U", "S", "V", "O", "i8,i8"):
            r = httpx.post(proc.url + "/predict", content=b"\0" * 16, headers={
                "content-type": "application/octet-stream", "x-tensor-dtype": dtype, "x-tensor-shape": "1,4"})
            assert r.status_code == 422 and "not a numeric dtype" in r.text, (dtype, r.text)
