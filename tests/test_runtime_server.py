"""The real server: ``python -m runtime`` (uvicorn subprocess on 127.0.0.1) for every example format, every input
kind and error code, auth modes, rate limits, version routing, metrics and SIGTERM drain."""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest

from benchmarks import models as ex
from tests.infra import RuntimeProc, runtime_server

REPO = Path(__file__).resolve().parent.parent
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
IRIS_EXPECTED = ["setosa", "virginica", "versicolor"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Proc = RuntimeProc


def serve(tmp: Path, model_dir: Path | None = None, *, models_dir: Path | None = None, env: dict | None = None,
          workers: int = 1, wait_ready: bool = True):
    """The runtime under test (tests.infra.runtime_server)."""
    return runtime_server(tmp, model_dir, models_dir=models_dir, env=env, workers=workers, wait_ready=wait_ready)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    ex.iris_onnx(root / "onnx")
    for fmt in ("joblib", "pickle", "skops"):
        ex.iris_sklearn(root / fmt, fmt)
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="module")
def onnx_server(artifacts, tmp_path_factory):
    env = {"MLDEPLOY_MAX_BODY_BYTES": "65536", "MLDEPLOY_TOP_K": "2"}
    with serve(tmp_path_factory.mktemp("onnx"), artifacts["onnx"], env=env) as proc:
        yield proc


# -- every format ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["joblib", "pickle", "skops"])  # onnx: the onnx_server tests below
def test_each_format_serves_iris(fmt, artifacts, tmp_path):
    with serve(tmp_path, artifacts[fmt]) as proc:
        r = httpx.post(proc.url + "/predict", json={"inputs": IRIS_ROWS})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == IRIS_EXPECTED
        assert body["version"] == "1.0.0" and body["model"] == "iris"
        assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0, atol=1e-4)
        assert proc.stop() == 0


# -- input kinds ---------------------------------------------------------------------------------------------------

def test_json_rows_records_columns_and_named(onnx_server):
    url = onnx_server.url + "/predict"
    records = [dict(zip(ex.IRIS_FEATURES, row, strict=True)) for row in IRIS_ROWS]
    columns = {f: [row[i] for row in IRIS_ROWS] for i, f in enumerate(ex.IRIS_FEATURES)}
    for payload in ({"inputs": IRIS_ROWS}, {"instances": IRIS_ROWS}, {"inputs": records}, {"inputs": columns},
                    {"inputs": {"input": IRIS_ROWS}}):
        r = httpx.post(url, json=payload)
        assert r.status_code == 200, (payload, r.text)
        assert r.json()["predictions"] == IRIS_EXPECTED, payload
    single = httpx.post(url, json={"inputs": IRIS_ROWS[1]})  # one row without the batch axis
    assert single.json()["predictions"] == ["virginica"]


def test_binary_npy_and_raw_tensors(onnx_server):
    url = onnx_server.url + "/predict"
    x = np.asarray(IRIS_ROWS, np.float32)
    r = httpx.post(url, content=npy(x), headers={"content-type": "application/x-npy"})
    assert r.json()["predictions"] == IRIS_EXPECTED
    r = httpx.post(url, content=x.tobytes(), headers={"content-type": "application/octet-stream",
                                                       "x-tensor-shape": "3,4", "x-tensor-dtype": "float32"})
    assert r.json()["predictions"] == IRIS_EXPECTED
    x64 = x.astype(np.float64)  # converted to the model's dtype
    r = httpx.post(url, content=npy(x64), headers={"content-type": "application/x-npy", "accept": "application/x-npy"})
    assert r.headers["content-type"] == "application/x-npy"
    proba = np.load(io.BytesIO(r.content))
    assert proba.shape == (3, 3) and list(proba.argmax(1)) == [0, 2, 1]


def test_response_has_topk_labels_and_request_id(onnx_server):
    r = httpx.post(onnx_server.url + "/predict?top_k=3", json={"inputs": IRIS_ROWS[:1]},
                   headers={"x-request-id": "req-123"})
    body = r.json()
    assert body["request_id"] == "req-123" and r.headers["x-request-id"] == "req-123"
    assert [t["label"] for t in body["top_k"][0]][0] == "setosa" and len(body["top_k"][0]) == 3
    r2 = httpx.post(onnx_server.url + "/predict", json={"inputs": IRIS_ROWS[:1]})
    assert len(r2.json()["top_k"][0]) == 2  # MLDEPLOY_TOP_K
    assert len(r2.json()["request_id"]) == 16 and r2.json()["request_id"] != "req-123"


# -- error codes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "loc", "fragment"), [
    ({"inputs": [[1, 2, 3]]}, ["inputs"], "axis 1 has 3 values"),
    ({"inputs": [[1, 2, 3, 4], [1, 2]]}, ["inputs"], "rectangular"),
    ({"inputs": [["a", "b", "c", "d"]]}, ["inputs"], "rectangular"),
    ({"inputs": {"sepal_length": [1], "bogus": [2]}}, ["inputs", "bogus"], "unknown feature"),
    ({"inputs": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3}]}, ["inputs", 0, "petal_width"], "missing"),
    ({"rows": [[1, 2, 3, 4]]}, ["body"], "'inputs'"),
    ({"inputs": []}, ["inputs"], "empty"),
    ({"inputs": [[[1, 2, 3, 4]]]}, ["inputs"], "dimensions"),
])
def test_malformed_json_is_422_naming_the_field(onnx_server, payload, loc, fragment):
    r = httpx.post(onnx_server.url + "/predict", json=payload)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == loc and fragment in detail["msg"], detail


def test_other_client_errors(onnx_server):
    url = onnx_server.url + "/predict"
    bad_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and "invalid JSON" in bad_json.json()["detail"][0]["msg"]
    nan = httpx.post(url, content=b'{"inputs": [[NaN, 1, 2, 3]]}', headers={"content-type": "application/json"})
    assert nan.status_code == 422
    bad_npy = httpx.post(url, content=b"\x93NUMPY garbage", headers={"content-type": "application/x-npy"})
    assert bad_npy.status_code == 422 and bad_npy.json()["detail"][0]["loc"] == ["body"]
    bad_shape = httpx.post(url, content=b"\0" * 12, headers={"content-type": "application/octet-stream",
                                                             "x-tensor-shape": "2,4"})
    assert bad_shape.status_code == 422 and bad_shape.json()["detail"][0]["loc"] == ["header", "X-Tensor-Shape"]
    no_shape = httpx.post(url, content=b"\0" * 16, headers={"content-type": "application/octet-stream"})
    assert no_shape.status_code == 422
    assert httpx.post(url, content=b"x", headers={"content-type": "text/csv"}).status_code == 415
    big = httpx.post(url, content=b"[" + b"1," * 40000 + b"1]", headers={"content-type": "application/json"})
    assert big.status_code == 413 and "max_body_bytes" in big.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b" " * 8192

    streamed = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert httpx.post(onnx_server.url + "/v1/models/other/predict", json={"inputs": IRIS_ROWS}).status_code == 404
    pinned = httpx.post(url, json={"inputs": IRIS_ROWS}, headers={"x-model-version": "9.9.9"})
    assert pinned.status_code == 404 and "9.9.9" in pinned.json()["detail"]
    assert httpx.post(onnx_server.url + "/predict", json={"inputs": IRIS_ROWS}).status_code == 200  # still healthy


def test_metadata_docs_probes_and_metrics(onnx_server):
    url = onnx_server.url
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    ready = httpx.get(url + "/ready").json()
    assert ready["ready"] is True and ready["versions"] == ["1.0.0"]
    models = httpx.get(url + "/v1/models").json()
    assert models["models"][0]["class_labels"] == ex.IRIS_LABELS and models["models"][0]["format"] == "onnx"
    spec = httpx.get(url + "/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-npy", "application/octet-stream"} <= set(body)
    assert "sepal_length" in json.dumps(body["application/json"]["schema"])
    assert "/v1/models/{name}/versions/{version}/predict" in spec["paths"]
    assert httpx.get(url + "/docs").status_code == 200
    # traffic with a clear drift: petal_length far above the iris mean (published from 100 rows on)
    for _ in range(5):
        httpx.post(url + "/predict", json={"inputs": [[5.0, 3.0, 50.0, 1.0]] * 20})
    time.sleep(1.1)  # drift gauges refresh at most once per second
    httpx.post(url + "/predict", json={"inputs": [[5.0, 3.0, 50.0, 1.0]]})
    assert httpx.get(url + "/metrics").status_code == 404  # only on the metrics port
    text = httpx.get(onnx_server.metrics_url + "/metrics").text
    assert 'mldeploy_requests_total{route="/predict",status="200",version="1.0.0"}' in text
    assert 'mldeploy_requests_total{route="/predict",status="422",version="1.0.0"}' in text
    assert "mldeploy_request_latency_seconds_bucket" in text and "mldeploy_batch_size_bucket" in text
    assert 'mldeploy_queue_depth{version="1.0.0"}' in text and "mldeploy_in_flight" in text
    assert 'mldeploy_model_load_seconds{version="1.0.0"}' in text
    assert "mldeploy_prediction_confidence_bucket" in text
    drift = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line.startswith("mldeploy_feature_drift_zscore{")}
    assert drift['feature="petal_length",version="1.0.0"'] > drift['feature="sepal_width",version="1.0.0"']
    assert drift['feature="petal_length",version="1.0.0"'] > 3
    # structured JSON logs with request ids, and EMF lines for CloudWatch (no AWS calls)
    time.sleep(0.6)
    lines = [json.loads(line) for line in onnx_server.logs().splitlines() if line.startswith("{")]
    accessed = [rec for rec in lines if rec.get("logger") == "mldeploy.access"]
    assert accessed and all(len(rec["request_id"]) >= 7 for rec in accessed)
    emf = [rec for rec in lines if "_aws" in rec]
    assert emf and emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mldeploy"
    assert any("Confidence" in rec for rec in emf)


# -- image model (TorchScript) ------------------------------------------------------------------------------------

def test_torchscript_cnn_npy_raw_and_images(tmp_path):
    torch = pytest.importorskip("torch")
    from PIL import Image

    ex.cnn_torchscript(tmp_path / "cnn")
    module = ex.cnn_module()
    x = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        expected = torch.softmax(module(torch.from_numpy(x)), 1).numpy()
    with serve(tmp_path, tmp_path / "cnn") as proc:
        url = proc.url + "/predict"
        r = httpx.post(url, content=npy(x), headers={"content-type": "application/x-npy"})
        assert r.status_code == 200, r.text
        assert np.allclose(r.json()["probabilities"], expected, atol=1e-5)
        r = httpx.post(url, content=x.tobytes(), headers={"content-type": "application/octet-stream",
                                                           "x-tensor-shape": "2,3,224,224"})
        assert np.allclose(r.json()["probabilities"], expected, atol=1e-5)
        imgs = []
        for fmt, color in (("JPEG", (200, 30, 30)), ("PNG", (10, 240, 10))):
            buf = io.BytesIO()
            Image.new("RGB", (320, 240), color).save(buf, fmt)
            imgs.append(buf.getvalue())
        files = [("file", ("a.jpg", imgs[0], "image/jpeg")), ("file", ("b.png", imgs[1], "image/png"))]
        r = httpx.post(url, files=files)
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 2 and r.json()["predictions"][0].startswith("class_")
        # the server's decode = resize + scale + normalize, NCHW: compare with the same preprocessing here
        ref = (np.full((224, 224, 3), (10, 240, 10), np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        with torch.no_grad():
            ref_p = torch.softmax(module(torch.from_numpy(ref.transpose(2, 0, 1)[None].astype(np.float32))), 1).numpy()
        assert np.allclose(r.json()["probabilities"][1], ref_p[0], atol=1e-4)
        raw = httpx.post(url, content=imgs[1], headers={"content-type": "image/png"})
        assert np.allclose(raw.json()["probabilities"][0], ref_p[0], atol=1e-4)
        bad = httpx.post(url, files=[("file", ("x.png", b"not an image", "image/png"))])
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["file", 0]
        wrong = httpx.post(url, content=npy(np.zeros((1, 3, 32, 32), np.float32)),
                           headers={"content-type": "application/x-npy"})
        assert wrong.status_code == 422 and "axis 2" in wrong.json()["detail"][0]["msg"]
        assert proc.stop() == 0


# -- overload protection ---------------------------------------------------------------------------------------------

def test_timeout_504_and_queue_full_503(tmp_path):
    ex.slow_pickle(tmp_path / "slow", delay=0.4)
    env = {"MLDEPLOY_REQUEST_TIMEOUT_S": "0.25", "MLDEPLOY_MAX_QUEUE": "2", "MLDEPLOY_BATCHING": "false"}
    with serve(tmp_path, tmp_path / "slow", env=env) as proc:
        url = proc.url + "/predict"
        r = httpx.post(url, json={"inputs": IRIS_ROWS[:1]})
        assert r.status_code == 504 and "0.25" in r.json()["detail"]
        time.sleep(0.5)
        with cf.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx.post(url, json={"inputs": IRIS_ROWS[:1]}, timeout=10), range(8)))
        statuses = sorted(c.status_code for c in codes)
        assert 503 in statuses, statuses
        assert all(c.headers["retry-after"] == "1" for c in codes if c.status_code == 503)
        assert set(statuses) <= {503, 504}
        time.sleep(1.5)
        metrics = httpx.get(proc.metrics_url + "/metrics").text
        assert 'mldeploy_rejected_total{reason="queue_full"}' in metrics
        assert proc.stop() == 0


# -- auth and rate limits --------------------------------------------------------------------------------------------

def test_api_keys_hashed_and_rate_limited(artifacts, tmp_path):
    from runtime.auth import hash_key

    env = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": f"sha256:{hash_key('alpha-key')},beta-key",
           "MLDEPLOY_RATE_LIMIT_ENABLED": "true", "MLDEPLOY_RATE_LIMIT": "5/minute"}
    with serve(tmp_path, artifacts["onnx"], env=env) as proc:
        url = proc.url + "/predict"
        body = {"inputs": IRIS_ROWS[:1]}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"x-api-key": "wrong"}).status_code == 401
        assert httpx.get(proc.url + "/v1/models").status_code == 401
        assert httpx.get(proc.url + "/health").status_code == 200  # probes stay open
        ok = httpx.post(url, json=body, headers={"x-api-key": "alpha-key"})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit"] == "5"
        assert ok.headers["x-ratelimit-remaining"] == "4"
        for _ in range(4):
            assert httpx.post(url, json=body, headers={"x-api-key": "alpha-key"}).status_code == 200
        limited = httpx.post(url, json=body, headers={"x-api-key": "alpha-key"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1 and limited.headers["x-ratelimit-remaining"] == "0"
        other = httpx.post(url, json=body, headers={"authorization": "Bearer beta-key"})  # its own bucket
        assert other.status_code == 200
    assert "alpha-key" not in proc.logs() and "beta-key" not in proc.logs()


def test_jwt_hs256_and_rs256(artifacts, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    secret = "s" * 40
    now = int(time.time())
    with serve(tmp_path, artifacts["onnx"], env={"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_SECRET": secret,
                                                 "MLDEPLOY_JWT_AUDIENCE": "iris-api"}) as proc:
        url = proc.url + "/predict"
        body = {"inputs": IRIS_ROWS[:1]}

        def call(token):
            return httpx.post(url, json=body, headers={"authorization": f"Bearer {token}"}).status_code

        assert call(jwt.encode({"sub": "u1", "exp": now + 60, "aud": "iris-api"}, secret, "HS256")) == 200
        assert call(jwt.encode({"sub": "u1", "exp": now - 60, "aud": "iris-api"}, secret, "HS256")) == 401
        assert call(jwt.encode({"sub": "u1", "exp": now + 60, "aud": "other"}, secret, "HS256")) == 401
        assert call(jwt.encode({"sub": "u1", "aud": "iris-api"}, secret, "HS256")) == 401  # exp required
        assert call(jwt.encode({"sub": "u1", "exp": now + 60, "aud": "iris-api"}, "x" * 40, "HS256")) == 401
        assert httpx.post(url, json=body).status_code == 401
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "jwt.pub").write_bytes(pem)
    env = {"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_ALGORITHM": "RS256", "MLDEPLOY_JWT_AUDIENCE": "iris-api",
           "MLDEPLOY_JWT_SECRET_FILE": str(tmp_path / "jwt.pub")}
    with serve(tmp_path, artifacts["onnx"], env=env) as proc:
        def call(token: str) -> int:
            return httpx.post(proc.url + "/predict", json={"inputs": IRIS_ROWS[:1]},
                              headers={"authorization": f"Bearer {token}"}).status_code

        claims = {"sub": "svc", "exp": now + 60, "aud": "iris-api"}
        assert call(jwt.encode(claims, key, "RS256")) == 200
        assert call(jwt.encode({**claims, "aud": "totally-other-service"}, key, "RS256")) == 401
        assert call(jwt.encode(claims, "k" * 40, "HS256")) == 401  # HS256 refused
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert call(jwt.encode(claims, other, "RS256")) == 401  # wrong signer


@pytest.mark.parametrize(("env", "message"), [
    ({"MLDEPLOY_AUTH_MODE": "api_key"}, "MLDEPLOY_API_KEYS"),
    ({"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_AUDIENCE": "a"}, "MLDEPLOY_JWT_SECRET"),
    ({"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_AUDIENCE": "a", "MLDEPLOY_JWT_SECRET": "short"}, "at least 32"),
    ({"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_SECRET": "s" * 40}, "jwt_audience is required"),
    ({"MLDEPLOY_MAX_QUEUE": "zero"}, "MLDEPLOY_MAX_QUEUE"),
])
def test_refuses_to_start_without_secrets_or_with_bad_settings(artifacts, tmp_path, env, message):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")} | env
    r = subprocess.run([sys.executable, "-m", "runtime", "--model-dir", str(artifacts["onnx"]), "--port",
                        str(free_port())], cwd=REPO, env=full, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_missing_model_dir_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "runtime", "--model-dir", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "model.json" in r.stderr and "Traceback" not in r.stderr


def test_ip_rate_limit_and_cors(artifacts, tmp_path):
    env = {"MLDEPLOY_RATE_LIMIT_ENABLED": "1", "MLDEPLOY_RATE_LIMIT": "3/minute",
           "MLDEPLOY_CORS_ORIGINS": "https://app.example"}
    with serve(tmp_path, artifacts["onnx"], env=env) as proc:
        url = proc.url + "/predict"
        codes = [httpx.post(url, json={"inputs": IRIS_ROWS[:1]}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        pre = {"origin": "https://app.example", "access-control-request-method": "POST"}
        ok = httpx.options(url, headers=pre)
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in ok.headers
        evil = httpx.options(url, headers={**pre, "origin": "https://evil.example"})
        assert evil.headers.get("access-control-allow-origin") is None


# -- versions ------------------------------------------------------------------------------------------------------

def test_versions_weighted_sticky_pinned_and_reloaded(artifacts, tmp_path):
    import shutil

    root = tmp_path / "models"
    shutil.copytree(artifacts["onnx"], root / "v1")
    ex.iris_onnx(root / "v2", version="1.1.0", n_estimators=10, seed=1)
    routing = root / "routing.json"
    routing.write_text(json.dumps({"weights": {"1.0.0": 80, "1.1.0": 20}, "sticky_header": "X-Request-Key"}))
    with serve(tmp_path, models_dir=root) as proc:
        url = proc.url + "/predict"
        body = {"inputs": IRIS_ROWS[:1]}
        with httpx.Client() as c:
            seen = [c.post(url, json=body).json()["version"] for _ in range(300)]
            share = seen.count("1.1.0") / len(seen)
            assert 0.1 < share < 0.3, share
            for key in ("user-1", "user-2", "user-3", "user-4"):
                got = {c.post(url, json=body, headers={"x-request-key": key}).json()["version"] for _ in range(10)}
                assert len(got) == 1, (key, got)
            pinned = {c.post(url, json=body, headers={"x-model-version": "1.1.0"}).json()["version"]
                      for _ in range(20)}
            assert pinned == {"1.1.0"}
            r = c.post(proc.url + "/v1/models/iris/versions/1.0.0/predict", json=body)
            assert r.json()["version"] == "1.0.0" and r.headers["x-model-version"] == "1.0.0"
            models = c.get(proc.url + "/v1/models").json()
            assert {m["version"]: m["weight"] for m in models["models"]} == {"1.0.0": 80, "1.1.0": 20}
            routing.write_text(json.dumps({"weights": {"1.0.0": 0, "1.1.0": 100}}))
            time.sleep(1.2)
            assert {c.post(url, json=body).json()["version"] for _ in range(30)} == {"1.1.0"}
            routing.write_text("{broken")  # kept: previous weights
            time.sleep(1.2)
            assert {c.post(url, json=body).json()["version"] for _ in range(10)} == {"1.1.0"}
            text = c.get(proc.metrics_url + "/metrics").text
            assert 'version="1.0.0"' in text and 'version="1.1.0"' in text
        assert "ignoring" in proc.logs()


def test_two_workers_share_metrics(artifacts, tmp_path):
    with serve(tmp_path, artifacts["onnx"], workers=2) as proc:
        url = proc.url + "/predict"
        with cf.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx.post(url, json={"inputs": IRIS_ROWS[:1]}).status_code, range(40)))
        assert codes == [200] * 40
        # each worker buffers its counts and writes them to the shared files every FLUSH_INTERVAL_S (0.1 s): a
        # scrape is eventually consistent (Prometheus scrapes every 15 s or more), so poll until both arrive
        deadline, count = time.monotonic() + 2.0, None
        while count != 40.0 and time.monotonic() < deadline:
            text = httpx.get(proc.metrics_url + "/metrics").text
            line = next((li for li in text.splitlines()
                         if li.startswith('mldeploy_requests_total{route="/predict",status="200"')), None)
            count = None if line is None else float(line.rsplit(" ", 1)[1])
            time.sleep(0.05)
        assert count == 40.0  # summed over both workers, and never more
        assert proc.stop() == 0


def test_every_worker_writes_json_logs(artifacts, tmp_path):
    # uvicorn spawns its workers: they do not run ``runtime.__main__``, so the app factory must set logging up
    env = {"MLDEPLOY_ACCESS_LOG_SAMPLE_RATE": "1"}
    with serve(tmp_path, artifacts["onnx"], workers=2, env=env) as proc:
        with httpx.Client() as c:
            for _ in range(20):
                assert c.post(proc.url + "/predict", json={"inputs": IRIS_ROWS[:1]}).status_code == 200
        assert proc.stop() == 0
    docs = [json.loads(li) for li in proc.logs().splitlines() if li.startswith("{")]
    loaded = [d for d in docs if str(d.get("msg", "")).startswith("loaded")]
    assert len(loaded) == 2, [d.get("msg") for d in docs][:20]  # one per worker (the supervisor loads no model)
    assert sum(1 for d in docs if d.get("path") == "/predict" or d.get("route") == "/predict") == 20


# -- graceful shutdown -----------------------------------------------------------------------------------------------

def test_sigterm_drains_without_losing_requests(tmp_path):
    ex.slow_pickle(tmp_path / "slow", delay=0.05)
    # every request logged (the default samples 1 % of successes): the log is the server's record of what it answered
    env = {"MLDEPLOY_DRAIN_TIMEOUT_S": "10", "MLDEPLOY_MAX_QUEUE": "1000", "MLDEPLOY_ACCESS_LOG_SAMPLE_RATE": "1"}
    with serve(tmp_path, tmp_path / "slow", env=env) as proc:
        url = proc.url + "/predict"
        stop = threading.Event()
        results: list[tuple[str, float]] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=15) as c:
                while not stop.is_set():
                    try:
                        r = c.post(url, json={"inputs": IRIS_ROWS[:1]})
                        outcome = str(r.status_code)
                    except httpx.ConnectError:
                        outcome = "refused"
                    except httpx.TransportError as e:
                        outcome = type(e).__name__
                    with lock:
                        results.append((outcome, time.monotonic()))
                    if outcome != "200":
                        return

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        sigterm_at = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        rc = proc.popen.wait(20)
        stop.set()
        for t in threads:
            t.join(20)
        drained_in = time.monotonic() - sigterm_at
    assert rc == 0 and drained_in < 10
    ok = [t for o, t in results if o == "200"]
    errors = [(o, t) for o, t in results if o != "200"]
    assert len([t for t in ok if t < sigterm_at]) > 20
    assert not [o for o, _ in errors if o.startswith("5")], errors
    assert all(t >= sigterm_at for _, t in errors), errors
    logs = proc.logs()
    served = sum(1 for line in logs.splitlines() if '"logger":"mldeploy.access"' in line and '"status":200' in line)
    assert served == len(ok), (served, len(ok))  # every request the server answered reached its client
    assert "draining" in logs


# -- artifacts made by `mldeploy package` (the real contract) ------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("example", "convert"), [("iris-sklearn", "auto"), ("cnn-torch", "auto"),
                                                  ("keras-tf", "none")])
def test_serves_packaged_examples(example, convert, tmp_path):
    pytest.importorskip({"cnn-torch": "torch", "keras-tf": "tensorflow"}.get(example, "sklearn"))
    from mldeploy.artifacts import package
    from mldeploy.config import load_project
    from tests.artifact_helpers import edit_config
    from tests.artifact_helpers import example as make_example

    proj = make_example(example, tmp_path / "proj")
    edit_config(proj, convert=convert)
    result = package(load_project(proj))
    m = result.manifest
    with serve(tmp_path, result.dir) as proc:
        if m.image:
            from PIL import Image

            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (250, 5, 5)).save(buf, "PNG")
            r = httpx.post(proc.url + "/predict", files=[("file", ("r.png", buf.getvalue(), "image/png"))])
        else:
            r = httpx.post(proc.url + "/predict", json={"inputs": m.sample_input})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == m.version and body["predictions"]
        assert set(body["predictions"]) <= set(m.class_labels)
        models = httpx.get(proc.url + "/v1/models").json()["models"][0]
        assert models["format"] == m.format and models["sha256"] == m.sha256
        assert proc.stop() == 0
