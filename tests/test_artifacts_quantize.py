"""``model.quantize: int8``: onnxruntime dynamic quantization behind a configurable parity gate, the before/after
figures ``package`` prints, and the int8 model served through the real HTTP server."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import httpx
import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.summary import as_dict
from mldeploy.config.schema import ModelSection
from mldeploy.errors import ArtifactError
from tests.artifact_helpers import cli, edit_config, example, project
from tests.test_artifacts_boosted import served, single_request_ms


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("int8-mlp", tmp_path_factory.mktemp("int8-src"))


@pytest.fixture
def proj(src: Path, tmp_path: Path) -> Path:
    for f in src.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_schema_accepts_int8_only() -> None:
    assert ModelSection(path="m.pkl").quantize == "none"
    assert ModelSection(path="m.pkl", quantize="int8").quantize_parity.min_argmax_agreement == 0.98
    with pytest.raises(ValueError, match="int8"):
        ModelSection(path="m.pkl", quantize="int4")


def test_int8_is_kept_when_it_passes_the_gate_and_figures_are_reported(proj: Path) -> None:
    res = package(project(proj))
    m, q = res.manifest, res.quantization
    assert q and q["kept"] and m.file == "model.int8.onnx" and not (res.dir / "model.onnx").exists()
    assert q["int8_bytes"] < q["fp32_bytes"] / 3 and m.size_bytes == q["int8_bytes"]
    assert q["fp32_latency_ms"] > 0 and q["int8_latency_ms"] > 0 and q["quantized_nodes"] > 0
    assert m.parity and m.parity.passed and m.parity.argmax_agreement >= 0.98  # the int8 model's report
    assert q["fp32_parity"]["max_abs_error"] < 1e-5
    assert as_dict(res)["quantization"]["kept"] is True
    again = package(project(proj))  # cached: the figures come back too
    assert again.cached and again.quantization == json.loads(json.dumps(q))
    print(f"FIGURE int8 {q['fp32_bytes']}→{q['int8_bytes']} B, {q['fp32_latency_ms']}→{q['int8_latency_ms']} ms, "
          f"max abs {m.parity.max_abs_error:.3g}, agreement {m.parity.argmax_agreement}")


def test_a_failed_gate_serves_the_float_model_with_a_warning(proj: Path) -> None:
    edit_config(proj, quantize_parity={"atol": 1e-7, "rtol": 0.0, "min_argmax_agreement": 1.0})
    res = package(project(proj))
    assert res.manifest.file == "model.onnx" and res.quantization and not res.quantization["kept"]
    assert res.manifest.parity and res.manifest.parity.max_abs_error < 1e-5  # the float model's report
    assert any("failed the parity gate" in n for n in res.notes)
    assert not (res.dir / "model.int8.onnx").exists()


def test_quantize_needs_an_onnx_model(proj: Path) -> None:
    edit_config(proj, convert="none")
    with pytest.raises(ArtifactError, match="int8 quantization applies to ONNX"):
        package(project(proj))


def test_tree_models_have_nothing_to_quantize(proj: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    iris = load_iris()
    (proj / "rf.pkl").write_bytes(pickle.dumps(RandomForestClassifier(n_estimators=5, random_state=0)
                                               .fit(iris.data, iris.target)))
    edit_config(proj, path="rf.pkl", sample_input=None)
    res = package(project(proj))
    assert res.manifest.file == "model.onnx" and any("no MatMul" in n for n in res.notes)


def test_package_cli_prints_sizes_and_latency_before_and_after(proj: Path) -> None:
    r = cli("-f", str(proj / "mldeploy.yaml"), "package")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if ln.strip().startswith("int8"))
    assert "kept" in line and "single-row latency" in line and "→" in line


def test_int8_model_serves_over_http(proj: Path, tmp_path: Path) -> None:
    res = package(project(proj))
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    original = pickle.loads((proj / "model.pkl").read_bytes())
    with served(res.dir, tmp_path) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/predict", json={"inputs": x[:300].tolist()})
        assert r.status_code == 200, r.text
        ms = single_request_ms(client, x[:1].tolist())
    got = np.asarray(r.json()["predictions"]).astype(int)
    agreement = float(np.mean(got == original.predict(x[:300])))
    assert agreement >= 0.98
    print(f"FIGURE int8 served: agreement {agreement:.3f} on 300 rows, single request {ms:.2f} ms")
