"""Mixed-type tabular models: a scikit-learn Pipeline whose ColumnTransformer picks DataFrame columns by name,
with a string column (``examples/tabular-mixed``). ``package`` records one input per column (float64 / string) and
``dataframe: true``, and converts the pipeline to ONNX with one graph input per column (onnxruntime the only
requirement; ``convert: none`` keeps the pickle, with pandas); the real HTTP server decodes mixed-type records and
answers like the pipeline on a DataFrame, from the ONNX graph with pandas and scikit-learn unimportable, and from
the pickle; a value of the wrong type is a 422 naming the record and the field; OpenAPI types the fields; a
numeric pipeline fitted on a DataFrame is packaged as before (ONNX on one [N, 4] input, no pandas)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.formats import sklearn_frame
from mldeploy.artifacts.summary import features_text
from mldeploy.errors import ArtifactError
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.loaders.sklearn import to_frame
from runtime.manifest import Manifest, Tensor
from runtime.openapi import request_body
from tests.artifact_helpers import cli, edit_config, example, project
from tests.infra import runtime_server

NAMES = ["age", "income", "city"]
NEW = [{"city": "Lyon", "age": 31, "income": 52000.0}, {"income": 18000, "age": 70, "city": "Tokyo"}]  # any order;
# Tokyo was never seen: the one-hot encoder ignores it


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/tabular-mixed`` built and packaged once."""
    folder = example("tabular-mixed", tmp_path_factory.mktemp("mixed"))
    package(project(folder))
    return folder


def _result(folder: Path):
    return package(project(folder))  # cached after the fixture: instant


def _pipeline(folder: Path):
    return pickle.loads((folder / "model.pkl").read_bytes())  # noqa: S301 - written by this test's example


def _records(folder: Path) -> list[dict]:
    return json.loads((folder / "sample.json").read_text())["inputs"]


# -- package ------------------------------------------------------------------------------------------------------

def test_model_json_records_the_columns_their_types_and_the_onnx_graph(mixed: Path) -> None:
    import onnxruntime as ort

    res = _result(mixed)
    doc = json.loads((res.dir / "model.json").read_text())
    assert doc["dataframe"] is True and doc["format"] == "onnx" and doc["source_format"] == "pickle"
    assert doc["file"] == "model.onnx" and not (res.dir / "model.pkl").exists()
    assert doc["feature_names"] == NAMES and doc["feature_names_source"] == "model"
    assert [(t["name"], t["dtype"], t["shape"]) for t in doc["inputs"]] == [  # the contract: the DataFrame's
        ("age", "float64", [None]), ("income", "float64", [None]), ("city", "string", [None])]
    assert [r.split("==")[0] for r in doc["requirements"]] == ["onnxruntime"]  # no pandas, no scikit-learn
    parity = doc["parity"]
    assert parity["passed"] and parity["max_abs_error"] < 1e-5 and parity["argmax_agreement"] == 1.0
    assert parity["single_row_ms"] > 0  # timed on the graph, fed as the server feeds it
    graph = ort.InferenceSession(str(res.dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in graph.get_inputs()] == [  # one typed [N, 1] input per column
        ("age", "tensor(float)", [None, 1]), ("income", "tensor(float)", [None, 1]), ("city", "tensor(string)",
                                                                                       [None, 1])]
    first = _records(mixed)[0]
    assert {n: doc["sample_input"][n][0] for n in NAMES} == first and isinstance(first["city"], str)
    assert features_text(res.manifest) == "age, income, city  (from the model; one ONNX input per column)"


def test_convert_none_keeps_the_pickle_with_pandas(mixed: Path, tmp_path: Path) -> None:
    folder = example("tabular-mixed", tmp_path / "p")
    edit_config(folder, convert="none")
    m = package(project(folder)).manifest
    assert m.format == "pickle" and m.dataframe and m.parity is None
    assert [t.model_dump() for t in m.inputs] == [t.model_dump() for t in _result(mixed).manifest.inputs]  # same
    assert {"pandas", "scikit-learn"} <= {r.split("==")[0] for r in m.requirements}
    assert features_text(m) == "age, income, city  (from the model; passed as a pandas DataFrame)"


def test_the_package_summary_prints_the_feature_names_and_their_source(mixed: Path) -> None:
    run = cli("-f", str(mixed / "mldeploy.yaml"), "package", "--force")  # not cached: the notes are printed too
    assert run.returncode == 0, run.stderr
    assert re.search(r"features +age, income, city  \(from the model; one ONNX input per column\)", run.stderr)
    assert re.search(r"format +pickle → onnx", run.stderr) and "onnxruntime==" in run.stderr
    assert "pandas" not in run.stderr and "warning" not in run.stderr  # nothing fell back
    doc = json.loads(cli("-f", str(mixed / "mldeploy.yaml"), "package", "--json").stdout)
    assert doc["feature_names"] == NAMES and doc["feature_names_source"] == "model" and doc["dataframe"] is True
    assert doc["format"] == "onnx"


def test_a_plain_numeric_pipeline_is_unchanged(tmp_path: Path) -> None:
    """Fitted on a DataFrame but no columns picked by name, no strings: ONNX as before, no pandas requirement."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    x = pd.DataFrame(iris.data, columns=["a", "b", "c", "d"])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(make_pipeline(StandardScaler(), LogisticRegression(
        max_iter=500)).fit(x, iris.target)))
    (tmp_path / "mldeploy.yaml").write_text("name: plain\nmodel:\n  path: model.pkl\n")
    m = package(project(tmp_path)).manifest
    assert m.format == "onnx" and not m.dataframe and m.feature_names == ["a", "b", "c", "d"]
    assert [(t.dtype, t.shape) for t in m.inputs] == [("float32", [None, 4])]
    assert not any(r.startswith("pandas") for r in m.requirements)
    assert features_text(m) == "a, b, c, d  (from the model)"
    (tmp_path / "mldeploy.yaml").write_text("name: plain\nmodel:\n  path: model.pkl\n  convert: none\n")
    m = package(project(tmp_path)).manifest
    assert m.format == "pickle" and not m.dataframe and not any(r.startswith("pandas") for r in m.requirements)
    (tmp_path / "mldeploy.yaml").write_text("name: plain\nmodel:\n  path: model.pkl\n  feature_names: [p, q, r, s]\n")
    m = package(project(tmp_path)).manifest
    assert m.feature_names_source == "config" and features_text(m) == "p, q, r, s  (from model.feature_names)"


def test_what_package_refuses_for_a_dataframe_model(mixed: Path, tmp_path: Path) -> None:
    folder = example("tabular-mixed", tmp_path / "p")
    edit_config(folder, convert="onnx")  # converts (tests/test_records_onnx.py: one that cannot is refused)
    assert package(project(folder)).manifest.format == "onnx"
    edit_config(folder, convert="auto", feature_names=["a", "b", "c"])
    with pytest.raises(ArtifactError, match=r"not the DataFrame columns the model was fitted on and selects by "
                                            r"name: \['age', 'income', 'city'\]"):
        package(project(folder))
    edit_config(folder, feature_names=None, sample_input=None)  # a string column but nothing to learn it from
    with pytest.raises(ArtifactError, match=r"string columns \['city'\]: mldeploy needs example rows"):
        package(project(folder))


def test_which_models_need_a_dataframe() -> None:
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def ct(cols):
        return make_pipeline(ColumnTransformer([("n", StandardScaler(), cols)]))

    assert sklearn_frame.selects_by_name(ct(["age", "income"])) and sklearn_frame.selects_by_name(ct("age"))
    assert sklearn_frame.selects_by_name(ct(make_column_selector(dtype_include="number")))
    assert not sklearn_frame.selects_by_name(ct([0, 1])) and not sklearn_frame.selects_by_name(StandardScaler())
    x = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    fitted = ColumnTransformer([("n", StandardScaler(), [0]), ("c", OneHotEncoder(), [1])]).fit(x)  # by position
    assert not sklearn_frame.selects_by_name(fitted)
    by_name = ColumnTransformer([("n", StandardScaler(), ["n"]), ("c", OneHotEncoder(), ["c"])]).fit(x)
    with pytest.raises(ArtifactError, match=r"string columns \['c'\]"):  # from the encoder's categories_, no sample
        sklearn_frame.column_inputs(by_name, ["n", "c"], None)


# -- the runtime ----------------------------------------------------------------------------------------------------

def _spec(mixed: Path) -> InputSpec:
    return InputSpec(Manifest.load(_result(mixed).dir))


def test_mixed_records_decode_to_typed_columns_and_a_dataframe(mixed: Path) -> None:
    spec = _spec(mixed)
    cols = parse_json(json.dumps({"inputs": NEW}).encode(), spec)
    assert cols["age"].dtype == np.float64 and cols["age"].tolist() == [31.0, 70.0]
    assert cols["city"].dtype == object and cols["city"].tolist() == ["Lyon", "Tokyo"]
    frame = to_frame(cols, spec.tensors)
    assert list(frame.columns) == NAMES and frame["income"].dtype == np.float64
    assert frame["city"].tolist() == ["Lyon", "Tokyo"] and not pd.api.types.is_numeric_dtype(frame["city"])


@pytest.mark.parametrize(("record", "loc", "msg"), [
    ({"age": "thirty", "income": 1.0, "city": "Lyon"}, ["inputs", 1, "age"],
     "record 1: field 'age' must be a number (float64) or null, got a string"),  # null: the imputer fills it
    ({"age": 30, "income": 1.0, "city": None}, ["inputs", 1, "city"],  # no imputer on city (test_records_missing)
     "record 1: field 'city' is null, but this model has no imputer for it and cannot take a missing value there: "
     "send a string"),
    ({"age": 30, "income": 1.0, "city": 75}, ["inputs", 1, "city"],
     "record 1: field 'city' must be a string, got a number"),
])
def test_a_value_of_the_wrong_type_names_the_record_and_field(mixed: Path, record: dict, loc: list, msg: str) -> None:
    with pytest.raises(InputError) as e:
        parse_json(json.dumps({"inputs": [NEW[0], record]}).encode(), _spec(mixed))
    assert e.value.detail() == [{"loc": loc, "msg": msg, "type": "value_error"}]


def test_openapi_types_string_fields_and_shows_a_mixed_example(mixed: Path) -> None:
    body = request_body(Manifest.load(_result(mixed).dir))["content"]["application/json"]
    records = next(s for s in body["schema"]["properties"]["inputs"]["oneOf"] if s["title"] == "records")
    props = records["items"]["properties"]
    assert props == {"age": {"type": ["number", "null"]}, "income": {"type": ["number", "null"]},  # imputed
                     "city": {"type": "string"}}
    assert records["items"]["example"] == _records(mixed)[0]
    assert body["example"] == {"inputs": _records(mixed)[:2]}


def without_pandas_and_sklearn(folder: Path) -> dict[str, str]:
    """A server environment in which ``import pandas`` / ``import sklearn`` fail (as in an image without them)."""
    for name in ("pandas", "sklearn"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is not in this image')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.mark.parametrize("convert", ["auto", "none"])  # ONNX (no pandas, no scikit-learn), the pickle
def test_served_records_answer_like_the_pipeline_on_a_dataframe(mixed: Path, tmp_path: Path, convert: str) -> None:
    folder = mixed
    if convert == "none":
        folder = example("tabular-mixed", tmp_path / "p")
        edit_config(folder, convert="none")
    res = package(project(folder))
    assert res.manifest.format == ("onnx" if convert == "auto" else "pickle")
    env = without_pandas_and_sklearn(tmp_path / "blocked") if convert == "auto" else None
    records = _records(mixed) + NEW
    pipe = _pipeline(mixed)
    want = pipe.predict_proba(pd.DataFrame(records)[NAMES])
    labels = ["declined", "approved"]
    with runtime_server(tmp_path, res.dir, env=env) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        got = client.post("/predict", json={"inputs": records})
        assert got.status_code == 200, got.text
        assert np.allclose(got.json()["probabilities"], want, atol=1e-6)
        assert got.json()["predictions"] == [labels[i] for i in want.argmax(axis=1)]
        columns = client.post("/predict", json={"inputs": {n: [r[n] for r in NEW] for n in NAMES}})
        assert columns.status_code == 200 and columns.json()["probabilities"] == got.json()["probabilities"][-2:]
        bad = client.post("/predict", json={"inputs": [NEW[0], {**NEW[1], "income": "a lot"}]})
        assert bad.status_code == 422
        assert bad.json()["detail"] == [{"loc": ["inputs", 1, "income"], "type": "value_error",
                                         "msg": "record 1: field 'income' must be a number (float64) or null, "
                                                "got a string"}]
        rows = client.post("/predict", json={"inputs": [[31, 52000.0, "Lyon"]]})
        assert rows.status_code == 422 and "or records (one object per row)" in rows.json()["detail"][0]["msg"]
        schema = json.dumps(client.get("/openapi.json").json())
    assert '"city": {"type": "string"}' in schema and '"income": {"type": ["number", "null"]}' in schema


def test_to_frame_orders_and_types_the_columns() -> None:
    cols = [Tensor(name="b", dtype="float64", shape=[None]), Tensor(name="a", dtype="string", shape=[None, 1])]
    frame = to_frame({"a": np.asarray([["x"], ["y"]], dtype=object), "b": np.asarray([1, 2])}, cols)
    assert list(frame.columns) == ["b", "a"] and frame["b"].dtype == np.float64 and frame["a"].tolist() == ["x", "y"]
