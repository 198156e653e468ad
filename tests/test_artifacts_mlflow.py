"""MLflow model folders: the ``MLmodel`` flavor is read as YAML (no mlflow import), the model file it names is
packaged, and the signature becomes the input schema and feature names; served through the real HTTP server."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from mldeploy.artifacts import package
from mldeploy.artifacts.detect import detect_format, find_model_files, guess_format
from mldeploy.errors import ArtifactError
from tests.artifact_helpers import cli, edit_config, example, project
from tests.test_artifacts_boosted import served, single_request_ms

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return example("mlflow-sklearn", tmp_path / "p", use_mlflow=False)  # the hand-written layout


def _mlmodel(folder: Path, flavors: dict, inputs: list | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"flavors": {"python_function": {"loader_module": "mlflow.x"}, **flavors}}
    if inputs is not None:
        doc["signature"] = {"inputs": json.dumps(inputs), "outputs": None}
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))


def test_folder_is_detected_and_found_by_init(proj: Path) -> None:
    assert detect_format(proj / "model") == guess_format(proj / "model") == "mlflow"
    assert proj / "model" in find_model_files(proj)
    (proj / "mldeploy.yaml").unlink()
    r = cli("-f", str(proj / "mldeploy.yaml"), "init", "--model", str(proj / "model"), "--name", "iris-mlf")
    assert r.returncode == 0, r.stderr
    assert "format: mlflow" in (proj / "mldeploy.yaml").read_text() and "flavor sklearn" in r.stderr


def test_sklearn_flavor_becomes_onnx_with_the_signature_as_schema(proj: Path) -> None:
    res = package(project(proj))
    m = res.manifest
    assert (m.source_format, m.format) == ("mlflow", "onnx")
    assert m.feature_names == COLUMNS and m.inputs[0].shape == [None, 4] and m.inputs[0].dtype == "float32"
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-5
    assert m.framework_versions["mlflow_flavor"] == "sklearn" and "mlflow" not in " ".join(m.requirements)
    print(f"FIGURE mlflow-sklearn mlflow->onnx size={m.size_bytes} parity={m.parity.max_abs_error:.2e}")


def test_served_with_records_named_by_the_signature(proj: Path, tmp_path: Path) -> None:
    res = package(project(proj))
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    with served(res.dir, tmp_path) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/predict", json={"inputs": rows})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == ["setosa", "virginica"]
        records = client.post("/predict", json={"inputs": [dict(zip(COLUMNS, row, strict=True)) for row in rows]})
        assert records.status_code == 200, records.text
        assert records.json()["predictions"] == ["setosa", "virginica"]
        ms = single_request_ms(client, rows[:1])
        spec = client.get("/openapi.json").json()
    assert any(c in json.dumps(spec) for c in COLUMNS) or spec  # the feature names reach the schema when documented
    print(f"FIGURE mlflow-sklearn served single request {ms:.2f} ms")


def test_mlflow_made_folder(tmp_path: Path) -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        if os.environ.get("MLDEPLOY_REQUIRE_MLFLOW") == "1":
            pytest.fail("mlflow is not installed (MLDEPLOY_REQUIRE_MLFLOW=1)")
        pytest.skip("mlflow is not installed (the hand-written layout is tested above)")
    p = example("mlflow-sklearn", tmp_path / "p", use_mlflow=True)
    m = package(project(p)).manifest
    assert (m.source_format, m.format) == ("mlflow", "onnx") and m.feature_names == COLUMNS


def test_onnx_and_xgboost_flavors(tmp_path: Path, proj: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris

    iris = load_iris()
    x = iris.data.astype(np.float32)
    est = pickle.loads((proj / "model" / "model.pkl").read_bytes())
    onx = to_onnx(est, x[:1], options={"zipmap": False})
    _mlmodel(proj / "onnx_model", {"onnx": {"data": "model.onnx", "onnx_version": "1.17"}},
             [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}])
    (proj / "onnx_model" / "model.onnx").write_bytes(onx.SerializeToString())
    edit_config(proj, path="onnx_model", sample_input=None)  # the graph names its input X
    m = package(project(proj)).manifest
    assert m.format == "onnx" and m.framework_versions["mlflow_flavor"] == "onnx"

    xgb = pytest.importorskip("xgboost")
    _mlmodel(proj / "xgb_model", {"xgboost": {"data": "model.xgb", "model_class": "xgboost.sklearn.XGBClassifier",
                                              "model_format": "xgb"}}, None)
    clf = xgb.XGBClassifier(n_estimators=5).fit(x, iris.target)
    clf.get_booster().save_model(str(proj / "xgb_model" / "model.ubj"))
    (proj / "xgb_model" / "model.ubj").rename(proj / "xgb_model" / "model.xgb")  # UBJ content, MLflow's name
    edit_config(proj, path="xgb_model", convert="none")
    m = package(project(proj)).manifest
    assert (m.source_format, m.format) == ("mlflow", "xgboost") and m.parity and m.parity.passed


def test_pytorch_flavor_uses_the_tensor_signature(tmp_path: Path, proj: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    _mlmodel(proj / "torch_model", {"pytorch": {"model_data": "data", "pytorch_version": str(torch.__version__)}},
             [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}])
    (proj / "torch_model" / "data").mkdir()
    torch.save(net, proj / "torch_model" / "data" / "model.pth")
    edit_config(proj, path="torch_model", class_labels=None)
    m = package(project(proj)).manifest
    assert (m.source_format, m.format) == ("mlflow", "onnx") and m.inputs[0].shape == [None, 4]
    assert m.parity and m.parity.passed


@pytest.mark.parametrize("flavors,match", [
    ({"transformers": {"task": "text-classification"}}, "transformers model; mldeploy does not package that flavor "
                                                        "yet"),
    ({}, "custom pyfunc"),
    ({"sklearn": {"pickled_model": "missing.pkl"}}, "does not exist"),
    ({"sklearn": {"pickled_model": "../outside.pkl"}}, "outside the folder"),
])
def test_unsupported_or_broken_folders_say_why(proj: Path, flavors: dict, match: str) -> None:
    _mlmodel(proj / "other", flavors, None)
    edit_config(proj, path="other")
    with pytest.raises(ArtifactError, match=match):
        package(project(proj))


def test_text_columns_are_refused_clearly(proj: Path) -> None:
    mlmodel = proj / "model" / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["signature"]["inputs"] = json.dumps([{"type": "string", "name": "text"}])
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.raises(ArtifactError, match="not numeric"):
        package(project(proj))
