"""OpenAI-compatible ``POST /v1/embeddings`` on the real server, driven by the real ``openai`` client: a tiny BERT
embedder (``examples/text-transformers``, two versions), API-key auth sent as ``Authorization: Bearer``, float and
base64 encodings, version pinning, batching, row limits, and errors in OpenAI's shape (404 for non-embedding
models)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks import models as ex
from mldeploy.artifacts import package
from tests.artifact_helpers import edit_config, example, project
from tests.test_runtime_server import serve

openai = pytest.importorskip("openai")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

KEY = "openai-key"
MAX_ROWS = 8
NAME = "text-transformers"
TEXTS = ["a text", "another, longer text to embed", "the staff were friendly"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedder packaged as 1.0.0, and a copy labelled 1.1.0 (the latest gets the traffic)."""
    src = example("text-transformers", tmp_path_factory.mktemp("openai-src"))
    folder = tmp_path_factory.mktemp("openai-emb")
    for f in ("mldeploy.yaml", "sample.json"):
        (folder / f).write_bytes((src / f).read_bytes())
    edit_config(folder, path=str(src / "embedder"))
    art = package(project(folder), folder / "artifact")
    root = tmp_path_factory.mktemp("openai-models")
    shutil.copytree(art.dir, root / "v1")
    shutil.copytree(art.dir, root / "v2")
    doc = json.loads((root / "v2" / "model.json").read_text())
    doc["version"] = "1.1.0"
    (root / "v2" / "model.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def server(models: Path, tmp_path_factory: pytest.TempPathFactory):
    env = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": KEY, "MLDEPLOY_RATE_LIMIT_ENABLED": "true",
           "MLDEPLOY_RATE_LIMIT": "100000/minute", "MLDEPLOY_MAX_ROWS": str(MAX_ROWS), "MLDEPLOY_MAX_WAIT_MS": "20"}
    with serve(tmp_path_factory.mktemp("openai"), models_dir=models, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(api_key=KEY, base_url=server.url + "/v1", max_retries=0, timeout=30) as c:
        yield c


def native(url: str, texts: list[str], version: str | None = None) -> np.ndarray:
    headers = {"X-API-Key": KEY, **({"X-Model-Version": version} if version else {})}
    r = httpx.post(f"{url}/predict", json={"inputs": texts}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"], dtype=np.float32)


def _error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def test_embeddings_match_the_native_predictions(client, server) -> None:
    want = native(server.url, TEXTS)
    got = client.embeddings.create(model=NAME, input=TEXTS)  # the client asks for base64 and decodes it
    assert got.object == "list" and got.model == NAME and len(got.data) == 3
    assert [d.index for d in got.data] == [0, 1, 2] and all(d.object == "embedding" for d in got.data)
    vectors = np.asarray([d.embedding for d in got.data], dtype=np.float32)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(vectors, want, atol=1e-5)
    assert got.usage.prompt_tokens == got.usage.total_tokens > len(" ".join(TEXTS).split())  # + [CLS]/[SEP]
    floats = client.embeddings.create(model=NAME, input=TEXTS[0], encoding_format="float")
    assert len(floats.data) == 1
    np.testing.assert_allclose(floats.data[0].embedding, want[0], atol=1e-5)
    same = client.embeddings.create(model=NAME, input=TEXTS[:1], dimensions=32)
    np.testing.assert_allclose(same.data[0].embedding, want[0], atol=1e-5)


def test_raw_response_shape_and_headers(server) -> None:
    r = httpx.post(f"{server.url}/v1/embeddings", json={"model": NAME, "input": "a text"},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"object", "data", "model", "usage"} and body["object"] == "list"
    assert set(body["data"][0]) == {"object", "index", "embedding"} and len(body["data"][0]["embedding"]) == 32
    assert r.headers["x-model-version"] == "1.1.0" and "x-ratelimit-limit" in r.headers
    x_key = httpx.post(f"{server.url}/v1/embeddings", json={"model": NAME, "input": "a"},
                       headers={"X-API-Key": KEY}, timeout=30)
    assert x_key.status_code == 200


def test_versions_are_pinned_by_model_suffix_or_header(client, server) -> None:
    r = client.embeddings.with_raw_response.create(model=f"{NAME}:1.0.0", input="a text")
    assert r.headers["x-model-version"] == "1.0.0" and r.parse().model == NAME
    r = client.embeddings.with_raw_response.create(model=NAME, input="a text",
                                                   extra_headers={"X-Model-Version": "1.0.0"})
    assert r.headers["x-model-version"] == "1.0.0"
    err = _error(lambda: client.embeddings.create(model=f"{NAME}:9.9.9", input="a"))
    assert err.status_code == 404 and "9.9.9" in err.body["message"]


def test_requests_are_batched(client, server) -> None:
    texts = [" ".join(["word"] * n) + f" number {n}" for n in range(1, 33)]
    alone = {t: client.embeddings.create(model=NAME, input=t).data[0].embedding for t in texts[:4]}
    with cf.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: client.embeddings.create(model=NAME, input=[t, TEXTS[1]]), texts))
    for t, a in zip(texts[:4], answers, strict=False):
        np.testing.assert_allclose(a.data[0].embedding, alone[t], atol=1e-5)  # padding in a shared batch is masked
    metrics = httpx.get(server.metrics_url + "/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith('mldeploy_batch_size_count{version="1.1.0"}'))
    assert float(line.split()[-1]) < 4 + 32 + 10  # some of the 32 concurrent requests shared a batch


def test_errors_are_in_openai_shape(client, server) -> None:
    bad = openai.OpenAI(api_key="wrong", base_url=server.url + "/v1", max_retries=0)
    err = _error(lambda: bad.embeddings.create(model=NAME, input="a"))
    assert isinstance(err, openai.AuthenticationError) and err.code == "invalid_api_key"
    err = _error(lambda: client.embeddings.create(model="other", input="a"))
    assert isinstance(err, openai.NotFoundError) and err.code == "model_not_found"
    err = _error(lambda: client.embeddings.create(model=NAME, input=[1, 2]))
    assert isinstance(err, openai.BadRequestError) and err.param == "input.0"
    err = _error(lambda: client.embeddings.create(model=NAME, input=[]))
    assert err.status_code == 400 and err.param == "input"
    err = _error(lambda: client.embeddings.create(model=NAME, input="a", dimensions=8))
    assert isinstance(err, openai.BadRequestError) and err.param == "dimensions" and "32" in err.message
    err = _error(lambda: client.embeddings.create(model=NAME, input=["a"] * (MAX_ROWS + 1)))
    assert err.status_code == 413 and "at most" in err.message
    raw = httpx.post(f"{server.url}/v1/embeddings", content=b"{nope", timeout=30,
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert raw.status_code == 400
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}
    assert raw.json()["error"]["type"] == "invalid_request_error"


def test_non_embedding_models_get_404(tmp_path: Path) -> None:
    ex.iris_onnx(tmp_path / "iris", version="1.0.0")
    with serve(tmp_path, tmp_path / "iris") as proc, openai.OpenAI(api_key="unused", base_url=proc.url + "/v1",
                                                                   max_retries=0) as c:
        err = _error(lambda: c.embeddings.create(model="iris", input="a"))
        assert isinstance(err, openai.NotFoundError) and err.code == "model_not_found"
        assert "feature-extraction" in err.message
