"""Hugging Face transformers folders (sequence classification, embeddings): detection, ``init``, ONNX export with
dynamic batch/sequence axes and parity on tokenized texts, and serving strings through the real HTTP server with the
``tokenizers`` library (padding per batch, truncation, batching, OpenAPI string inputs, 422 for non-strings)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.detect import describe_model, detect_format, find_model_files, guess_format
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.manifest import Manifest
from runtime.openapi import request_body, responses
from tests.artifact_helpers import cli, edit_config, example, project
from tests.test_runtime_server import serve

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

LONG = " ".join(["the service was quick and the staff were friendly"] * 20)  # ≫ 64 tokens


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("text-transformers", tmp_path_factory.mktemp("text-src"))


@pytest.fixture(scope="module")
def classifier(src: Path, tmp_path_factory: pytest.TempPathFactory):
    return package(project(src), tmp_path_factory.mktemp("clf") / "artifact")


@pytest.fixture(scope="module")
def embedder(src: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("emb")
    for f in ("mldeploy.yaml", "sample.json"):
        (folder / f).write_bytes((src / f).read_bytes())
    edit_config(folder, path=str(src / "embedder"))
    return package(project(folder), folder / "artifact")


def _post(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/predict", json=body, timeout=30)


# -- detection and init ------------------------------------------------------------------------------------------

def test_folders_are_detected_by_content_and_found_by_init(src: Path) -> None:
    for name in ("classifier", "embedder"):
        assert detect_format(src / name) == "transformers"
        assert guess_format(src / name) == "auto"  # model.format has no 'transformers': auto detects it
        assert src / name in find_model_files(src)
    assert "BertForSequenceClassification, 3 labels" in (describe_model(src / "classifier", "auto") or "")
    assert "BertModel, embeddings" in (describe_model(src / "embedder", "auto") or "")


def test_init_detects_the_folder(src: Path, tmp_path: Path) -> None:
    (tmp_path / "clf").mkdir()
    for f in (src / "classifier").iterdir():
        (tmp_path / "clf" / f.name).write_bytes(f.read_bytes())
    r = cli("-f", str(tmp_path / "mldeploy.yaml"), "init", "--name", "texts", "--yes")
    assert r.returncode == 0, r.stderr
    assert "path: clf" in (tmp_path / "mldeploy.yaml").read_text()
    assert "Hugging Face transformers folder (BertForSequenceClassification" in r.stderr + r.stdout


# -- packaging ---------------------------------------------------------------------------------------------------

def test_classifier_is_exported_to_onnx_with_parity_and_labels(classifier) -> None:
    m = classifier.manifest
    assert (m.format, m.source_format, m.file, m.task) == ("transformers-onnx", "transformers", "transformer",
                                                           "classification")
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [("text", "string", [None])]
    assert [(t.name, t.shape, t.role) for t in m.outputs] == [("logits", [None, 3], "logits")]
    assert m.class_labels == ["negative", "neutral", "positive"]  # id2label
    assert m.parity and m.parity.passed and m.parity.samples == 64 and m.parity.argmax_agreement == 1.0
    assert m.parity.max_abs_error < 1e-4
    assert sorted(r.split("==")[0] for r in m.requirements) == ["onnxruntime", "tokenizers"]  # no torch/transformers
    files = sorted(p.name for p in (classifier.dir / "transformer").iterdir())
    assert files == ["model.onnx", "text.json", "tokenizer.json"]
    assert json.loads((classifier.dir / "transformer" / "text.json").read_text())["max_length"] == 64
    assert m.sample_input and len(m.sample_input["text"]) == 4
    print(f"\ntransformers → transformers-onnx: {m.size_bytes / 1024:.0f} KiB, parity max abs "
          f"{m.parity.max_abs_error:.2e} on {m.parity.samples} texts")


def test_onnx_graph_has_dynamic_batch_and_sequence_axes(classifier) -> None:
    import onnx

    graph = onnx.load(str(classifier.dir / "transformer" / "model.onnx")).graph
    for i in graph.input:
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"], i.name


def test_embedder_serves_pooled_vectors(embedder) -> None:
    m = embedder.manifest
    assert m.task == "feature-extraction" and m.class_labels is None
    assert [(t.name, t.shape, t.role) for t in m.outputs] == [("embedding", [None, 32], "prediction")]
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-4


def test_served_tokenizer_matches_transformers_and_pads_per_batch(src: Path, classifier) -> None:
    from runtime.text import TextEncoder

    enc = TextEncoder(classifier.dir / "transformer")
    ref = transformers.AutoTokenizer.from_pretrained(src / "classifier")
    texts = ["a", "the staff were friendly", LONG]
    got = enc.encode(np.asarray(texts, dtype=object))
    want = ref(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        assert np.array_equal(got[k], want[k]), k
    assert got["input_ids"].shape == (3, 64)  # truncated to the model's maximum
    longest = len(ref("the staff were friendly")["input_ids"])
    assert enc.encode(["a", "the staff were friendly"])["input_ids"].shape == (2, longest)  # this batch's longest


# -- input checks (no server) ------------------------------------------------------------------------------------

def test_string_inputs_are_checked_and_numeric_specs_untouched(classifier) -> None:
    spec = InputSpec(classifier.manifest)
    assert parse_json(b'{"inputs": "one"}', spec)["text"].tolist() == ["one"]
    assert parse_json(b'{"inputs": {"text": ["a", "b"]}}', spec)["text"].dtype == object
    for body, loc in ((b'{"inputs": [1, 2]}', ["inputs", 0]), (b'{"inputs": ["a", null]}', ["inputs", 1]),
                      (b'{"inputs": [["a"]]}', ["inputs"]), (b'{"inputs": []}', ["inputs"])):
        with pytest.raises(InputError) as e:
            parse_json(body, spec)
        assert e.value.loc == loc, body
    numeric = Manifest.model_validate({**classifier.manifest.model_dump(), "format": "onnx",
                                       "inputs": [{"name": "x", "shape": [None, 4]}]})
    assert "check" not in vars(InputSpec(numeric))  # the numeric hot path is the class method, unchanged


def test_openapi_shows_string_inputs(classifier, embedder) -> None:
    schema = request_body(classifier.manifest)["content"]["application/json"]
    options = {o["title"]: o for o in schema["schema"]["properties"]["inputs"]["oneOf"]}
    assert options["rows"] == {"title": "rows", "type": "array", "items": {"type": "string"}}
    assert options["text"]["type"] == "string"
    assert all(isinstance(t, str) for t in schema["example"]["inputs"])
    pred = responses(embedder.manifest)["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]
    assert pred["items"] == {"type": "array", "items": {"type": "number"}}


# -- the real server ---------------------------------------------------------------------------------------------

def test_classifier_serves_labels_with_scores_over_http(classifier, tmp_path: Path) -> None:
    with serve(tmp_path, classifier.dir) as proc:
        r = _post(proc.url, {"inputs": ["the staff were friendly", "the order arrived cold"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {"negative", "neutral", "positive"}
        assert {s["label"] for s in body["top_k"][0]} == {"negative", "neutral", "positive"}
        assert abs(sum(s["score"] for s in body["top_k"][0]) - 1) < 1e-4
        one = _post(proc.url, {"inputs": "the staff were friendly"}).json()
        assert one["probabilities"][0] == pytest.approx(body["probabilities"][0], abs=1e-5)  # padding is masked
        # truncation at 64 tokens: what follows the first 64 tokens changes nothing
        a, b = (_post(proc.url, {"inputs": [t]}).json()["probabilities"][0] for t in (LONG, LONG + " terrible awful"))
        assert a == pytest.approx(b, abs=1e-6)
        bad = _post(proc.url, {"inputs": [1]})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["inputs", 0]
        doc = httpx.get(f"{proc.url}/openapi.json").json()
        body_schema = json.dumps(doc["paths"]["/predict"]["post"]["requestBody"])
        assert '"items": {"type": "string"}' in body_schema
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                assert client.post("/predict", json={"inputs": ["the staff were friendly"]}).status_code == 200
                times.append(time.perf_counter() - t0)
        print(f"\nsingle-request latency (median of 30, one text): {sorted(times)[15] * 1000:.1f} ms")


def test_texts_are_batched_across_requests(classifier, tmp_path: Path) -> None:
    texts = [" ".join(["word"] * n) + f" number {n}" for n in range(1, 49)]  # different lengths: padding per batch
    with serve(tmp_path, classifier.dir, env={"MLDEPLOY_MAX_WAIT_MS": "20"}) as proc:
        alone = {t: _post(proc.url, {"inputs": [t]}).json()["probabilities"][0] for t in texts[:8]}
        with cf.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda t: _post(proc.url, {"inputs": [t, LONG]}), texts))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200][:1]
        for t, r in zip(texts[:8], answers, strict=False):
            assert r.json()["probabilities"][0] == pytest.approx(alone[t], abs=1e-5)
        metrics = httpx.get(proc.metrics_url + "/metrics").text
    count = float(re.search(r'mldeploy_batch_size_count\{version="1.0.0"\} (\S+)', metrics).group(1))
    total = float(re.search(r'mldeploy_batch_size_sum\{version="1.0.0"\} (\S+)', metrics).group(1))
    assert total == 8 + 2 * len(texts) and count < 8 + len(texts)  # some requests shared a batch


def test_embedder_serves_vectors_over_http(embedder, tmp_path: Path) -> None:
    with serve(tmp_path, embedder.dir) as proc:
        r = _post(proc.url, {"inputs": ["a text", "another, longer text to embed"]})
        assert r.status_code == 200, r.text
        vectors = np.asarray(r.json()["predictions"])
        assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
        assert "probabilities" not in r.json()


# -- the image ---------------------------------------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.slow
def test_image_adds_at_most_150_mb_without_torch_and_serves_texts(src: Path, tmp_path: Path, base_image: str,
                                                                  docker_client) -> None:
    from mldeploy.image.api import build_image
    from mldeploy.local import container as local
    from tests import infra

    folder = tmp_path / "proj"
    folder.mkdir()
    for f in ("mldeploy.yaml", "sample.json"):
        (folder / f).write_bytes((src / f).read_bytes())
    (folder / "classifier").mkdir()
    for f in (src / "classifier").iterdir():
        (folder / "classifier" / f.name).write_bytes(f.read_bytes())
    text = (folder / "mldeploy.yaml").read_text().replace("name: text-transformers", "name: t-text", 1)
    text = text.replace("${MLDEPLOY_BASE_IMAGE:-python:3.11-slim}", base_image)
    (folder / "mldeploy.yaml").write_text(text)
    proj = project(folder)
    built = build_image(proj)
    added = docker_client.images.get(built.image_id).attrs["Size"] - docker_client.images.get(base_image).attrs["Size"]
    print(f"\nimage added over the base: {added / 1e6:.1f} MB")
    run = local.run(proj, built.image_id, port=infra.free_port())
    try:
        container = docker_client.containers.get(run.container)
        probe = "import importlib.util as u; print([m for m in ('torch', 'transformers') if u.find_spec(m)])"
        assert container.exec_run(["python3", "-c", probe]).output.decode().strip() == "[]"
        r = _post(run.url, {"inputs": ["the staff were friendly", LONG]})
        assert r.status_code == 200, r.text
        assert set(r.json()["predictions"]) <= {"negative", "neutral", "positive"}
    finally:
        docker_client.containers.get(run.container).remove(force=True)
    # tokenizers' huggingface-hub chain is uninstalled (mldeploy.image.dockerfile.UNUSED_FOR_TEXT)
    assert added <= 150e6, f"{added / 1e6:.1f} MB added over the base"
