"""Issue 15, runtime side: each attack reproduced against the real server (or the in-process app), and refused.

Items: 2 (one request kills a task), 3 (decompression bombs, 415 without Pillow), 4 (rate-limit identity, failed
auth), 5 (JWT audience/issuer/lifetime/size), 6 (metrics off the main port, drift minimum count), 9 (headers,
error bodies, offline /docs).
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest

from benchmarks import models as ex
from runtime.auth import MAX_TOKEN_BYTES, Authenticator, AuthError
from runtime.contract.serving import Auth
from runtime.images import decode_images
from runtime.inputs import InputSpec, PayloadTooLargeError, UnsupportedMediaTypeError
from runtime.limits import ROWS_CEILING, ROWS_FLOOR, default_max_rows, memory_limit_bytes
from runtime.manifest import ImageSpec, Manifest, Tensor
from runtime.settings import SettingsError, load_settings
from tests.test_runtime_server import npy, serve

ROW = [5.1, 3.5, 1.4, 0.2]
SECRET = "s" * 40


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hardening") / "onnx"
    ex.iris_onnx(folder)
    return folder


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def app_client(tmp_path: Path, env: dict[str, str] | None = None, **kw):
    from fastapi.testclient import TestClient

    from runtime.http.app import create_app

    folder = tmp_path / "m"
    if not folder.exists():
        ex.iris_sklearn(folder, "joblib")
    env = {"MLDEPLOY_METRICS_PORT": "0", **(env or {})}
    return TestClient(create_app(load_settings({"model_dir": str(folder)}, environ=env), environ=env), **kw)


# -- item 2: one valid request kills a task ----------------------------------------------------------------------

def test_million_row_npy_is_413_at_once_memory_flat_health_answers(iris, tmp_path):
    body = npy(np.zeros((1_000_000, 4), np.float32))  # 16 MB, under max_body_bytes: a valid request
    assert len(body) == 16_000_128
    with serve(tmp_path, iris, env={"MLDEPLOY_MEMORY_MIB": "1024"}) as proc:
        pid = proc.popen.pid
        with httpx.Client() as c:
            for _ in range(20):  # allocator warm-up on both paths
                c.post(proc.url + "/predict", content=npy(np.zeros((50, 4), np.float32)),
                       headers={"content-type": "application/x-npy"})
            base = rss_kib(pid)
            peak, health, done = [base], [], threading.Event()

            def watch() -> None:
                with httpx.Client() as h:
                    while not done.is_set():
                        peak.append(rss_kib(pid))
                        t0 = time.perf_counter()
                        assert h.get(proc.url + "/health").status_code == 200
                        health.append(time.perf_counter() - t0)

            watcher = threading.Thread(target=watch)
            watcher.start()
            t0 = time.perf_counter()
            r = c.post(proc.url + "/predict", content=body, headers={"content-type": "application/x-npy"})
            elapsed = time.perf_counter() - t0
            time.sleep(0.2)
            done.set()
            watcher.join()
        assert r.status_code == 413, r.text[:300]
        assert "1000000 rows" in r.json()["detail"] and "max_rows_per_request" in r.json()["detail"]
        assert elapsed < 0.5, elapsed
        assert (max(peak) - base) / 1024 < 8, (base, max(peak))
        assert health and max(health) < 0.25, max(health)
        ok = httpx.post(proc.url + "/predict", content=npy(np.zeros((1000, 4), np.float32)),
                        headers={"content-type": "application/x-npy"})
        assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"


def test_row_and_response_limits_cover_json_raw_and_records(iris, tmp_path):
    env = {"MLDEPLOY_MAX_ROWS": "1000"}
    with serve(tmp_path, iris, env=env) as proc:
        url = proc.url + "/predict"
        assert httpx.post(url, json={"inputs": [ROW] * 1000}).status_code == 200
        for payload in ({"inputs": [ROW] * 1001},
                        {"inputs": [dict(zip(ex.IRIS_FEATURES, ROW, strict=True))] * 1001},
                        {"inputs": {f: [v] * 1001 for f, v in zip(ex.IRIS_FEATURES, ROW, strict=True)}}):
            r = httpx.post(url, json=payload)
            assert r.status_code == 413 and "1001 rows" in r.json()["detail"], r.text
        assert httpx.post(url, json={"inputs": ROW}).status_code == 200  # one row without the batch axis
        raw = httpx.post(url, content=np.zeros((1001, 4), np.float32).tobytes(),
                         headers={"content-type": "application/octet-stream", "x-tensor-shape": "1001,4"})
        assert raw.status_code == 413
    # the answer's size bounds the rows too (estimated per row from the warm-up)
    with serve(tmp_path, iris, env={"MLDEPLOY_MAX_RESPONSE_BYTES": "65536"}) as proc:
        url = proc.url + "/predict"
        assert httpx.post(url, json={"inputs": [ROW] * 50}).status_code == 200
        r = httpx.post(url, json={"inputs": [ROW] * 2000})
        assert r.status_code == 413, r.text[:200]


def test_large_answers_are_formatted_off_the_event_loop(iris, tmp_path):
    with serve(tmp_path, iris) as proc:
        body = npy(np.tile(np.asarray(ROW, np.float32), (60_000, 1)))
        lat: list[float] = []
        done = threading.Event()

        def ping() -> None:
            with httpx.Client() as h:
                while not done.is_set():
                    t0 = time.perf_counter()
                    h.get(proc.url + "/health")
                    lat.append(time.perf_counter() - t0)

        t = threading.Thread(target=ping)
        t.start()
        r = httpx.post(proc.url + "/predict", content=body, headers={"content-type": "application/x-npy"},
                       timeout=30)
        done.set()
        t.join()
        assert r.status_code == 200 and len(r.json()["predictions"]) == 60_000
        assert max(lat) < 0.3, max(lat)


def test_default_row_limit_formula(tmp_path):
    assert default_max_rows(1024 * 2**20, 16) == ROWS_CEILING  # iris on 1 GiB: ~127k, capped
    assert default_max_rows(512 * 2**20, 16) == 63_550
    assert default_max_rows(2048 * 2**20, 224 * 224 * 3 * 4) == 222  # a 224x224 RGB CNN on 2 GiB
    assert default_max_rows(64 * 2**20, 10**8) == ROWS_FLOOR
    cgroup = tmp_path / "memory.max"
    cgroup.write_text("536870912\n")
    assert memory_limit_bytes(None, (str(cgroup),)) == 512 * 2**20
    assert memory_limit_bytes(256, (str(cgroup),)) == 256 * 2**20  # MLDEPLOY_MEMORY_MIB wins
    cgroup.write_text("max\n")
    assert memory_limit_bytes(None, (str(cgroup),)) > 0


# -- item 3: decompression bombs ---------------------------------------------------------------------------------

def image_spec(**limits: int) -> InputSpec:
    m = Manifest(name="cnn", version="1", format="onnx", file="m.onnx", task="image-classification",
                 source_format="onnx", sha256="0" * 64, size_bytes=1, created_at="2026-01-01T00:00:00Z",
                 inputs=[Tensor(name="x", shape=[None, 3, 8, 8])], outputs=[Tensor(name="y", role="logits")],
                 image=ImageSpec(width=8, height=8))
    spec = InputSpec(m)
    for k, v in limits.items():
        setattr(spec, k, v)
    return spec


def png(size: tuple[int, int], mode: str = "1") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""
    from PIL import ImageFile

    def refuse(self, *a, **kw):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_png_bomb_refused_from_its_header(no_decoding):
    bomb = png((8900, 8900))  # 79 Mpx in a ~10 KB 1-bit PNG: under Pillow's own 2x limit
    assert len(bomb) < 20_000
    t0 = time.perf_counter()
    with pytest.raises(PayloadTooLargeError, match="8900x8900 pixels is above max_image_pixels"):
        decode_images([(bomb, ["body"])], image_spec())
    assert time.perf_counter() - t0 < 0.1


def test_pixel_budget_spans_every_image_of_a_request(no_decoding):
    spec = image_spec(max_image_pixels=1_000_000, max_request_pixels=1_500_000)
    with pytest.raises(PayloadTooLargeError, match="max_request_pixels"):
        decode_images([(png((1000, 1000)), ["file", 0]), (png((1000, 1000)), ["file", 1])], spec)
    with pytest.raises(PayloadTooLargeError, match="images in one request"):
        decode_images([(png((8, 8)), ["file", i]) for i in range(17)], image_spec(max_rows=16))


def test_small_images_still_decode():
    arrays = decode_images([(png((64, 48), "RGB"), ["file", 0])], image_spec())
    assert arrays[0].shape == (3, 8, 8) and arrays[0].dtype == np.float32


def test_image_model_without_pillow_is_415(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UnsupportedMediaTypeError, match="Pillow"):
        decode_images([(b"\x89PNG....", ["body"])], image_spec())


def test_non_image_model_answers_images_with_415_without_importing_pillow(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)  # as in an image built without Pillow: import fails
    with app_client(tmp_path) as c:
        for ctype in ("image/png", "image/jpeg"):
            r = c.post("/predict", content=b"\x89PNG\r\n\x1a\n", headers={"content-type": ctype})
            assert r.status_code == 415 and "does not take images" in r.json()["detail"], r.text
        r = c.post("/predict", files=[("file", ("a.png", b"\x89PNG", "image/png"))])
        assert r.status_code == 415, r.text


def test_bomb_against_the_server_is_413(tmp_path):
    pytest.importorskip("torch")
    ex.cnn_torchscript(tmp_path / "cnn")
    with serve(tmp_path, tmp_path / "cnn") as proc:
        r = httpx.post(proc.url + "/predict", content=png((8900, 8900)), headers={"content-type": "image/png"})
        assert r.status_code == 413 and "max_image_pixels" in r.json()["detail"]
        files = [("file", (f"{i}.png", png((5000, 5000)), "image/png")) for i in range(4)]  # 4 x 25 Mpx
        r = httpx.post(proc.url + "/predict", files=files)
        assert r.status_code == 413 and "max_request_pixels" in r.json()["detail"]


# -- item 4: rate-limit identity ---------------------------------------------------------------------------------

def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(iris, tmp_path):
    env = {"MLDEPLOY_RATE_LIMIT_ENABLED": "true", "MLDEPLOY_RATE_LIMIT": "3/minute"}
    body = {"inputs": [ROW]}
    with serve(tmp_path, iris, env=env) as proc:  # locally: no trusted proxy, rotating XFF changes nothing
        codes = [httpx.post(proc.url + "/predict", json=body,
                            headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert '"client":"203.0.113' not in proc.logs()
    env["MLDEPLOY_TRUSTED_PROXIES"] = "127.0.0.0/8"  # as the ALB's VPC CIDR on ECS
    env["MLDEPLOY_ACCESS_LOG_SAMPLE_RATE"] = "1"  # the 200s below are logged too (by default 1 % of them are)
    with serve(tmp_path, iris, env=env) as proc:
        url = proc.url + "/predict"
        # the client's own address is the right-most untrusted hop: a forged left part does not rotate it
        forged = [httpx.post(url, json=body, headers={"x-forwarded-for": f"198.51.100.{i}, 203.0.113.7"}).status_code
                  for i in range(5)]
        assert forged == [200, 200, 200, 429, 429]
        others = [httpx.post(url, json=body, headers={"x-forwarded-for": f"203.0.113.{i}"}).status_code
                  for i in range(10, 13)]
        assert others == [200, 200, 200]  # distinct clients behind the proxy: distinct buckets
        assert '"client":"203.0.113.12"' in proc.logs()


def test_failed_auth_attempts_are_limited_per_ip(iris, tmp_path):
    env = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": "right-key-0123456789",
           "MLDEPLOY_AUTH_FAILURE_LIMIT": "5/minute"}
    with serve(tmp_path, iris, env=env) as proc:
        url = proc.url + "/predict"
        codes = [httpx.post(url, json={"inputs": [ROW]}, headers={"x-api-key": f"guess-{i}"}).status_code
                 for i in range(8)]
        assert codes == [401] * 5 + [429] * 3
        r = httpx.post(url, json={"inputs": [ROW]}, headers={"x-api-key": "right-key-0123456789"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # no oracle while blocked


def test_rate_limit_keys_by_jwt_subject(tmp_path):
    env = {"MLDEPLOY_AUTH_MODE": "jwt", "MLDEPLOY_JWT_SECRET": SECRET, "MLDEPLOY_JWT_AUDIENCE": "iris-api",
           "MLDEPLOY_RATE_LIMIT_ENABLED": "true", "MLDEPLOY_RATE_LIMIT": "2/minute"}
    exp = int(time.time()) + 60
    with app_client(tmp_path, env) as c:
        def call(sub: str) -> int:
            token = jwt.encode({"sub": sub, "exp": exp, "aud": "iris-api"}, SECRET, "HS256")
            return c.post("/predict", json={"inputs": [ROW]}, headers={"authorization": f"Bearer {token}"}).status_code

        assert [call("alice") for _ in range(3)] == [200, 200, 429]
        assert call("bob") == 200


# -- item 5: JWT -------------------------------------------------------------------------------------------------

def test_jwt_audience_is_required_by_the_settings():
    with pytest.raises(SettingsError, match="jwt_audience is required"):
        load_settings(environ={"MLDEPLOY_MODEL_DIR": "m", "MLDEPLOY_AUTH_MODE": "jwt"})


def test_jwt_issuer_lifetime_types_and_size():
    auth = Authenticator(Auth(mode="jwt", jwt_audience="iris-api", jwt_issuer="https://issuer.example",
                              jwt_max_lifetime_s=3600), {"MLDEPLOY_JWT_SECRET": SECRET})
    now = int(time.time())
    good = {"sub": "u", "aud": "iris-api", "iss": "https://issuer.example", "iat": now, "exp": now + 600}
    assert auth.verify(None, jwt.encode(good, SECRET, "HS256")) == "sub:u"
    for bad in ({**good, "aud": "payments-api"}, {k: v for k, v in good.items() if k != "iss"},
                {**good, "iss": "https://any"}, {**good, "exp": 253402300799},
                {k: v for k, v in good.items() if k != "iat"}, {**good, "exp": str(now + 600)}):
        with pytest.raises(AuthError):
            auth.verify(None, jwt.encode(bad, SECRET, "HS256"))
    huge = jwt.encode({**good, "pad": "x" * MAX_TOKEN_BYTES}, SECRET, "HS256")
    t0 = time.perf_counter()
    with pytest.raises(AuthError, match="longer than"):
        auth.verify(None, huge)
    assert time.perf_counter() - t0 < 0.01
    no_sub = jwt.encode({k: v for k, v in good.items() if k != "sub"}, SECRET, "HS256")
    assert auth.verify(None, no_sub) is None  # no shared "sub:?" bucket: the client IP keys its rate limit


def test_oversized_headers_are_431(tmp_path):
    with app_client(tmp_path) as c:
        r = c.get("/health", headers={"x-api-key": "k" * 40_000})
        assert r.status_code == 431 and r.headers["x-content-type-options"] == "nosniff"


# -- item 6: metrics off the main port ---------------------------------------------------------------------------

def raw_get(port: int, target: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


def test_metrics_only_on_the_metrics_port_and_drift_needs_a_minimum(iris, tmp_path):
    env = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": "k" * 20}
    with serve(tmp_path, iris, env=env) as proc:
        port = int(proc.url.rsplit(":", 1)[1])
        assert httpx.post(proc.url + "/predict", json={"inputs": [ROW]}, headers={"x-api-key": "k" * 20}).is_success
        for target in ("/metrics", "/%6detrics", "/%6D%65trics", "/metrics/", "//metrics"):
            assert raw_get(port, target) in (404, 307), target
            assert raw_get(port, target) != 200
        time.sleep(1.1)
        assert httpx.post(proc.url + "/predict", json={"inputs": [ROW]}, headers={"x-api-key": "k" * 20}).is_success
        text = httpx.get(proc.metrics_url + "/metrics").text
        assert 'mldeploy_requests_total{route="/predict",status="200"' in text
        assert "mldeploy_feature_mean{" not in text  # 2 rows: the caller's own values would show
        models = httpx.get(proc.url + "/v1/models", headers={"x-api-key": "k" * 20}).json()
        assert models["models"][0]["drift"]["sepal_length"] == {"count": 2}
        assert httpx.get(proc.metrics_url + "/other").status_code == 404


# -- item 9: headers, error bodies, docs -------------------------------------------------------------------------

def test_nosniff_everywhere_no_store_on_predictions(tmp_path):
    with app_client(tmp_path) as c:
        responses = [c.get("/health"), c.get("/nope"), c.post("/predict", json={"inputs": [ROW]}),
                     c.post("/predict", json={"inputs": "x"}), c.post("/predict", content=b"x" * 17_000_000)]
        assert [r.status_code for r in responses] == [200, 404, 200, 422, 413]
        assert all(r.headers["x-content-type-options"] == "nosniff" for r in responses)
        assert responses[2].headers["cache-control"] == "no-store"


def test_error_bodies_hide_paths_and_model_internals(tmp_path):
    with app_client(tmp_path, raise_server_exceptions=False) as c:
        mv = next(iter(c.app.state.server.repository.versions.values()))

        def broken(inputs):
            raise RuntimeError("/opt/app/model/model.pkl: tree 17 has 4 features, expected 5")

        mv.batcher.model.predict = broken
        r = c.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 500 and "/opt/app" not in r.text and "tree 17" not in r.text
        assert r.json()["request_id"]
        mv.formatter.format = lambda *a: (_ for _ in ()).throw(KeyError("/srv/secret/labels.json"))
        mv.batcher.model.predict = lambda inputs: {"label": np.zeros(1)}
        r = c.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 500 and "secret" not in r.text and r.json()["detail"] == "internal server error"
        assert r.headers["x-content-type-options"] == "nosniff"
        bad = c.post("/predict", content=b"garbage", headers={"content-type": "image/png"})
        assert bad.status_code == 415 and "0x" not in bad.text


def test_docs_served_from_local_assets_or_off(tmp_path):
    with app_client(tmp_path) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "/docs/swagger-ui-bundle.js" in page.text
        assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
        js = c.get("/docs/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000 and "SwaggerUIBundle" in js.text[:2000] + js.text
        assert c.get("/docs/../runtime.json").status_code == 404
        assert c.get("/redoc").status_code == 404  # ReDoc only exists as a CDN page
    with app_client(tmp_path, {"MLDEPLOY_DOCS": "false"}) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
