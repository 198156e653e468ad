"""``model.inputs[].allow_missing`` in mldeploy.yaml (``mldeploy.artifacts.missing``): the configured value wins
over what ``package`` detects; ``true`` where the model (or the model it is converted to) fails on a missing value
is refused at package with exit 3 naming the input and the error; ``false`` makes the server refuse null with a
422 naming the field, though the model has an imputer there."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mldeploy.artifacts import missing, package
from mldeploy.config.schema import ModelSection
from mldeploy.errors import ConfigError
from runtime.inputs import InputError, InputSpec, parse_json
from runtime.loaders import load_model
from tests.artifact_helpers import cli, example, project

COLUMNS = [{"name": "age", "dtype": "float64"}, {"name": "income", "dtype": "float64"},
           {"name": "city", "dtype": "string"}]


def _inputs(folder: Path, **allow: bool) -> None:
    """``model.inputs`` for the tabular-mixed columns, with ``allow_missing`` where given."""
    entries = [{**c, **({"allow_missing": allow[c["name"]]} if c["name"] in allow else {})} for c in COLUMNS]
    cfg = folder / "mldeploy.yaml"
    cfg.write_text(cfg.read_text().replace("  sample_input: sample.json", "  sample_input: sample.json\n"
                                           f"  inputs: {json.dumps(entries)}"))


def test_the_configured_value_wins_over_detection(tmp_path: Path) -> None:
    folder = example("tabular-mixed", tmp_path / "p")
    _inputs(folder, age=False, city=True)  # age has an imputer (detected: true); city none (detected: false)
    res = package(project(folder))
    assert {t.name: t.allow_missing for t in res.manifest.inputs} == {"age": False, "income": True, "city": True}
    assert res.manifest.format == "onnx"  # the graph answers a missing city like the pipeline (one-hot: zeros)
    spec = InputSpec(res.manifest)
    with pytest.raises(InputError) as e:
        parse_json(json.dumps({"inputs": [{"age": None, "income": 1.0, "city": "Lyon"}]}).encode(), spec)
    assert e.value.detail()[0]["loc"] == ["inputs", 0, "age"] and "field 'age' is null" in e.value.msg
    body = {"inputs": [{"age": 30, "income": None, "city": None}, {"age": 40, "income": 5e4, "city": "Nice"}]}
    cols = parse_json(json.dumps(body).encode(), spec)
    got = load_model(res.manifest, res.dir, 1).predict(cols)["probabilities"]
    pipe = pickle.loads((folder / "model.pkl").read_bytes())  # noqa: S301 - written by this test's example
    frame = pd.DataFrame({"age": [30.0, 40.0], "income": [np.nan, 5e4], "city": [np.nan, "Nice"]})
    assert np.allclose(got, pipe.predict_proba(frame), atol=1e-6)


def test_true_where_the_model_fails_on_a_missing_value_is_refused_with_exit_3(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    folder = example("tabular-mixed", tmp_path / "p")
    x = pd.DataFrame(json.loads((folder / "sample.json").read_text())["inputs"])
    strict = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["age", "income"]),
                                              ("c", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
                           LogisticRegression()).fit(x, np.arange(len(x)) % 2)
    (folder / "model.pkl").write_bytes(pickle.dumps(strict))
    _inputs(folder, income=True)
    run = cli("-f", str(folder / "mldeploy.yaml"), "package")
    assert run.returncode == 3, run.stderr
    text = " ".join(run.stderr.split())
    assert ("model.inputs[1].allow_missing: true, but the model fails on a missing value in input 'income': "
            "ValueError: Input X contains NaN") in text


def test_a_tensor_input_takes_it_too_and_the_converted_model_is_checked(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y = load_iris(return_X_y=True)
    entry = "  inputs: [{name: input, shape: [null, 4], allow_missing: true}]\n"
    for name, model in [("imputed", make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))),
                        ("plain", LogisticRegression(max_iter=500))]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.pkl").write_bytes(pickle.dumps(model.fit(x, y)))
        (folder / "mldeploy.yaml").write_text(f"name: {name}\nmodel:\n  path: model.pkl\n{entry}")
    m = package(project(tmp_path / "imputed")).manifest
    assert m.format == "onnx" and [t.allow_missing for t in m.inputs] == [True]  # kept through the conversion
    assert np.isnan(parse_json(b'{"inputs": [[5.1, null, 1.4, 0.2]]}', InputSpec(m))["input"][0, 1])
    with pytest.raises(ConfigError, match=r"model.inputs\[0\].allow_missing: true, but the model fails on a "
                                          r"missing value in input 'input': ValueError: Input X contains NaN"):
        package(project(tmp_path / "plain"))


def test_what_the_check_reads_and_runs() -> None:
    cfg = ModelSection.model_validate({"path": "m.onnx", "inputs": [
        {"name": "a", "dtype": "float64", "allow_missing": True},
        {"name": "b", "dtype": "int64", "allow_missing": True}, {"name": "c"}]})
    assert missing.configured(cfg.inputs) == {"a": True, "b": True}  # c: not set, detection decides
    from runtime.manifest import Tensor

    ins = [Tensor(name="a", dtype="float64"), Tensor(name="b", dtype="int64"), Tensor(name="c")]
    x = {"a": np.ones(3), "b": np.ones(3, dtype=np.int64), "c": np.ones(3, dtype=np.float32)}
    assert missing.check(cfg.inputs, ins, x, {"the model": lambda v: {"y": np.nan_to_num(v["a"])}}) == (
        "model.inputs[1].allow_missing", "true, but the model fails on a missing value in input 'b': a int64 input "
                                         "cannot hold a missing value (NaN)")
    assert missing.check(cfg.inputs, ins, x, {"the model": lambda v: {"y": v["a"]}})[1].endswith(
        "output 'y' is NaN or infinite")
    grid = missing.with_missing({"m": np.zeros((3, 2), dtype=np.float32)}, "m")["m"]
    assert np.isnan(grid[0]).all() and np.isnan(grid[1, 0]) and not np.isnan(grid[1, 1]) and np.isnan(grid[2, 1])


def test_a_value_that_is_not_a_boolean_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "mldeploy.yaml").write_text("name: tt\nmodel:\n  path: m.onnx\n  inputs: [{name: a, allow_missing: "
                                            "sometimes}]\n")
    run = cli("-f", str(tmp_path / "mldeploy.yaml"), "validate")
    assert run.returncode == 3 and "allow_missing" in run.stderr
