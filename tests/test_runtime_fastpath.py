"""The predict fast path (``runtime.http.fastpath.PredictFront``): it answers as the Starlette stack does (same
bodies, headers, errors and metrics) — native predict and v2 infer — hands every other request to the stack, and
runs the after-response hooks.

In process, on the real app and a real ONNX model (``TestClient`` / direct ASGI calls): no server, no sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from benchmarks import models as ex
from runtime.dataplane import _json_rows
from runtime.formatting import OutputFormatter
from runtime.http.app import create_app
from runtime.inputs import InputError, InputSpec, PayloadTooLargeError, parse_json
from runtime.manifest import Manifest
from runtime.settings import load_settings

KEY = "fastpath-key-0123456789"
ROW = [5.1, 3.5, 1.4, 0.2]
AUTH = {"x-api-key": KEY}


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastpath") / "iris"
    ex.iris_onnx(folder, n_estimators=10)
    return folder


def _app(iris, **env: str):
    environ = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": KEY, "MLDEPLOY_METRICS_PORT": "0",
               "MLDEPLOY_MAX_BODY_BYTES": "4096", **env}
    return create_app(load_settings({"model_dir": str(iris)}, environ=environ), environ=environ)


def _spy(app) -> list[bool]:
    """What the front answered itself (True) or left to the stack (False), per predict request."""
    served: list[bool] = []
    serve = app.front._serve

    async def spy(*args):
        done = await serve(*args)
        served.append(done)
        return done

    app.front._serve = spy
    return served


def _requests(app, status: str) -> float:
    """``mldeploy_requests_total`` of /predict with ``status``, all versions (errors before routing have none)."""
    m = app.state.server.metrics
    m.flush()
    return sum(s.value for metric in m.registry.collect() if metric.name == "mldeploy_requests"
               for s in metric.samples if s.name == "mldeploy_requests_total"
               and s.labels["route"] == "/predict" and s.labels["status"] == status)


def _same_headers(a, b) -> None:
    skip = {"x-request-id", "date"}
    assert ({k: v for k, v in a.headers.items() if k not in skip}
            == {k: v for k, v in b.headers.items() if k not in skip})


def test_front_and_stack_answer_alike(iris):
    app = _app(iris)
    served = _spy(app)
    with TestClient(app) as c:
        fast = c.post("/predict?top_k=2", json={"inputs": [ROW, ROW]}, headers={**AUTH, "x-request-id": "req-1"})
        # a header name sent twice sends the request to the stack (its own first/last-wins reading of each)
        slow = c.post("/predict?top_k=2", json={"inputs": [ROW, ROW]},
                      headers=[*AUTH.items(), ("x-request-id", "req-1"), ("x-extra", "1"), ("x-extra", "2")])
        named = c.post("/v1/models/iris/versions/1.0.0/predict", json={"inputs": [ROW]}, headers=AUTH)
        npy = c.post("/predict", json={"inputs": [ROW]}, headers={**AUTH, "accept": "application/x-npy"})
    assert served == [True, False, True, True]
    assert fast.status_code == slow.status_code == named.status_code == 200
    assert fast.json() == slow.json() and fast.json()["request_id"] == "req-1"
    assert len(fast.json()["top_k"][0]) == 2 and fast.json()["version"] == "1.0.0"
    _same_headers(fast, slow)
    assert fast.headers["x-content-type-options"] == "nosniff" and fast.headers["cache-control"] == "no-store"
    assert fast.headers["x-model-version"] == "1.0.0" and fast.headers["x-request-id"] == "req-1"
    assert len(named.headers["x-request-id"]) == 16
    assert npy.headers["content-type"] == "application/x-npy" and npy.content.startswith(b"\x93NUMPY")
    assert _requests(app, "200") == 3  # the named route has its own label


@pytest.mark.parametrize(("kwargs", "status", "front"), [
    ({"json": {"inputs": [ROW]}, "headers": {}}, 401, True),
    ({"content": b"{not json", "headers": {**AUTH, "content-type": "application/json"}}, 422, True),
    ({"json": {"inputs": [[1.0, 2.0]]}, "headers": AUTH}, 422, True),
    ({"json": {"inputs": [ROW]}, "headers": {**AUTH, "x-model-version": "9.9.9"}}, 404, True),
    ({"content": b"a,b", "headers": {**AUTH, "content-type": "text/csv"}}, 415, False),
    ({"content": b"[" * 5000, "headers": {**AUTH, "content-type": "application/json"}}, 413, False),
])
def test_errors_answer_alike_on_both_paths(iris, kwargs, status, front):
    app = _app(iris)
    served = _spy(app)
    with TestClient(app) as c:
        r = c.post("/predict", **kwargs)
        headers = kwargs["headers"]
        twice = [*(headers.items() if isinstance(headers, dict) else headers), ("x-extra", "1"), ("x-extra", "2")]
        s = c.post("/predict", **{**kwargs, "headers": twice})
    assert served == [front, False]
    assert r.status_code == s.status_code == status
    assert r.json()["detail"] == s.json()["detail"] and r.json()["request_id"] == r.headers["x-request-id"]
    if status != 413:  # the 413 answer closes the connection and sets its own headers
        _same_headers(r, s)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    assert _requests(app, str(status)) == 2


def test_after_response_hooks_see_each_answered_prediction(iris, caplog):
    app = _app(iris)
    seen = []
    hooks = app.state.server.dataplane.after_response
    hooks.append(lambda p: seen.append((p.version, p.rows, p.inputs["input"].tolist())))
    with TestClient(app) as c:
        assert c.post("/predict", json={"inputs": [ROW]}, headers=AUTH).status_code == 200
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
        assert c.post("/v2/models/iris/infer", json=body, headers=AUTH).status_code == 200  # v2, on the front too
        assert c.post("/predict", json={"inputs": [[1.0]]}, headers=AUTH).status_code == 422  # no prediction
        assert len(seen) == 2 and seen[0] == ("1.0.0", 1, [[pytest.approx(v) for v in ROW]])

        def broken(p):
            raise RuntimeError("hook down")

        hooks.insert(0, broken)
        with caplog.at_level(logging.ERROR, "mldeploy.server"):
            assert c.post("/predict", json={"inputs": [ROW]}, headers=AUTH).status_code == 200
    assert len(seen) == 3  # the hook after the failing one still ran
    assert any("after-response hook" in r.getMessage() for r in caplog.records)


def _scope(length: int) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(length).encode()),
                        (b"x-api-key", KEY.encode())],
            "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8080)}


@pytest.mark.parametrize("delays", [(0, 0), (0.03, 0), (0, 0.03), (None, None)])
def test_a_body_in_late_chunks_is_joined(iris, delays):
    """The first ``receive()`` may complete at once, after a yield (``sleep(0)``) or after a wait; so may the
    next: every case answers the whole body."""
    app = _app(iris)
    body = b'{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]}'
    parts = [body[:9], body[9:]]
    sent = []

    async def receive():
        i = len(parts) - len(pending)
        if delays[min(i, 1)] is not None:
            await asyncio.sleep(delays[min(i, 1)])
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    async def main():
        async with app.router.lifespan_context(app):
            await app(_scope(len(body)), receive, send)

    pending = list(parts)
    asyncio.run(main())
    assert sent[0]["status"] == 200
    assert len(orjson.loads(sent[1]["body"])["predictions"]) == 2


def test_a_body_that_does_not_arrive_times_out_with_504(iris):
    app = _app(iris, MLDEPLOY_REQUEST_TIMEOUT_S="0.2")
    sent = []

    async def receive():
        await asyncio.sleep(5)  # the client sent its headers, then nothing

    async def send(message):
        sent.append(message)

    async def main():
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app(_scope(40), receive, send), 3)

    asyncio.run(main())
    assert sent[0]["status"] == 504
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]


@pytest.mark.parametrize("body", [
    '{"inputs": [[5.1,3.5,1.4,0.2]]}', '{"inputs": [[1,2,3,4],[5,6,7,8]]}', '{"inputs": [[1,2,3]]}',
    '{"inputs": [[1,2,3,"x"]]}', '{"inputs": [[1,2,3,"4"]]}', '{"inputs": [[true,2,3,4]]}',
    '{"inputs": [[1,2,3,null]]}', '{"inputs": [[1,2,3,4],[1,2,3]]}', '{"inputs": [[1e39,2,3,4]]}',
    '{"inputs": []}', '{"inputs": [[]]}', '{"inputs": [[[1,2,3,4]]]}', '{"inputs": [[1,2,3,4],[1,2,3,4],[1,2,3,4]]}',
    '{"instances": [[1,2,3,4]]}', '[[1,2,3,4]]', '{"inputs": [1,2,3,4]}', '{"inputs": [[1,2,3,4], 5]}',
    '{"inputs": [[NaN,1,2,3]]}', '{"inputs": [[1,2,3,4]],}', '{"inputs": [[{"a":1},2,3,4]]}',
    '{"inputs": [{"sepal_length": 1}]}',
])
def test_the_rows_decoder_agrees_with_parse_json(iris, body):
    spec = InputSpec(Manifest.load(iris))
    spec.max_rows = 2
    try:
        want, error = parse_json(body.encode(), spec), None
    except (InputError, PayloadTooLargeError) as e:
        want, error = None, e
    with np.errstate(over="ignore"):
        got = _json_rows(body.encode(), spec)
    if got is None:  # left to parse_json, which decodes or refuses it
        return
    assert error is None, f"the fast decoder accepted what parse_json refuses: {error}"
    assert got.keys() == want.keys()
    for name, arr in got.items():
        assert arr.dtype == want[name].dtype and np.array_equal(arr, want[name])


@pytest.mark.parametrize("labels", [["a", "b", "c"], None, [10, 20, 30]])
def test_the_small_answer_formatter_agrees_with_numpy(iris, labels, monkeypatch):
    from runtime import formatting

    manifest = Manifest.load(iris).model_copy(update={"class_labels": labels})
    rng = np.random.default_rng(0)
    for proba, with_label in itertools.product(
            (rng.random((3, 3), dtype=np.float32), np.array([[1, 0, 0], [0.5, 0.5, 0]], dtype=np.float32),
             np.array([[np.nan, 0.5, 0]], dtype=np.float32), rng.random((1, 3), dtype=np.float32),  # one row: its
             np.array([[0.2, 0.4, 0.4]], dtype=np.float32)), (True, False)):  # own path (ties: the first)
        outputs = {"probabilities": proba}
        if with_label:
            outputs["label"] = proba.argmax(axis=1).astype(np.int64)
        for k in (None, 1, 2, 3):
            got, conf = OutputFormatter(manifest, 5).format(outputs, k)
            with monkeypatch.context() as m:
                m.setattr(formatting, "_LIST_ROWS", -1)  # the numpy path
                want, want_conf = OutputFormatter(manifest, 5).format(outputs, k)
            assert got.keys() == want.keys()
            assert got["predictions"] == want["predictions"]
            assert orjson.dumps(got.get("top_k")) == orjson.dumps(want.get("top_k"))  # NaN → null: comparable
            assert np.array_equal(got["probabilities"], want["probabilities"], equal_nan=True)
            assert np.array_equal(conf, want_conf, equal_nan=True)


@pytest.mark.parametrize("n", [10, 500])  # below and above the numpy bucketing threshold
def test_buffered_histograms_match_prometheus(n):
    from prometheus_client import CollectorRegistry, Histogram

    from runtime.metrics import LATENCY_BUCKETS, Metrics

    rng = np.random.default_rng(1)
    values = [*rng.exponential(0.05, n).tolist(), *LATENCY_BUCKETS[:3], 0.0, 99.0]  # bounds are inclusive
    registry = CollectorRegistry()
    plain = Histogram("plain", "x", buckets=LATENCY_BUCKETS, registry=registry)
    m = Metrics()
    buffered = m.histogram(m.inference.labels("1"))
    for i, v in enumerate(values):
        plain.observe(v)
        buffered.observe(v) if i % 2 else buffered.observe_many([v])
    assert buffered.child._sum.get() == 0  # nothing reaches prometheus before a flush
    m.flush()

    def samples(registry, name):
        return [(s.name.rsplit("_", 1)[1], s.labels.get("le"), round(s.value, 9)) for metric in registry.collect()
                if metric.name == name for s in metric.samples if not s.name.endswith("_created")]

    assert samples(m.registry, "mldeploy_inference_seconds") == samples(registry, "plain")


def _v2_binary(rows: list[list[float]], size: int | None = None, extra: bytes = b"") -> tuple[bytes, dict]:
    """A v2 request with the binary tensor extension: JSON header, then the FP32 rows."""
    raw = np.asarray(rows, np.float32).tobytes()
    head = orjson.dumps({"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw) if size is None else size}}],
                         "parameters": {"binary_data_output": True}})
    return head + raw + extra, {"inference-header-content-length": str(len(head)),
                                "content-type": "application/octet-stream"}


_V2_ROWS = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [ROW, ROW]}]}
_BINARY_OK = _v2_binary([ROW, ROW])
_BINARY_SHORT = _v2_binary([ROW], size=16, extra=b"")[0][:-4]


@pytest.mark.parametrize(("path", "kwargs", "status", "front"), [
    ("/v2/models/iris/infer", {"json": _V2_ROWS}, 200, True),
    ("/v2/models/iris/versions/1.0.0/infer?top_k=2",
     {"json": {**_V2_ROWS, "id": "q-1", "outputs": [{"name": "probabilities"}]}}, 200, True),
    ("/v2/models/iris/infer", {"content": _BINARY_OK[0], "headers": _BINARY_OK[1]}, 200, True),
    ("/v2/models/iris/infer", {"json": _V2_ROWS, "headers": {"x-api-key": "wrong"}}, 401, True),
    ("/v2/models/other/infer", {"json": _V2_ROWS}, 404, True),
    ("/v2/models/iris/versions/9.9.9/infer", {"json": _V2_ROWS}, 404, True),
    ("/v2/models/iris/infer", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, True),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32",
                                                   "data": ROW}]}}, 400, True),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                                   "data": ROW[:3]}]}}, 400, True),
    ("/v2/models/iris/infer", {"json": _V2_ROWS, "headers": {"content-encoding": "gzip"}}, 400, True),
    ("/v2/models/iris/infer", {"content": _BINARY_OK[0],
                               "headers": {**_BINARY_OK[1], "inference-header-content-length": "x"}}, 400, True),
    ("/v2/models/iris/infer", {"content": b"{}", "headers": {"inference-header-content-length": "500"}}, 400, True),
    ("/v2/models/iris/infer", {"content": _BINARY_SHORT, "headers": _BINARY_OK[1]}, 400, True),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "input", "shape": [300, 4], "datatype": "FP32",
                                                   "data": [ROW] * 300}]}}, 413, False),  # > max_body_bytes
    ("/v2/models/iris/infer/", {"json": _V2_ROWS}, 307, None),  # not an infer path: the router redirects
])
def test_v2_infer_answers_alike_on_both_paths(iris, path, kwargs, status, front):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` on the front and on the stack's route (a header sent twice
    sends it there): same status, body, headers and request metrics."""
    app = _app(iris)
    served = _spy(app)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    twice = [*headers.items(), ("x-extra", "1"), ("x-extra", "2")]
    with TestClient(app, follow_redirects=False) as c:
        r = c.post(path, headers=headers, **kwargs)
        s = c.post(path, headers=twice, **kwargs)
    assert served == ([] if front is None else [front, False])
    assert r.status_code == s.status_code == status
    if status == 413:  # the serving middleware's refusal, with each request's id
        assert r.json()["detail"] == s.json()["detail"]
    else:
        assert r.content == s.content
    if status == 200:
        assert r.headers["x-model-version"] == "1.0.0" and r.headers["cache-control"] == "no-store"
        assert r.headers["x-content-type-options"] == "nosniff" and len(r.headers["x-request-id"]) == 16
    if status != 413:  # the 413 answer closes the connection and sets its own headers
        _same_headers(r, s)
    if status < 300:
        doc = orjson.loads(r.content[:int(r.headers.get("inference-header-content-length", len(r.content)))])
        assert doc["model_name"] == "iris" and doc["model_version"] == "1.0.0"
    m = app.state.server.metrics
    m.flush()
    counted = sum(sm.value for metric in m.registry.collect() if metric.name == "mldeploy_requests"
                  for sm in metric.samples if sm.name == "mldeploy_requests_total"
                  and sm.labels["route"] == "other" and sm.labels["status"] == str(status))
    assert counted == 2  # the serving middleware's label for the v2 paths, on both


def test_v2_infer_hooks_and_binary_answer_on_the_front(iris):
    """The front's v2 answer runs the after-response hooks, and a binary answer splits as its header says."""
    app = _app(iris)
    served = _spy(app)
    seen = []
    app.state.server.dataplane.after_response.append(lambda p: seen.append(p.rows))
    with TestClient(app) as c:
        r = c.post("/v2/models/iris/infer", content=_BINARY_OK[0], headers={**AUTH, **_BINARY_OK[1]})
    assert served == [True] and seen == [2] and r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    doc = orjson.loads(r.content[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"]]
    assert sum(sizes) == len(r.content) - n
    proba = next(o for o in doc["outputs"] if o["name"] == "probabilities")
    offset = n + sum(sizes[:doc["outputs"].index(proba)])
    values = np.frombuffer(r.content[offset:offset + proba["parameters"]["binary_data_size"]], np.float32)
    assert values.reshape(proba["shape"]).sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_a_blocked_client_is_refused_even_with_a_valid_key_on_the_front(iris):
    """The front's quick check of a configured key gives way to the guard once an IP is blocked for failed
    attempts: 429 with Retry-After, as the stack answers."""
    app = _app(iris, MLDEPLOY_AUTH_FAILURE_LIMIT="3/minute")
    served = _spy(app)
    with TestClient(app) as c:
        assert c.post("/predict", json={"inputs": [ROW]}, headers=AUTH).status_code == 200
        assert [c.post("/predict", json={"inputs": [ROW]}, headers={"x-api-key": "bad"}).status_code
                for _ in range(3)] == [401] * 3
        r = c.post("/predict", json={"inputs": [ROW]}, headers=AUTH)
        s = c.post("/predict", json={"inputs": [ROW]}, headers=[*AUTH.items(), ("x-extra", "1"), ("x-extra", "2")])
    assert served == [True] * 5 + [False]
    assert r.status_code == s.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["detail"] == s.json()["detail"]
