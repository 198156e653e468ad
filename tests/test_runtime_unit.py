"""In-process tests of the runtime's pieces: settings, batching, routing, inputs, auth, drift, EMF, readiness."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time

import numpy as np
import pytest

from runtime.auth import AuthConfigError, Authenticator, AuthError, hash_key
from runtime.batching import Batcher, InferenceError, QueueFullError
from runtime.contract.serving import Auth, ServingConfig
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.manifest import Manifest, Tensor
from runtime.metrics import DriftTracker, Metrics
from runtime.routing import Router, UnknownVersionError
from runtime.settings import Settings, SettingsError, cpu_quota, inference_threads, load_settings
from runtime.telemetry import EMF_MAX_VALUES, EmfAggregator


def test_settings_file_then_env_then_overrides(tmp_path):
    (tmp_path / "runtime.json").write_text(json.dumps({"port": 9000, "batching": {"max_batch_size": 8},
                                                       "auth": {"mode": "api_key"}}))
    env = {"MLDEPLOY_MODEL_DIR": str(tmp_path), "MLDEPLOY_MAX_BATCH_SIZE": "64",
           "MLDEPLOY_CORS_ORIGINS": "https://a.example, https://b.example"}
    s = load_settings({"workers": 3}, environ=env)
    assert s.port == 9000 and s.batching.max_batch_size == 64 and s.workers == 3 and s.auth.mode == "api_key"
    assert s.cors.allow_origins == ["https://a.example", "https://b.example"]


def test_runtime_json_written_by_the_cli_is_accepted(tmp_path):
    from mldeploy.config.schema import RuntimeSection

    section = RuntimeSection.model_validate({"batching": {"max_batch_size": 4},
                                             "auth": {"mode": "jwt", "jwt_audience": "a"},
                                             "cors": {"allow_origins": ["https://x.example"]}, "top_k": 2})
    doc = json.loads(section.model_dump_json())
    doc["a_future_field"] = 1  # a newer CLI: ignored with a warning, not fatal
    (tmp_path / "runtime.json").write_text(json.dumps(doc))
    s = load_settings(environ={"MLDEPLOY_MODEL_DIR": str(tmp_path)})
    assert s.batching.max_batch_size == 4 and s.auth.mode == "jwt" and s.top_k == 2
    assert s.cors.allow_origins == ["https://x.example"]
    assert set(json.loads(RuntimeSection().model_dump_json())) <= set(s.model_fields)


def test_serving_contract_is_declared_once():
    from mldeploy.config.schema import RuntimeSection

    assert issubclass(RuntimeSection, ServingConfig) and issubclass(Settings, ServingConfig)
    assert set(RuntimeSection.model_fields) == set(ServingConfig.model_fields)
    for name in ("auth", "rate_limit", "batching", "cors"):
        assert RuntimeSection.model_fields[name].annotation is ServingConfig.model_fields[name].annotation
    with pytest.raises(SettingsError, match=r"rate_limit.limit \(MLDEPLOY_RATE_LIMIT\).*not a rate"):
        load_settings(environ={"MLDEPLOY_MODEL_DIR": "m", "MLDEPLOY_RATE_LIMIT": "lots"})


def test_settings_errors_name_the_env_var_or_field(tmp_path):
    with pytest.raises(SettingsError, match=r"batching.max_batch_size \(MLDEPLOY_MAX_BATCH_SIZE\)"):
        load_settings(environ={"MLDEPLOY_MODEL_DIR": str(tmp_path), "MLDEPLOY_MAX_BATCH_SIZE": "0"})
    with pytest.raises(SettingsError, match="MLDEPLOY_MODEL_DIR"):
        load_settings(environ={})
    (tmp_path / "runtime.json").write_text('{"cors": {"allow_origins": ["*"], "allow_credentials": true}}')
    with pytest.raises(SettingsError, match="cannot be combined with allow_credentials"):
        load_settings(environ={"MLDEPLOY_MODEL_DIR": str(tmp_path)})
    (tmp_path / "runtime.json").write_text('{"port": 1,}')
    with pytest.raises(SettingsError, match="runtime.json: invalid JSON at line 1"):
        load_settings(environ={"MLDEPLOY_MODEL_DIR": str(tmp_path)})


def test_threads_follow_cpu_quota_and_workers(tmp_path):
    quota = cpu_quota()
    assert 1 <= quota <= (os.cpu_count() or 1)
    s = load_settings({"model_dir": str(tmp_path), "workers": 64}, environ={})
    assert inference_threads(s) == 1
    assert inference_threads(load_settings({"model_dir": str(tmp_path), "threads": 3}, environ={})) == 3


class EchoModel:
    """Returns 2*x and records the batch sizes it saw; raises on a sentinel value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay = delay

    def predict(self, inputs):
        x = inputs["x"]
        if (x == -1).any():
            raise ValueError("sentinel")
        self.batches.append(len(x))
        time.sleep(self.delay)
        return {"y": x * 2}


def test_batcher_merges_concurrent_requests_and_splits_results():
    model = EchoModel(delay=0.005)

    async def main():
        b = Batcher(model, max_batch_size=16, max_wait_ms=5, max_queue=100)
        b.start()
        reqs = [np.full((i % 3 + 1, 2), i, np.float32) for i in range(30)]
        outs = await asyncio.gather(*(b.submit({"x": r}) for r in reqs))
        await b.stop()
        return reqs, outs

    reqs, outs = asyncio.run(main())
    for r, o in zip(reqs, outs, strict=True):
        assert np.array_equal(o["y"], r * 2)  # each caller gets exactly its own rows
    assert max(model.batches) > 1 and max(model.batches) <= 16
    assert sum(model.batches) == sum(len(r) for r in reqs)


def test_batcher_bad_request_fails_alone_and_queue_is_bounded():
    model = EchoModel(delay=0.05)

    async def main():
        b = Batcher(model, max_batch_size=8, max_wait_ms=1, max_queue=3)
        b.start()
        good = np.ones((1, 2), np.float32)
        results = await asyncio.gather(b.submit({"x": good}), b.submit({"x": -good}), b.submit({"x": good}),
                                       return_exceptions=True)
        flood = await asyncio.gather(*(b.submit({"x": good}) for _ in range(10)), return_exceptions=True)
        await b.stop()
        return results, flood

    results, flood = asyncio.run(main())
    assert isinstance(results[1], InferenceError) and "sentinel" in str(results[1])
    assert np.array_equal(results[0]["y"], np.full((1, 2), 2.0)) and np.array_equal(results[2]["y"], results[0]["y"])
    assert sum(isinstance(r, QueueFullError) for r in flood) >= 6
    assert all(isinstance(r, (dict, QueueFullError)) for r in flood)


def test_router_weights_sticky_pin_and_reload(tmp_path):
    f = tmp_path / "routing.json"
    f.write_text(json.dumps({"weights": {"1.0.0": 50, "2.0.0": 50}, "sticky_header": "X-User"}))
    r = Router(["2.0.0", "1.0.0"], f, check_interval_s=0)
    assert r.versions == ["1.0.0", "2.0.0"]
    picks = [r.choose({}) for _ in range(2000)]
    assert 0.4 < picks.count("2.0.0") / 2000 < 0.6
    sticky = {u: r.choose({"x-user": u}) for u in map(str, range(50))}
    assert all(r.choose({"x-user": u}) == v for u, v in sticky.items())
    assert set(sticky.values()) == {"1.0.0", "2.0.0"}
    assert r.choose({"x-model-version": "1.0.0"}) == "1.0.0"
    with pytest.raises(UnknownVersionError, match="3.0.0"):
        r.choose({"x-model-version": "3.0.0"})
    time.sleep(0.01)
    f.write_text(json.dumps({"weights": {"2.0.0": 1}}))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert {r.choose({}) for _ in range(50)} == {"2.0.0"}
    f.write_text(json.dumps({"weights": {"9.9.9": 1}}))  # unknown version: ignored, weights kept
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 20_000_000))
    assert {r.choose({}) for _ in range(20)} == {"2.0.0"}
    assert Router(["1.0.0", "1.10.0", "1.9.0"]).choose({}) == "1.10.0"  # default: newest semver


def _manifest(**kw) -> Manifest:
    base = dict(name="m", version="1.0.0", format="onnx", source_format="onnx", file="m.onnx", sha256="0",
                size_bytes=1, created_at="now", inputs=[Tensor(name="x", shape=[None, 3])],
                outputs=[Tensor(name="y", role="prediction")])
    return Manifest(**(base | kw))


def test_json_inputs_multi_input_and_columns():
    two = InputSpec(_manifest(inputs=[Tensor(name="a", shape=[None, 2]), Tensor(name="b", dtype="int64",
                                                                              shape=[None])]))
    out = parse_json(b'{"inputs": {"a": [[1, 2], [3, 4]], "b": [5, 6]}}', two)
    assert out["a"].dtype == np.float32 and out["b"].dtype == np.int64 and out["b"].tolist() == [5, 6]
    with pytest.raises(InputError) as e:
        parse_json(b'{"inputs": {"a": [[1, 2]]}}', two)
    assert e.value.loc == ["inputs", "b"]
    with pytest.raises(InputError) as e:
        parse_json(b'{"inputs": {"a": [[1, 2]], "b": [1.5]}}', two)
    assert e.value.loc == ["inputs", "b"] and "integers" in e.value.msg
    with pytest.raises(InputError, match="several inputs"):
        parse_json(b'{"inputs": [[1, 2]]}', two)
    cols = InputSpec(_manifest(feature_names=["p", "q", "r"]))
    x = parse_json(b'{"inputs": {"p": [1, 2], "q": [3, 4], "r": [5, 6]}}', cols)["x"]
    assert x.tolist() == [[1, 3, 5], [2, 4, 6]]
    with pytest.raises(InputError, match="different lengths"):
        parse_json(b'{"inputs": {"p": [1, 2], "q": [3], "r": [5, 6]}}', cols)


def test_api_keys_are_kept_hashed_and_compared():
    a = Authenticator(Auth(mode="api_key"), {"MLDEPLOY_API_KEYS": f"plain-one, sha256:{hash_key('two')}"})
    assert all(b"plain-one" not in h for h in a._hashes)
    assert a.authenticate({"x-api-key": "plain-one"}).startswith("key:")
    assert a.authenticate({"authorization": "Bearer two"}) == "key:" + hash_key("two")[:12]
    with pytest.raises(AuthError):
        a.authenticate({"x-api-key": "three"})
    with pytest.raises(AuthConfigError, match="MY_KEYS"):
        Authenticator(Auth(mode="api_key", api_keys_env="MY_KEYS"), {})
    with pytest.raises(AuthConfigError, match="PEM public key"):
        Authenticator(Auth(mode="jwt", jwt_algorithm="RS256", jwt_audience="a"), {"MLDEPLOY_JWT_SECRET": "x" * 64})
    assert Authenticator(Auth(), {}).authenticate({}) is None


def test_drift_tracker_matches_numpy():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3, 2, size=(n, 2)) for n in (1, 7, 30, 2)]
    d = DriftTracker(Metrics(), "1", ["a", "b"], [0.0, 3.0], [1.0, 2.0], min_count=40)
    for b in batches:
        d.update(b)
    allx = np.concatenate(batches)
    s = d.stats()
    assert s["a"]["mean"] == pytest.approx(allx[:, 0].mean()) and s["b"]["std"] == pytest.approx(allx[:, 1].std(ddof=1))
    assert s["a"]["drift_z"] == pytest.approx(abs(allx[:, 0].mean()) / 1.0)
    assert s["a"]["count"] == len(allx)


def test_emf_lines_are_bounded_and_counted():
    buf = io.StringIO()
    emf = EmfAggregator("ns", "svc", 0.6, stream=buf)
    for i in range(250):
        emf.request("1.0.0", float(i), ok=i % 50 != 0)
    emf.confidences("1.0.0", [0.9, 0.5, 0.2])
    assert emf.flush() == 1 and emf.flush() == 0
    doc = json.loads(buf.getvalue())
    names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert set(names) == {"Latency", "Requests", "Errors", "LowConfidence", "Confidence"}
    assert len(doc["Latency"]) == EMF_MAX_VALUES and doc["Requests"] == 250 and doc["Errors"] == 5
    assert doc["LowConfidence"] == 2 and doc["Version"] == "1.0.0" and doc["app"] == "svc" and doc["env"] == "local"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["app", "env"], ["app", "env", "Version"]]


def _iris_app(tmp_path, environ=None):
    from benchmarks import models as ex
    from runtime.http.app import create_app

    ex.iris_sklearn(tmp_path / "m", "joblib")
    env = environ or {}
    return create_app(load_settings({"model_dir": str(tmp_path / "m")}, environ=env), environ=env)


def test_readiness_turns_false_while_draining(tmp_path):
    from fastapi.testclient import TestClient

    app = _iris_app(tmp_path)
    drain = app.state.server.drain
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        drain.begin("test")
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["draining"] is True
        served = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})  # in-flight work still served
        assert served.status_code == 200 and served.headers["connection"] == "close"
    assert not _iris_app(tmp_path / "other").state.server.drain.active  # each app owns its drain state


@pytest.mark.parametrize(("mode", "env", "schemes"), [
    ("none", {}, None),
    ("api_key", {"MLDEPLOY_API_KEYS": "k" * 20}, {"ApiKey", "ApiKeyBearer"}),
    ("jwt", {"MLDEPLOY_JWT_SECRET": "s" * 40, "MLDEPLOY_JWT_AUDIENCE": "a"}, {"JWT"}),
])
def test_openapi_documents_the_auth_scheme(tmp_path, mode, env, schemes):
    from fastapi.testclient import TestClient

    app = _iris_app(tmp_path, {"MLDEPLOY_AUTH_MODE": mode, **env})
    doc = TestClient(app).get("/openapi.json").json()
    found = doc.get("components", {}).get("securitySchemes")
    assert (set(found) if found else None) == schemes
    security = doc["paths"]["/predict"]["post"].get("security")
    assert (None if security is None else {k for req in security for k in req}) == schemes
    assert "security" not in doc["paths"]["/health"]["get"] and "security" not in doc["paths"]["/ready"]["get"]


def test_access_log_samples_successes_and_keeps_errors_and_slow_requests(caplog):
    import logging

    from runtime.contract.serving import AccessLog
    from runtime.http.middleware import ServingMiddleware
    from runtime.lifecycle import Drain
    from runtime.metrics import Metrics
    from runtime.telemetry import EmfAggregator

    async def app(scope, receive, send):
        status = int(scope["path"].strip("/"))
        if status == 299:
            await asyncio.sleep(0.03)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = ServingMiddleware(app, Metrics(), EmfAggregator("ns", "m", 0.5, stream=io.StringIO()), 1024,
                           AccessLog(sample_rate=0.1, slow_ms=20), Drain())

    async def call(path: str) -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await mw({"type": "http", "method": "POST", "path": path, "headers": [], "client": ("1.2.3.4", 1)},
                 receive, send)

    async def main():
        for _ in range(100):
            await call("/200")
        await call("/404")
        await call("/503")
        await call("/299")  # slow: above slow_ms

    with caplog.at_level(logging.INFO, logger="mldeploy.access"):
        asyncio.run(main())
    statuses = [r.status for r in caplog.records if r.name == "mldeploy.access"]
    assert statuses.count(200) == 10 and {404, 503, 299} <= set(statuses)
    assert ServingConfig().access_log.sample_rate == 0.01
    assert ServingConfig(access_log=False).access_log.enabled is False
    s = load_settings(environ={"MLDEPLOY_MODEL_DIR": "x", "MLDEPLOY_ACCESS_LOG_SAMPLE_RATE": "1",
                               "MLDEPLOY_ACCESS_LOG": "false"})
    assert s.access_log.sample_rate == 1.0 and s.access_log.enabled is False


def test_batcher_runs_fast_models_inline_and_slow_ones_in_its_thread():
    import threading

    class Where:
        def __init__(self, delay: float) -> None:
            self.delay, self.threads = delay, []

        def predict(self, inputs):
            self.threads.append(threading.current_thread().name)
            time.sleep(self.delay)
            return {"y": inputs["x"] * 2}

    async def run(model):
        # a 50 ms threshold: a loaded CI machine cannot push the instant model over it, nor the 80 ms one under
        b = Batcher(model, max_batch_size=4, max_wait_ms=1, max_queue=100, inline_max_ms=50)
        b.predict_sync({"x": np.ones((1, 2), np.float32)})  # the warm-up seeds the time per batch
        b.start()
        small = await asyncio.gather(*(b.submit({"x": np.full((1, 2), i, np.float32)}) for i in range(6)))
        big = await b.submit({"x": np.ones((10, 2), np.float32)})  # above max_batch_size: always the thread
        await b.stop()
        return small, big

    fast = Where(0.0)
    small, big = asyncio.run(run(fast))
    assert [float(o["y"][0, 0]) for o in small] == [2.0 * i for i in range(6)] and big["y"].shape == (10, 2)
    assert fast.threads[1:-1] == ["MainThread"] * (len(fast.threads) - 2)
    assert fast.threads[-1].startswith("infer-")
    slow = Where(0.08)
    asyncio.run(run(slow))
    assert all(t.startswith("infer-") for t in slow.threads[1:])
