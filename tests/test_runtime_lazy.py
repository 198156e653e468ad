"""``runtime.http.lazy.LazyApp`` (what ``python -m runtime`` serves): lifespan and probes without FastAPI, the
FastAPI app built after the first ready answer or by the first request that needs it. Driven as raw ASGI,
in-process, against the eager app (``create_app``) answering the same requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import orjson
import pytest

from benchmarks import models as ex
from runtime.http.app import create_app, create_lazy_app
from runtime.settings import load_settings

KEY = "lazy-key-0123456789abcdef"
AUTH = {"x-api-key": KEY}
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lazy") / "iris"
    ex.iris_onnx(folder, n_estimators=10)
    return folder


def _environ(**env: str) -> dict[str, str]:
    return {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": KEY, "MLDEPLOY_METRICS_PORT": "0", **env}


def _apps(iris, runtime: dict[str, Any] | None = None, **env: str) -> tuple[Any, Any]:
    """(lazy, eager) apps over the same model and settings (``runtime``: runtime.json keys)."""
    environ = _environ(**env)
    doc = {"model_dir": str(iris), **(runtime or {})}
    return tuple(f(load_settings(doc, environ=environ), environ=environ) for f in (create_lazy_app, create_app))


def _scope(method: str, path: str, headers: dict[str, str], length: int | None = None) -> dict[str, Any]:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
            "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"", "headers": raw,
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080), "state": {}}


async def call(app, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through ``app``: (status, raw headers, body)."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(30)

    async def send(message):
        sent.append(message)

    scope = _scope(method, path, headers or {}, len(body) if method == "POST" else None)
    await app(scope, receive, send)
    return sent[0]["status"], list(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


class Lifespan:
    """The ASGI lifespan protocol, as uvicorn drives it."""

    def __init__(self, app) -> None:
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()

    async def __aenter__(self) -> Lifespan:
        self.task = asyncio.create_task(self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                                 self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        assert message["type"] == "lifespan.startup.complete", message
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"
        await self.task


def _same(a: tuple, b: tuple) -> None:
    """Same status, body and headers (the request id, sent by the test, included)."""
    assert a[0] == b[0]
    assert orjson.loads(a[2]) == orjson.loads(b[2])
    assert a[1] == b[1]


_SERVER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[2])
from tests.test_runtime_lazy import Lifespan, call, _environ
from runtime.http.app import create_lazy_app
from runtime.settings import load_settings

environ = _environ()
app = create_lazy_app(load_settings({"model_dir": sys.argv[1]}, environ=environ), environ=environ)
out = {}

async def main():
    async with Lifespan(app):
        out["loaded"] = app.server.repository.ready
        status, _, body = await call(app, "GET", "/ready")
        out["ready"] = [status, json.loads(body)["ready"]]
        out["fastapi_at_ready"] = sorted(m for m in sys.modules if m == "fastapi" or m.startswith("fastapi."))
        out["built_at_ready"] = app.app is not None
        await asyncio.sleep(0)  # the build scheduled by the first ready answer (loop.call_soon)
        out["built_after"] = app.app is not None
        out["openapi"] = (await call(app, "GET", "/openapi.json"))[0]
        out["predict"] = (await call(app, "POST", "/predict", {"x-api-key": environ["MLDEPLOY_API_KEYS"],
                                     "content-type": "application/json"}, b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'))[0]

asyncio.run(main())
print(json.dumps(out))
"""


def test_ready_without_importing_fastapi_then_the_app_is_built_on_the_loop(iris):
    import tests

    root = str(__import__("pathlib").Path(tests.__file__).resolve().parents[1])
    # a fresh interpreter: this one imported FastAPI already
    proc = subprocess.run([sys.executable, "-c", _SERVER, str(iris), root], capture_output=True, text=True,
                          timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] is True  # the lifespan ran the model load
    assert out["ready"] == [200, True]
    assert out["fastapi_at_ready"] == []
    assert out["built_at_ready"] is False
    assert out["built_after"] is True
    assert out["openapi"] == 200 and out["predict"] == 200


@pytest.mark.parametrize("path", ["/ready", "/health"])
def test_probes_answer_as_the_fastapi_routes_while_loading_ready_and_draining(iris, path):
    lazy, eager = _apps(iris, MLDEPLOY_ACCESS_LOG="true")
    headers = {"x-request-id": "probe-1"}

    async def main():
        loading = [await call(app, "GET", path, headers) for app in (lazy, eager)]  # before the lifespan: 503
        async with Lifespan(lazy), Lifespan(eager):
            ready = [await call(app, "GET", path, headers) for app in (lazy, eager)]
            lazy.server.drain.begin("test")
            eager.state.server.drain.begin("test")
            draining = [await call(app, "GET", path, headers) for app in (lazy, eager)]
        return loading, ready, draining

    loading, ready, draining = asyncio.run(main())
    for pair in (loading, ready, draining):
        _same(*pair)
    if path == "/ready":
        assert [loading[0][0], ready[0][0], draining[0][0]] == [503, 200, 503]
        assert orjson.loads(draining[0][2])["draining"] is True
    else:
        assert [loading[0][0], ready[0][0], draining[0][0]] == [200, 200, 200]
    assert (b"connection", b"close") in draining[0][1] and (b"connection", b"close") not in ready[0][1]
    assert lazy.app is None or path == "/ready"  # /health never builds the app
    counts = []
    for m in (lazy.server.metrics, eager.state.server.metrics):  # counted as the serving middleware counts
        m.flush()
        counts.append([m.requests.labels(path, status, "")._value.get() for status in ("200", "503")])
    assert counts[0] == counts[1] == ([1, 2] if path == "/ready" else [3, 0])


def test_probe_refusals_go_to_the_stack_as_before(iris):
    lazy, eager = _apps(iris, {"max_header_bytes": 1024})

    async def main():
        big = {"x-filler": "x" * 1100, "x-request-id": "big-1"}
        return [await call(app, "GET", "/ready", big) for app in (lazy, eager)]

    a, b = asyncio.run(main())
    assert a[0] == b[0] == 431
    assert lazy.app is not None  # built to answer it


@pytest.mark.parametrize("first", ["/openapi.json", "/v1/models", "/predict", "/nowhere"])
def test_a_starlette_route_first_builds_the_app_and_concurrent_first_requests_all_succeed(iris, first):
    lazy, _ = _apps(iris)
    body = orjson.dumps({"inputs": [ROW]})
    post = {**AUTH, "content-type": "application/json"}

    async def one(path: str):
        if path == "/predict":
            return await call(lazy, "POST", path, post, body)
        return await call(lazy, "GET", path, AUTH)

    async def main():
        async with Lifespan(lazy):
            assert lazy.app is None
            paths = [first] + ["/openapi.json", "/v1/models", "/predict", "/health"] * 5
            return await asyncio.gather(*(one(p) for p in paths))

    answers = asyncio.run(main())
    expected = {"/nowhere": 404}
    assert answers[0][0] == expected.get(first, 200), answers[0]
    assert all(a[0] == 200 for a in answers[1:]), [a[0] for a in answers]
    assert orjson.loads(answers[1][2])["paths"]  # the OpenAPI document, built once
    assert lazy.app is not None


def test_a_failing_startup_reports_lifespan_startup_failed(iris, tmp_path):
    lazy, _ = _apps(iris)

    async def broken(*_: Any) -> None:
        raise RuntimeError("no model")

    lazy.server.repository.start = broken
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    async def main():
        await inbox.put({"type": "lifespan.startup"})
        with pytest.raises(RuntimeError, match="no model"):
            await lazy({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)

    asyncio.run(main())
    assert sent[0]["type"] == "lifespan.startup.failed" and "no model" in sent[0]["message"]
