"""DataFrame pipelines converted to ONNX (``formats.sklearn_frame_onnx``, ``runtime.loaders.records_onnx``).

The conversion keeps the DataFrame contract (float64 / string ``[N]`` columns) and gives the graph one typed
``[N, 1]`` input per column; the server's ``Feed`` casts, adds the column axis and sends ``MISSING_TEXT`` for a
null string, which the converted string imputers replace. Where skl2onnx cannot convert the pipeline, the graph
disagrees with the pipeline on the sample, or it answers a missing value differently, ``convert: auto`` serves the
pickle and says why (``convert: onnx`` refuses, exit 4); each case is a real model that does it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.formats import sklearn_frame_onnx
from mldeploy.errors import ArtifactError
from runtime.loaders import load_model
from runtime.loaders.records_onnx import MISSING_TEXT, Feed, RecordsOnnxModel
from runtime.manifest import Manifest, Tensor
from tests.artifact_helpers import cli, project


def _write(folder: Path, model, x: pd.DataFrame, y: np.ndarray, convert: str = "auto") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(model.fit(x, y)))
    (folder / "sample.json").write_text(json.dumps({"inputs": x.head(16).to_dict(orient="records")}))
    (folder / "mldeploy.yaml").write_text(f"name: frames\nmodel:\n  path: model.pkl\n  sample_input: sample.json\n"
                                          f"  convert: {convert}\n")
    return folder


def _columns(*transformers):
    from sklearn.compose import ColumnTransformer

    return ColumnTransformer(list(transformers))


def _city_frame(rows: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"v": rng.normal(size=rows), "city": rng.choice(["Lyon", "Nice", "Paris"], rows)})
    return x, (x["v"] + (x["city"] == "Paris") > 0.3).to_numpy().astype(int)


def _unconvertible():
    """A FunctionTransformer of a function: skl2onnx converts only the identity."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    return make_pipeline(_columns(("v", FunctionTransformer(np.tanh), ["v"]), ("c", OneHotEncoder(), ["city"])),
                         LogisticRegression())


def test_what_skl2onnx_cannot_convert_is_served_as_the_pickle_saying_why(tmp_path: Path) -> None:
    x, y = _city_frame()
    res = package(project(_write(tmp_path / "a", _unconvertible(), x, y)))
    assert res.manifest.format == "pickle" and res.manifest.dataframe
    assert {"pandas", "scikit-learn"} <= {r.split("==")[0] for r in res.manifest.requirements}
    assert any(n.startswith("conversion pickle → onnx failed: RuntimeError: FunctionTransformer is not supported")
               and n.endswith("; serving pickle") for n in res.notes), res.notes
    assert any("served as pickle with scikit-learn and pandas in the image" in n for n in res.notes)
    folder = _write(tmp_path / "b", _unconvertible(), x, y, convert="onnx")
    with pytest.raises(ArtifactError, match="conversion pickle → onnx failed: RuntimeError: FunctionTransformer"):
        package(project(folder))
    run = cli("-f", str(folder / "mldeploy.yaml"), "package")
    assert run.returncode == 4 and "conversion pickle → onnx failed" in run.stderr  # exit 4: conversion failed


def test_a_graph_that_disagrees_on_the_sample_is_not_served(tmp_path: Path) -> None:
    """Timestamps 3 s apart around 1e9 are one float32 value for every 64 s: a 1-nearest-neighbour on them answers
    differently in the graph (tensor(float)), and parity on the sample rows says so."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = pd.DataFrame({"ts": 1.0e9 + np.arange(40) * 3.0, "city": ["a", "b"] * 20})
    model = make_pipeline(_columns(("t", "passthrough", ["ts"]), ("c", OneHotEncoder(), ["city"])),
                          KNeighborsClassifier(1))
    res = package(project(_write(tmp_path, model, x, np.arange(40) % 2)))
    assert res.manifest.format == "pickle" and res.manifest.parity is None
    assert any(n.startswith("parity check failed for pickle → onnx: max abs error 1") and
               n.endswith("; serving pickle") for n in res.notes), res.notes


def test_a_graph_that_answers_a_missing_value_differently_is_not_served(tmp_path: Path) -> None:
    """A decision tree takes NaN (scikit-learn sends it to the side with more samples); the ONNX tree ensemble
    sends it elsewhere: the missing-value parity run finds that, though the sample rows (no NaN) agree."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    x, y = _city_frame()
    model = make_pipeline(_columns(("t", "passthrough", ["v"]), ("c", OneHotEncoder(), ["city"])),
                          DecisionTreeClassifier(max_depth=3, random_state=0))
    res = package(project(_write(tmp_path, model, x, y)))
    assert res.manifest.format == "pickle" and {t.name: t.allow_missing for t in res.manifest.inputs}["v"]
    assert any("the ONNX graph answers a missing value in ['v'] differently from the pipeline: max abs error" in n
               for n in res.notes), res.notes


def test_string_imputers_are_converted_by_value_and_left_as_they_were(tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y = _city_frame()
    x.loc[::9, "city"] = np.nan
    imputer = SimpleImputer(strategy="most_frequent")
    model = make_pipeline(_columns(("v", SimpleImputer(), ["v"]), ("c", make_pipeline(imputer, OneHotEncoder(
        handle_unknown="ignore")), ["city"])), LogisticRegression()).fit(x, y)
    columns = [Tensor(name="v", dtype="float64", allow_missing=True), Tensor(name="city", dtype="string",
                                                                              allow_missing=True)]
    sklearn_frame_onnx.convert(model, columns, tmp_path, None, None, None, None)  # type: ignore[arg-type]
    assert imputer.missing_values is np.nan or np.isnan(imputer.missing_values)  # restored after converting
    rows = {"v": np.asarray([0.5, np.nan, 0.1]), "city": np.asarray(["Paris", None, np.nan], dtype=object)}
    got, outputs = sklearn_frame_onnx.run(tmp_path / "model.onnx", columns, rows)
    frame = pd.DataFrame({"v": rows["v"], "city": ["Paris", np.nan, np.nan]})
    assert np.allclose(got["probabilities"], model.predict_proba(frame), atol=1e-6)
    assert [t.name for t in outputs] == ["label", "probabilities"]


def test_a_converted_pipeline_loads_behind_a_feed(tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y = _city_frame()
    model = make_pipeline(_columns(("v", SimpleImputer(), ["v"]), ("c", OneHotEncoder(handle_unknown="ignore"),
                                                                   ["city"])), LogisticRegression())
    res = package(project(_write(tmp_path, model, x, y)))
    m = Manifest.load(res.dir)
    assert m.format == "onnx" and m.dataframe
    served = load_model(m, res.dir, 1)
    assert isinstance(served, RecordsOnnxModel) and served.provider == "CPUExecutionProvider"
    out = served.predict({"v": np.asarray([0.2, np.nan]), "city": np.asarray(["Paris", "Tokyo"], dtype=object)})
    want = model.fit(x, y).predict_proba(pd.DataFrame({"v": [0.2, np.nan], "city": ["Paris", "Tokyo"]}))
    assert np.allclose(out["probabilities"], want, atol=1e-6) and out["label"].tolist() == want.argmax(1).tolist()


def test_the_feed_casts_adds_the_column_axis_and_marks_missing_strings() -> None:
    class Arg:
        def __init__(self, name: str, type_: str, shape: list) -> None:
            self.name, self.type, self.shape = name, type_, shape

    feed = Feed([Arg("n", "tensor(float)", [None, 1]), Arg("k", "tensor(int64)", [None, 1]),
                 Arg("s", "tensor(string)", [None, 1]), Arg("t", "tensor(string)", [None, 1]),
                 Arg("img", "tensor(float)", [None, 3])], missing=["s"])
    got = feed({"n": np.asarray([1.5, np.nan]), "k": np.asarray([2.0, 3.0]),
                "s": np.asarray(["a", None], dtype=object), "t": np.asarray(["a", "b"]),
                "img": np.zeros((2, 3))})
    assert got["n"].dtype == np.float32 and got["n"].shape == (2, 1) and np.isnan(got["n"][1, 0])
    assert got["k"].dtype == np.int64 and got["k"].tolist() == [[2], [3]]
    assert got["s"].tolist() == [["a"], [MISSING_TEXT]] and got["s"].dtype == object
    assert got["t"].dtype == object and got["t"].tolist() == [["a"], ["b"]]
    assert got["img"].dtype == np.float32 and got["img"].shape == (2, 3)
    unknown = Feed([Arg("q", "tensor(complex64)", [None])])({"q": np.asarray([1j])})  # passed as it is
    assert unknown["q"].dtype == np.complex128


def test_an_integer_column_is_a_tensor_int64_where_skl2onnx_takes_one(tmp_path: Path) -> None:
    """Integer columns (``model.inputs`` dtype int64) are int64 graph inputs; where skl2onnx cannot mix one with a
    float column (an imputer over both: "should have the same type") they are fed as tensor(float). The contract
    says int64 either way (the server refuses 2.5 there)."""
    import onnxruntime as ort
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"rooms": rng.integers(1, 5, 80), "age": rng.integers(18, 70, 80), "v": rng.normal(size=80)})
    y = (x["rooms"] > 2).to_numpy().astype(int)
    graphs = {}
    for name, numbers in [("scaled", StandardScaler()), ("imputed", make_pipeline(SimpleImputer(), StandardScaler()))]:
        model = make_pipeline(_columns(("r", OneHotEncoder(handle_unknown="ignore"), ["rooms"]),
                                       ("n", numbers, ["age", "v"])), LogisticRegression())
        folder = _write(tmp_path / name, model, x, y)
        (folder / "mldeploy.yaml").write_text((folder / "mldeploy.yaml").read_text() + (
            "  inputs: [{name: rooms, dtype: int64}, {name: age, dtype: int64}, {name: v, dtype: float64}]\n"))
        res = package(project(folder))
        assert res.manifest.format == "onnx" and res.manifest.parity.passed
        assert [t.dtype for t in res.manifest.inputs] == ["int64", "int64", "float64"]
        graph = ort.InferenceSession(str(res.dir / "model.onnx"), providers=["CPUExecutionProvider"])
        graphs[name] = {i.name: i.type for i in graph.get_inputs()}
    assert graphs == {"scaled": {"rooms": "tensor(int64)", "age": "tensor(int64)", "v": "tensor(float)"},
                      "imputed": {"rooms": "tensor(float)", "age": "tensor(float)", "v": "tensor(float)"}}
