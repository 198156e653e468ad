"""Records without surprises: feature names come from the model (``feature_names_in_``, ONNX input names or
metadata, the MLmodel signature, booster names) or the sample's keys; ``package`` refuses a ``model.feature_names``
of the wrong length or order; records decode by name (any key order) and a 422 names the expected, missing and
unexpected fields; OpenAPI shows the record object. Unit tests, ``package`` on real models, the real HTTP server."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from mldeploy.artifacts import package
from mldeploy.artifacts.features import FeatureNamesError, resolve
from mldeploy.errors import ConfigError
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.manifest import Manifest, Tensor
from runtime.openapi import record_schema, request_body
from tests.artifact_helpers import cli, project
from tests.infra import runtime_server

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _manifest(**kw) -> Manifest:
    base = dict(name="m", version="1.0.0", format="onnx", source_format="onnx", file="m.onnx", sha256="0",
                size_bytes=1, created_at="now", inputs=[Tensor(name="input", shape=[None, 4])],
                outputs=[Tensor(name="y", role="prediction")], feature_names=IRIS)
    return Manifest(**(base | kw))


def _records(rows: list[list[float]], names: list[str] = IRIS, reverse: bool = True) -> list[dict[str, float]]:
    order = names[::-1] if reverse else names
    return [{n: row[names.index(n)] for n in order} for row in rows]


def _detail(body: dict) -> dict:
    return parse_error(lambda: parse_json(json.dumps(body).encode(), InputSpec(_manifest())))


def parse_error(fn) -> dict:
    with pytest.raises(InputError) as e:
        fn()
    (detail,) = e.value.detail()
    return detail


# -- the runtime: decoding records ---------------------------------------------------------------------------------

def test_records_in_any_key_order_decode_like_rows() -> None:
    spec = InputSpec(_manifest())
    rows = parse_json(json.dumps({"inputs": ROWS}).encode(), spec)["input"]
    recs = parse_json(json.dumps({"inputs": _records(ROWS)}).encode(), spec)["input"]
    mixed = [_records(ROWS[:1])[0], _records(ROWS[1:2], reverse=False)[0], _records(ROWS[2:])[0]]
    assert recs.dtype == np.float32 and np.array_equal(rows, recs)
    assert np.array_equal(parse_json(json.dumps({"instances": mixed}).encode(), spec)["input"], rows)
    one = InputSpec(_manifest(inputs=[Tensor(name="input", shape=[None, 1])], feature_names=["only"]))
    assert parse_json(b'{"inputs": [{"only": 2}, {"only": 3}]}', one)["input"].tolist() == [[2.0], [3.0]]


def test_a_bad_record_is_refused_naming_expected_missing_and_unexpected_fields() -> None:
    missing = _detail({"inputs": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3}]})
    assert missing["loc"] == ["inputs", 0, "petal_width"]
    assert missing["msg"] == f"record 0: missing fields ['petal_width']; expected {IRIS}"
    extra = _detail({"inputs": [_records(ROWS[:1])[0], {**_records(ROWS[:1])[0], "colour": 1}]})
    assert extra["loc"] == ["inputs", 1, "colour"]
    assert extra["msg"] == f"record 1: unexpected fields ['colour']; expected {IRIS}"
    both = _detail({"inputs": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_widht": 4}]})
    assert both["msg"] == (f"record 0: missing fields ['petal_width']; unexpected fields ['petal_widht']; "
                           f"expected {IRIS}")
    not_object = _detail({"inputs": [_records(ROWS[:1])[0], [1, 2, 3, 4]]})
    assert not_object["loc"] == ["inputs", 1] and "record 1: expected an object with the fields" in not_object["msg"]
    spec = InputSpec(_manifest(feature_names=None))
    no_names = parse_error(lambda: parse_json(json.dumps({"inputs": _records(ROWS)}).encode(), spec))
    assert "no feature_names in model.json" in no_names["msg"] and "model.feature_names" in no_names["msg"]


def test_records_for_a_model_with_one_input_per_feature() -> None:
    m = _manifest(inputs=[Tensor(name="age", dtype="int64", shape=[None, 1]), Tensor(name="income", shape=[None, 1]),
                          Tensor(name="score", shape=[None])], feature_names=["age", "income", "score"])
    out = parse_json(b'{"inputs": [{"score": 0.5, "income": 10.5, "age": 30}, {"age": 41, "score": 1, '
                     b'"income": 2}]}', InputSpec(m))
    assert out["age"].dtype == np.int64 and out["age"].tolist() == [[30], [41]]
    assert out["income"].tolist() == [[10.5], [2.0]] and out["score"].tolist() == [0.5, 1.0]
    bad = parse_error(lambda: parse_json(b'{"inputs": [{"age": 1.5, "income": 1, "score": 1}]}', InputSpec(m)))
    assert bad["loc"] == ["inputs", "age"] and "integers" in bad["msg"]
    schema = record_schema(m)
    assert schema["properties"] == {"age": {"type": "integer"}, "income": {"type": "number"},
                                    "score": {"type": "number"}}
    assert schema["required"] == ["age", "income", "score"] and schema["additionalProperties"] is False


def test_openapi_shows_the_record_object() -> None:
    m = _manifest(sample_input={"input": ROWS})
    one_of = request_body(m)["content"]["application/json"]["schema"]["properties"]["inputs"]["oneOf"]
    (records,) = [s for s in one_of if s["title"] == "records"]
    item = records["items"]
    assert item["type"] == "object" and list(item["properties"]) == IRIS and item["required"] == IRIS
    assert item["additionalProperties"] is False and item["example"] == dict(zip(IRIS, ROWS[0], strict=True))
    image = _manifest(inputs=[Tensor(name="x", shape=[None, 3, 8, 8])], feature_names=["a"])
    assert record_schema(image) is None and record_schema(_manifest(feature_names=None)) is None


# -- package: which names, and the checks -------------------------------------------------------------------------

def _t(*shape: int | None, name: str = "input") -> Tensor:
    return Tensor(name=name, shape=[None, *shape])


def test_names_come_from_the_config_then_the_model_then_the_sample() -> None:
    assert resolve([_t(4)], IRIS, ["a", "b", "c", "d"], None).source == "config"
    own = resolve([_t(4)], None, IRIS, ["x", "y", "z", "w"])
    assert (own.names, own.source) == (IRIS, "model")
    assert resolve([_t(4)], None, None, IRIS).names == IRIS
    assert resolve([_t(4)], None, None, None).names is None
    assert resolve([_t(3)], None, IRIS, None).names is None  # the model's names do not fit the signature: unused
    renamed = resolve([_t(2)], ["height", "width"], ["h", "w"], None)
    assert renamed.names == ["height", "width"] and "renames the model's own features" in renamed.notes[0]


def test_a_names_list_of_the_wrong_length_or_order_is_refused() -> None:
    with pytest.raises(FeatureNamesError) as e:
        resolve([_t(4)], IRIS[:3], None, None)
    assert e.value.field == "model.feature_names"
    assert "3 names given but the model has 4 features (input 'input' of shape [N, 4])" in e.value.message
    with pytest.raises(FeatureNamesError, match=r"'sepal_width' is name 1 here but feature 2 of the model") as e:
        resolve([_t(4)], [IRIS[1], IRIS[0], *IRIS[2:]], IRIS, None)
    assert "wrong columns" in e.value.message
    with pytest.raises(FeatureNamesError, match=r"unique; \['a'\] appear more than once"):
        resolve([_t(2)], ["a", "a"], None, None)
    with pytest.raises(FeatureNamesError, match="tabular models only"):
        resolve([_t(3, 8, 8, name="image")], ["a"], None, None)
    with pytest.raises(FeatureNamesError) as e:
        resolve([_t(4)], None, None, ["a", "b"])
    assert e.value.field == "model.sample_input" and "2 fields" in e.value.message


def _write_project(folder: Path, model_file: str, **model: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "rec", "model": {"path": model_file, **model}}
    (folder / "mldeploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def frame_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StandardScaler + LogisticRegression pipeline fitted on a pandas DataFrame (iris, named columns)."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    x = pd.DataFrame(iris.data, columns=IRIS)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, iris.target)
    folder = tmp_path_factory.mktemp("frame")
    (folder / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
    return folder


def test_a_dataframe_fit_pipeline_records_its_names_without_config(frame_pipeline: Path) -> None:
    proj = _write_project(frame_pipeline, "model.pkl", class_labels=["setosa", "versicolor", "virginica"])
    res = package(project(proj))
    assert res.manifest.feature_names == IRIS and res.manifest.format == "onnx"
    assert json.loads((res.dir / "model.json").read_text())["feature_names"] == IRIS


def test_sample_records_are_ordered_by_the_models_names(frame_pipeline: Path, tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "model.pkl").write_bytes((frame_pipeline / "model.pkl").read_bytes())
    (proj / "sample.json").write_text(json.dumps({"inputs": _records(ROWS)}))  # keys in reverse order
    _write_project(proj, "model.pkl", sample_input="sample.json")
    m = package(project(proj)).manifest
    assert m.feature_names == IRIS and m.sample_input == {"input": ROWS}
    (proj / "sample.json").write_text(json.dumps([{**r, "colour": 1} for r in _records(ROWS)]))
    with pytest.raises(Exception, match=r"record 0 has unexpected fields \['colour'\]; the model's features are"):
        package(project(proj))


def test_sample_keys_name_a_model_without_names(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    iris = load_iris()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(DecisionTreeClassifier(max_depth=3).fit(iris.data,
                                                                                               iris.target)))
    cols = ["a", "b", "c", "d"]
    (tmp_path / "sample.json").write_text(json.dumps({c: [r[i] for r in ROWS] for i, c in enumerate(cols)}))
    _write_project(tmp_path, "model.pkl", sample_input="sample.json")
    m = package(project(tmp_path)).manifest
    assert m.feature_names == cols and m.sample_input == {"input": ROWS}


def test_package_refuses_a_names_list_of_another_length(frame_pipeline: Path, tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "model.pkl").write_bytes((frame_pipeline / "model.pkl").read_bytes())
    _write_project(proj, "model.pkl", feature_names=IRIS[:3])
    with pytest.raises(ConfigError, match=r"model\.feature_names: 3 names given but the model has 4 features"):
        package(project(proj))
    r = cli("-f", str(proj / "mldeploy.yaml"), "package")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "model.feature_names: 3 names given but the model has 4 features" in " ".join((r.stdout + r.stderr)
                                                                                        .split())
    _write_project(proj, "model.pkl", feature_names=[IRIS[1], IRIS[0], *IRIS[2:]])
    with pytest.raises(ConfigError, match="records would feed values to the wrong columns"):
        package(project(proj))


def _onnx_per_feature(path: Path, names: list[str], weights: list[float]) -> None:
    """y = Σ wᵢ·xᵢ over inputs named like the features, each [N, 1] (a graph with one input per column)."""
    from onnx import TensorProto, helper, save

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1]) for n in names]
    w = helper.make_tensor("w", TensorProto.FLOAT, [len(names), 1], weights)
    nodes = [helper.make_node("Concat", names, ["x"], axis=1), helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "per_feature", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], [w])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnx_named_inputs_and_metadata_become_the_names(tmp_path: Path) -> None:
    import onnx

    names = ["age", "income", "score"]
    _onnx_per_feature(tmp_path / "model.onnx", names, [1.0, 10.0, 100.0])
    m = package(project(_write_project(tmp_path, "model.onnx"))).manifest
    assert m.feature_names == names and [t.name for t in m.inputs] == names
    from onnx import TensorProto, helper

    single = tmp_path / "single"  # one [N, 4] input whose metadata names the columns
    single.mkdir()
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 1], [1.0, 2.0, 3.0, 4.0])
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"])], "g", [x], [y],
                                                [w]), opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"feature_names": json.dumps(IRIS)})
    onnx.save(model, str(single / "model.onnx"))
    assert package(project(_write_project(single, "model.onnx"))).manifest.feature_names == IRIS
    helper.set_model_props(model, {"feature_names": "a, b"})  # does not fit the input: ignored, with a note
    onnx.save(model, str(single / "model.onnx"))
    res = package(project(single))
    assert res.manifest.feature_names is None and any("feature_names lists 2 names" in n for n in res.notes)


def test_mlmodel_signature_names_and_the_config_override(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(iris.data, iris.target)))
    cols = ["sl", "sw", "pl", "pw"]
    doc = {"flavors": {"python_function": {"loader_module": "mlflow.sklearn"},
                       "sklearn": {"pickled_model": "model.pkl", "serialization_format": "pickle"}},
           "signature": {"inputs": json.dumps([{"type": "double", "name": c} for c in cols]), "outputs": None}}
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))
    assert package(project(_write_project(tmp_path, "model", format="mlflow"))).manifest.feature_names == cols
    _write_project(tmp_path, "model", format="mlflow", feature_names=IRIS)
    res = package(project(tmp_path))
    assert res.manifest.feature_names == IRIS and any("renames" in n for n in res.notes)
    _write_project(tmp_path, "model", format="mlflow", feature_names=IRIS[:2])
    with pytest.raises(ConfigError, match="2 names given but the model has 4 features"):
        package(project(tmp_path))


@pytest.mark.parametrize("library", ["xgboost", "lightgbm", "catboost"])
def test_booster_names_unless_the_librarys_defaults(library: str, tmp_path: Path) -> None:
    """Trained on a DataFrame: its column names; on an array: None (not f0…, Column_0…, 0…)."""
    import pandas as pd
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = ["s_len", "s_wid", "p_len", "p_wid"]
    for frame, want in ((True, names), (False, None)):
        x = pd.DataFrame(iris.data, columns=names) if frame else iris.data
        if library == "xgboost":
            import xgboost

            path = tmp_path / f"m{frame}.ubj"
            xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(x, iris.target).get_booster().save_model(path)
        elif library == "lightgbm":
            import lightgbm

            path = tmp_path / f"m{frame}.lgb.txt"
            lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, iris.target).booster_.save_model(path)
        else:
            import catboost

            path = tmp_path / f"m{frame}.cbm"
            catboost.CatBoostClassifier(iterations=3, verbose=0, allow_writing_files=False).fit(
                x, iris.target).save_model(str(path))
        m = package(project(_write_project(tmp_path, path.name, format=library)), tmp_path / f"out{frame}").manifest
        assert m.feature_names == want, (library, frame)


# -- the real HTTP server -----------------------------------------------------------------------------------------

def test_served_records_match_rows_and_a_bad_record_is_a_422(frame_pipeline: Path, tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "model.pkl").write_bytes((frame_pipeline / "model.pkl").read_bytes())
    _write_project(proj, "model.pkl", class_labels=["setosa", "versicolor", "virginica"])
    res = package(project(proj))
    with runtime_server(tmp_path, res.dir) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        rows = client.post("/predict", json={"inputs": ROWS})
        recs = client.post("/predict", json={"inputs": _records(ROWS)})
        assert rows.status_code == recs.status_code == 200, recs.text
        assert recs.json()["predictions"] == rows.json()["predictions"] == ["setosa", "virginica", "versicolor"]
        assert recs.json()["probabilities"] == rows.json()["probabilities"]
        bad = client.post("/predict", json={"inputs": [{k: v for k, v in r.items() if k != "petal_width"}
                                                       for r in _records(ROWS)]})
        assert bad.status_code == 422
        assert bad.json()["detail"] == [{"loc": ["inputs", 0, "petal_width"], "type": "value_error",
                                         "msg": f"record 0: missing fields ['petal_width']; expected {IRIS}"}]
        extra = client.post("/predict", json={"inputs": [{**_records(ROWS)[0], "colour": "red"}]})
        assert extra.status_code == 422 and "unexpected fields ['colour']" in extra.json()["detail"][0]["msg"]
        schema = client.get("/openapi.json").json()
    bodies = json.dumps(schema)
    assert '"additionalProperties": false' in bodies and all(f'"{n}": {{"type": "number"}}' in bodies for n in IRIS)


def test_served_onnx_with_one_input_per_feature(tmp_path: Path) -> None:
    names = ["age", "income", "score"]
    _onnx_per_feature(tmp_path / "model.onnx", names, [1.0, 10.0, 100.0])
    res = package(project(_write_project(tmp_path, "model.onnx")))
    with runtime_server(tmp_path, res.dir) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        r = client.post("/predict", json={"inputs": [{"score": 3, "age": 1, "income": 2}, {"income": 0, "score": 0,
                                                                                           "age": 5}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [[321.0], [5.0]]  # 1·age + 10·income + 100·score, by name
        bad = client.post("/predict", json={"inputs": [{"age": 1, "income": 2}]})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["msg"] == f"record 0: missing fields ['score']; expected {names}"
