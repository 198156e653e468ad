"""pandas ``category`` columns (``sklearn_frame.category_columns``): a HistGradientBoosting model fitted with
``categorical_features="from_dtype"``, and a ``make_column_selector(dtype_include="category")`` pipeline.

``package`` finds them from the fitted model (no sample needed: the parity rows are drawn from the categories),
types them ``string`` with the learned ``categories`` in model.json, and refuses a sample value outside them.
The server lists them as the field's ``enum`` in OpenAPI, refuses any other value with a 422 naming the field and
the categories (with a null in the same column too), and serves them: the pickle gets a ``pandas.Categorical`` of
those categories, the ONNX graph (where skl2onnx converts the pipeline) the strings.
"""

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
from mldeploy.errors import ArtifactError
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.loaders.sklearn import to_frame
from runtime.manifest import Manifest
from runtime.openapi import request_body
from tests.artifact_helpers import cli, project
from tests.infra import runtime_server
from tests.test_records_mixed import without_pandas_and_sklearn

COLORS = ["blue", "green", "red"]
REFUSED = "field 'color': 'purple' is not one of the categories the model was trained on: ['blue', 'green', 'red']"


def _frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"size": rng.normal(size=rows), "color": pd.Categorical(rng.choice(["red", "green", "blue"],
                                                                                        rows))})
    return x, ((x["size"] > 0) ^ (x["color"] == "red")).to_numpy().astype(int)


def _hgb():
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")


def _selector():
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_pipeline(ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="category")),
        ("num", StandardScaler(), ["size"])]), LogisticRegression())


def _write(folder: Path, model, sample: list[dict] | None = None) -> Path:
    x, y = _frame()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(model.fit(x, y)))
    cfg = "name: colors\nmodel:\n  path: model.pkl\n"
    if sample is not None:
        (folder / "sample.json").write_text(json.dumps({"inputs": sample}))
        cfg += "  sample_input: sample.json\n"
    (folder / "mldeploy.yaml").write_text(cfg)
    return folder


@pytest.fixture(scope="module")
def hgb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HistGradientBoosting model packaged without a sample."""
    folder = _write(tmp_path_factory.mktemp("hgb"), _hgb())
    package(project(folder))
    return folder


def _manifest(folder: Path) -> Manifest:
    return package(project(folder)).manifest  # cached after the first call


def _records() -> list[dict]:
    return [{"size": 0.4, "color": "red"}, {"size": -1.2, "color": "blue"}, {"size": 0.1, "color": "green"}]


# -- package -----------------------------------------------------------------------------------------------------------

def test_a_from_dtype_model_types_its_category_column_from_the_model(hgb: Path) -> None:
    res = package(project(hgb), force=True)  # not cached: the notes too
    doc = json.loads((res.dir / "model.json").read_text())
    assert doc["dataframe"] is True and doc["feature_names"] == ["size", "color"]
    assert [(t["name"], t["dtype"], t["categories"], t["allow_missing"]) for t in doc["inputs"]] == [
        ("size", "float64", None, True), ("color", "string", COLORS, True)]  # HistGradientBoosting takes NaN
    assert doc["format"] == "pickle" and "pandas" in {r.split("==")[0] for r in doc["requirements"]}
    assert any("conversion pickle → onnx failed" in n for n in res.notes)  # skl2onnx: one input per HGB only
    run = cli("-f", str(hgb / "mldeploy.yaml"), "package")
    assert run.returncode == 0 and re.search(r"input +color: string\[N\]  categories blue, green, red", run.stderr)


def test_which_columns_are_category_columns() -> None:
    x, y = _frame()
    assert sklearn_frame.category_columns(_hgb().fit(x, y), ["size", "color"]) == {"color": COLORS}
    assert sklearn_frame.category_columns(_selector().fit(x, y), ["size", "color"]) == {"color": COLORS}
    plain = x.assign(color=x["color"].astype(str))  # strings, not a category dtype: not a category column
    assert sklearn_frame.category_columns(_hgb().fit(plain.assign(color=plain["color"].map(
        {c: i for i, c in enumerate(COLORS)})), y), ["size", "color"]) == {}
    numbers = x.assign(color=pd.Categorical(x["color"].cat.codes))  # categories 0, 1, 2: served as numbers
    assert sklearn_frame.category_columns(_hgb().fit(numbers, y), ["size", "color"]) == {}


def test_a_sample_value_outside_the_categories_is_refused(tmp_path: Path) -> None:
    folder = _write(tmp_path, _hgb(), sample=[{"size": 1.0, "color": "red"}, {"size": 2.0, "color": "purple"}])
    with pytest.raises(ArtifactError, match=r"model.sample_input: column 'color' holds 'purple', which is not one "
                                            r"of the categories the model was trained on \['blue', 'green', 'red'\]"):
        package(project(folder))


def test_a_convertible_category_pipeline_is_served_as_onnx_with_its_categories(tmp_path: Path) -> None:
    res = package(project(_write(tmp_path, _selector(), sample=_records())))
    m = res.manifest
    assert m.format == "onnx" and m.dataframe and m.parity is not None and m.parity.passed
    assert [(t.name, t.dtype, t.categories) for t in m.inputs] == [("size", "float64", None),
                                                                   ("color", "string", COLORS)]
    assert [r.split("==")[0] for r in m.requirements] == ["onnxruntime"]


# -- the runtime ----------------------------------------------------------------------------------------------------

def test_an_unknown_category_is_refused_naming_the_field_and_the_categories(hgb: Path) -> None:
    spec = InputSpec(_manifest(hgb))
    cols = parse_json(json.dumps({"inputs": _records()}).encode(), spec)
    assert cols["color"].tolist() == ["red", "blue", "green"]
    for body, loc in [({"inputs": [_records()[0], {"size": 1.0, "color": "purple"}]}, ["inputs", "color", 1]),
                      ({"inputs": [{"size": 1.0, "color": None}, {"size": 1.0, "color": "purple"}]},  # with a null
                       ["inputs", "color", 1]),
                      ({"inputs": {"size": [1.0], "color": ["purple"]}}, ["inputs", "color", 0])]:  # columns
        with pytest.raises(InputError) as e:
            parse_json(json.dumps(body).encode(), spec)
        assert e.value.detail() == [{"loc": loc, "msg": REFUSED, "type": "value_error"}]
    with_null = parse_json(json.dumps({"inputs": [{"size": 1.0, "color": None}]}).encode(), spec)
    assert with_null["color"].tolist() == [None]


def test_openapi_lists_the_categories_as_the_fields_enum(hgb: Path) -> None:
    body = request_body(_manifest(hgb))["content"]["application/json"]
    records = next(s for s in body["schema"]["properties"]["inputs"]["oneOf"] if s["title"] == "records")
    assert records["items"]["properties"]["color"] == {"type": ["string", "null"], "enum": [*COLORS, None]}
    assert records["items"]["properties"]["size"] == {"type": ["number", "null"]}


def test_the_frame_holds_a_categorical_of_the_training_categories(hgb: Path) -> None:
    spec = InputSpec(_manifest(hgb))
    frame = to_frame(parse_json(json.dumps({"inputs": [{"size": 1.0, "color": "red"}, {"size": 2.0, "color": None}]})
                                .encode(), spec), spec.tensors)
    assert isinstance(frame["color"].dtype, pd.CategoricalDtype)
    assert frame["color"].cat.categories.tolist() == COLORS and frame["color"].isna().tolist() == [False, True]


@pytest.mark.parametrize("kind", ["hgb", "selector"])  # the pickle with pandas, the ONNX graph without it
def test_served_categories_answer_like_the_model_and_refuse_others(kind: str, hgb: Path, tmp_path: Path) -> None:
    folder = hgb if kind == "hgb" else _write(tmp_path / "p", _selector(), sample=_records())
    res = package(project(folder))
    model = pickle.loads((folder / "model.pkl").read_bytes())  # noqa: S301 - written by this test
    frame = pd.DataFrame(_records())
    frame["color"] = pd.Categorical(frame["color"], categories=COLORS)
    want = model.predict_proba(frame[list(model.feature_names_in_)])
    env = without_pandas_and_sklearn(tmp_path / "blocked") if res.manifest.format == "onnx" else None
    with runtime_server(tmp_path, res.dir, env=env) as proc, httpx.Client(base_url=proc.url, timeout=30) as client:
        got = client.post("/predict", json={"inputs": _records()})
        assert got.status_code == 200, got.text
        assert np.allclose(got.json()["probabilities"], want, atol=1e-6)
        bad = client.post("/predict", json={"inputs": [{"size": 1.0, "color": "purple"}]})
        schema = client.get("/openapi.json").text
    assert bad.status_code == 422 and bad.json()["detail"][0]["msg"] == REFUSED
    assert '"enum":["blue","green","red"' in schema  # in the served /openapi.json
    assert res.manifest.format == ("pickle" if kind == "hgb" else "onnx")
