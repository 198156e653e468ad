"""Missing values in DataFrame models, ``init`` for them, and the response schema.

``package`` records ``allow_missing`` per DataFrame column where an imputer (or a NaN-native estimator) takes a
missing value, and only after running the model on one; the real HTTP server then accepts JSON ``null`` there
(NaN, in a string column too) and answers like the pipeline on a DataFrame with NaN, and refuses it elsewhere
with a 422 naming the field. ``init`` on such a pickle writes ``model.sample_input`` (or a commented block with
the columns). The OpenAPI response schema validates what the server answers (iris, tabular-mixed).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.formats import sklearn_frame
from runtime.formatting import OutputFormatter
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.loaders.sklearn import to_frame
from runtime.manifest import Manifest, Tensor
from runtime.openapi import prediction_item, request_body, responses
from tests.artifact_helpers import cli, example, project
from tests.infra import runtime_server

NAMES = ["age", "income", "city"]
CITIES = ["Lyon", "Paris", "Nice"]


def _frame(rows: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.integers(18, 75, rows).astype(float), "income": rng.normal(40_000, 9_000, rows),
                      "city": rng.choice(CITIES, rows)})
    return x, ((x["income"] - 40_000) / 9_000 + (x["city"] == "Paris") > 0).to_numpy().astype(int)


def _imputed_everywhere():
    """Numbers: median imputer + scaler; the city: most-frequent imputer + one-hot; then a linear model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_pipeline(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         ["city"])]), LogisticRegression(max_iter=500))


def _write(folder: Path, model, name: str = "nulls") -> Path:
    x, y = _frame()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(model.fit(x, y)))
    (folder / "sample.json").write_text(json.dumps({"inputs": x.head(10).to_dict(orient="records")}))
    (folder / "mldeploy.yaml").write_text(f"name: {name}\nmodel:\n  path: model.pkl\n  sample_input: sample.json\n")
    return folder


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/tabular-mixed`` (an imputer on age and income, none on city), packaged once."""
    folder = example("tabular-mixed", tmp_path_factory.mktemp("mixed"))
    package(project(folder))
    return folder


def _manifest(folder: Path) -> Manifest:
    return package(project(folder)).manifest  # cached after the first call


def _allowed(m: Manifest) -> dict[str, bool]:
    return {t.name: t.allow_missing for t in m.inputs}


# -- package: what takes a missing value ---------------------------------------------------------------------------

def test_the_imputed_columns_allow_missing_and_the_others_do_not(mixed: Path) -> None:
    res = package(project(mixed))
    doc = json.loads((res.dir / "model.json").read_text())
    assert {t["name"]: t["allow_missing"] for t in doc["inputs"]} == {"age": True, "income": True, "city": False}
    records = next(s for s in request_body(res.manifest)["content"]["application/json"]["schema"]["properties"][
        "inputs"]["oneOf"] if s["title"] == "records")  # /docs says where null is accepted
    assert records["items"]["properties"] == {"age": {"type": ["number", "null"]},
                                              "income": {"type": ["number", "null"]}, "city": {"type": "string"}}


def test_a_nan_native_estimator_allows_missing_where_the_model_really_answers(tmp_path: Path) -> None:
    """HistGradientBoosting takes NaN in every column, but a strict one-hot encoder in front of it refuses a
    missing city: the probe run finds that, the claim is dropped with a note."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    model = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(sparse_output=False), ["city"])],
                                            remainder="passthrough"), HistGradientBoostingClassifier(max_iter=20))
    res = package(project(_write(tmp_path, model)))
    assert _allowed(res.manifest) == {"age": True, "income": True, "city": False}
    assert any("column 'city': HistGradientBoostingClassifier handles missing values, but the model failed on a "
               "missing value there" in n for n in res.notes)


def test_no_imputer_and_a_linear_model_allow_nothing(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
                          LogisticRegression(max_iter=500))
    assert _allowed(package(project(_write(tmp_path, model))).manifest) == dict.fromkeys(NAMES, False)


def test_missing_candidates_reads_imputers_dropped_columns_and_leading_imputers() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import KNNImputer, SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _frame()
    by_position = make_pipeline(ColumnTransformer([("n", make_pipeline(KNNImputer(), StandardScaler()), [0])],
                                                  remainder="drop"), LogisticRegression()).fit(x[["age", "income"]], y)
    assert sklearn_frame.missing_candidates(by_position, ["age", "income"]) == {
        "age": "KNNImputer on it", "income": "dropped by the ColumnTransformer"}
    leading = make_pipeline(SimpleImputer(), LogisticRegression()).fit(x[["age", "income"]], y)
    assert set(sklearn_frame.missing_candidates(leading, ["age", "income"])) == {"age", "income"}
    assert not sklearn_frame.native_nan(LogisticRegression()) and sklearn_frame.native_nan(leading) is False


# -- the runtime: decoding ------------------------------------------------------------------------------------------

def _spec(m: Manifest, allow: set[str]) -> InputSpec:
    return InputSpec(m.model_copy(update={"inputs": [t.model_copy(update={"allow_missing": t.name in allow})
                                                     for t in m.inputs]}))


def test_null_decodes_to_nan_where_allowed_and_is_refused_naming_the_field_elsewhere(mixed: Path) -> None:
    m = _manifest(mixed)
    spec = InputSpec(m)
    body = {"inputs": [{"age": None, "income": 52000.0, "city": "Lyon"}, {"age": 40, "income": None, "city": "Nice"}]}
    cols = parse_json(json.dumps(body).encode(), spec)
    assert np.isnan(cols["age"][0]) and cols["age"][1] == 40 and np.isnan(cols["income"][1])
    columns = parse_json(json.dumps({"inputs": {"age": [None], "income": [1.0], "city": ["Lyon"]}}).encode(), spec)
    assert np.isnan(columns["age"][0])
    with pytest.raises(InputError) as e:
        parse_json(json.dumps({"inputs": [{"age": 1, "income": 2.0, "city": None}]}).encode(), spec)
    assert e.value.detail()[0]["loc"] == ["inputs", 0, "city"]
    assert e.value.msg == ("record 0: field 'city' is null, but this model has no imputer for it and cannot take "
                           "a missing value there: send a string")
    with pytest.raises(InputError, match=r"inputs\.city\.0: is null, but this model has no imputer for this input"):
        parse_json(json.dumps({"inputs": {"age": [1], "income": [2.0], "city": [None]}}).encode(), spec)
    with pytest.raises(InputError, match="no null: this model takes no missing values"):
        parse_json(json.dumps({"inputs": {"age": [None], "income": [2.0], "city": ["Nice"]}}).encode(),
                   _spec(m, {"income"}))  # age refuses null now


def test_a_string_column_that_allows_missing_takes_null_and_the_frame_holds_nan(mixed: Path) -> None:
    spec = _spec(_manifest(mixed), {"city"})
    cols = parse_json(json.dumps({"inputs": [{"age": 1, "income": 2.0, "city": None},
                                             {"age": 1, "income": 2.0, "city": "Nice"}]}).encode(), spec)
    assert cols["city"].tolist() == [None, "Nice"]
    frame = to_frame(cols, spec.tensors)
    assert frame["city"].isna().tolist() == [True, False]  # NaN: what the imputers detect (None is not, alone)
    with pytest.raises(InputError) as e:
        parse_json(json.dumps({"inputs": [{"age": 1, "income": 2.0, "city": None},
                                          {"age": 1, "income": 2.0, "city": 7}]}).encode(), spec)
    assert e.value.detail()[0]["loc"] == ["inputs", 1, "city"] and "must be a string or null" in e.value.msg


def test_plain_float_arrays_are_checked_as_before() -> None:
    """The one-tensor fast path: NaN refused unless the input allows missing values, Infinity always."""
    base = dict(name="m", version="1", format="onnx", source_format="onnx", file="f", sha256="0", size_bytes=1,
                created_at="now", outputs=[Tensor(name="y")])
    strict = InputSpec(Manifest(**base, inputs=[Tensor(name="x", shape=[None, 2])]))
    loose = InputSpec(Manifest(**base, inputs=[Tensor(name="x", shape=[None, 2], allow_missing=True)]))
    arr = np.asarray([[1.0, np.nan]], dtype=np.float32)
    with pytest.raises(InputError, match="finite numbers"):
        strict.check("x", arr, ["inputs"])
    assert np.isnan(parse_json(b'{"inputs": [[1, null]]}', loose)["x"][0, 1])
    with pytest.raises(InputError, match="no Infinity"):
        loose.check("x", np.asarray([[1.0, np.inf]], dtype=np.float32), ["inputs"])


# -- the real HTTP server ---------------------------------------------------------------------------------------------

def test_served_nulls_answer_like_the_pipeline_on_a_dataframe_with_nan(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", _imputed_everywhere())
    res = package(project(folder))
    assert _allowed(res.manifest) == dict.fromkeys(NAMES, True)
    records = [{"age": None, "income": 52000.0, "city": "Lyon"}, {"age": 30.0, "income": None, "city": None},
               {"age": 61.0, "income": 30000.0, "city": "Paris"}]
    pipe = pickle.loads((folder / "model.pkl").read_bytes())  # noqa: S301 - written by this test
    frame = pd.DataFrame(records)[NAMES].astype({"age": float, "income": float})
    frame["city"] = frame["city"].astype(object).where(frame["city"].notna(), np.nan)
    want = pipe.predict_proba(frame)
    with runtime_server(tmp_path, res.dir) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        got = client.post("/predict", json={"inputs": records})
        assert got.status_code == 200, got.text
        assert np.allclose(got.json()["probabilities"], want, atol=1e-6)
        alone = client.post("/predict", json={"inputs": [{"age": 30.0, "income": 1.0, "city": None}]})  # all missing
        assert alone.status_code == 200, alone.text
        bad = client.post("/predict", json={"inputs": [{"age": 30.0, "income": 1.0, "city": 3}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["inputs", 0, "city"]


# -- the response schema -----------------------------------------------------------------------------------------

def _validate(doc: dict, schema: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("name", ["iris-sklearn", "tabular-mixed"])
def test_the_served_answer_validates_against_the_openapi_response_schema(name: str, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    folder = example(name, tmp_path / name)
    res = package(project(folder))
    with runtime_server(tmp_path, res.dir) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        post = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
        body = post["requestBody"]["content"]["application/json"]["example"]  # the example /docs shows
        answer = client.post("/predict", json=body)
    schema = post["responses"]["200"]
    assert answer.status_code == 200, answer.text
    schema = schema["content"]["application/json"]["schema"]
    assert schema["properties"]["predictions"]["items"] == {"type": "string", "enum": res.manifest.class_labels}
    _validate(answer.json(), schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema does say something: a class index is refused
        _validate({**answer.json(), "predictions": [0]}, schema)


def test_label_dtype_is_that_of_classes(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _frame()
    for i, (labels, dtype) in enumerate([(y, "int64"), (y.astype(float), "float64"),
                                          (np.asarray(["no", "yes"])[y], "string")]):
        folder = tmp_path / str(i)
        folder.mkdir()
        (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(x[["age", "income"]].to_numpy(),
                                                                                  labels)))
        (folder / "mldeploy.yaml").write_text("name: labels\nmodel:\n  path: model.pkl\n  convert: none\n")
        m = package(project(folder)).manifest
        assert next(o.dtype for o in m.outputs if o.role == "label") == dtype


@pytest.mark.parametrize(("outputs", "labels", "raw"), [
    ([Tensor(name="variable", shape=[None, 1], role="prediction")], None, {"variable": np.ones((2, 1), np.float32)}),
    ([Tensor(name="y", shape=[None])], None, {"y": np.ones(2, np.float32)}),
    ([Tensor(name="label", dtype="int64", role="label")], None, {"label": np.asarray([1, 0])}),
    ([Tensor(name="label", dtype="int64", role="label")], ["a", "b"], {"label": np.asarray([1, 0])}),
    ([Tensor(name="logits", shape=[None, 3], role="logits")], None, {"logits": np.eye(3, dtype=np.float32)[:2]}),
    ([Tensor(name="label", dtype="string", role="label"), Tensor(name="p", shape=[None, 2], role="probabilities")],
     ["no", "yes"], {"label": np.asarray(["yes", "no"], dtype=object), "p": np.asarray([[0.2, 0.8], [0.9, 0.1]])}),
])
def test_the_response_schema_matches_what_the_formatter_answers(outputs: list[Tensor], labels: list[str] | None,
                                                                raw: dict) -> None:
    m = Manifest(name="m", version="1", format="onnx", source_format="onnx", file="f", sha256="0", size_bytes=1,
                 created_at="now", inputs=[Tensor(name="x", shape=[None, 2])], outputs=outputs, class_labels=labels)
    fields, _ = OutputFormatter(m, top_k=2).format(raw)
    doc = json.loads(json.dumps({"request_id": "r", "model": "m", "version": "1", **fields},
                                default=lambda a: np.asarray(a).tolist()))
    _validate(doc, responses(m)["200"]["content"]["application/json"]["schema"])
    assert prediction_item(m) != {}


# -- init ------------------------------------------------------------------------------------------------------------

def test_init_on_a_dataframe_pickle_with_a_sample_packages_and_serves_unedited(mixed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    for f in ("model.pkl", "sample.json"):
        (folder / f).write_bytes((mixed / f).read_bytes())
    run = cli("init", "--model", "model.pkl", "--name", "loans", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "\n  sample_input: sample.json\n" in (folder / "mldeploy.yaml").read_text()
    assert "pandas DataFrame (columns age, income, city)" in " ".join(run.stderr.split()) + " ".join(
        run.stdout.split())
    res = package(project(folder))
    assert res.manifest.dataframe and [t.dtype for t in res.manifest.inputs] == ["float64", "float64", "string"]
    records = json.loads((folder / "sample.json").read_text())["inputs"][:2]
    with runtime_server(tmp_path, res.dir) as proc:
        got = httpx.post(proc.url + "/predict", json={"inputs": [{**records[0], "age": None}, records[1]]}, timeout=30)
    assert got.status_code == 200, got.text
    assert len(got.json()["predictions"]) == 2


def test_init_without_a_sample_lists_the_columns_and_says_why_one_is_needed(mixed: Path, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes((mixed / "model.pkl").read_bytes())
    run = cli("init", "--model", "model.pkl", "--name", "loans", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "mldeploy.yaml").read_text()
    assert "pandas DataFrame with the columns age, income, city" in text and "String columns (city)" in text
    assert '# sample_input: sample.json    # e.g. {"inputs": [{"age": …, "income": …, "city": …}]}' in text
    assert "\n  sample_input:" not in text
    assert "the string columns city need example records" in " ".join(run.stderr.split())


def test_init_loads_no_pickle_that_imports_other_code(tmp_path: Path) -> None:
    """A pickle with a ColumnTransformer and a class of the user's own module: init does not unpickle it (the
    module would run)."""
    import subprocess
    import sys

    from sklearn.compose import ColumnTransformer

    (tmp_path / "evil.py").write_text("from pathlib import Path\nPath(__file__).with_name('ran').touch()\n"
                                      "class Thing:\n    pass\n")
    code = ("import pickle, evil\nfrom sklearn.compose import ColumnTransformer\n"
            "open('model.pkl', 'wb').write(pickle.dumps({'ct': ColumnTransformer([]), 'x': evil.Thing()}))\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    (tmp_path / "ran").unlink()
    assert ColumnTransformer and sklearn_frame.init_columns(tmp_path / "model.pkl") is None
    assert not (tmp_path / "ran").exists()
