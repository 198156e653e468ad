"""Packaging of a TensorFlow SavedModel (tiny Keras model): ONNX via tf2onnx, or served natively.

TensorFlow imports slowly, so this module builds the model once and keeps its tests few.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.hashing import sha256_path
from tests.artifact_helpers import cli, edit_config, example, project, shadow_module


@pytest.fixture(scope="module")
def keras_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    return example("keras-tf", tmp_path_factory.mktemp("keras-src"), epochs=5)


@pytest.fixture
def wine(keras_src: Path, tmp_path: Path) -> Path:
    shutil.copytree(keras_src, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".mldeploy"))
    return tmp_path


@pytest.mark.slow
def test_savedmodel_is_served_as_onnx_with_parity(wine: Path) -> None:
    import onnxruntime as ort
    import tensorflow as tf

    result = package(project(wine))
    m = result.manifest
    assert (m.source_format, m.format, m.task) == ("savedmodel", "onnx", "classification")
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [("features", "float32", [None, 13])]
    assert [(t.name, t.shape, t.role) for t in m.outputs] == [("output_0", [None, 3], "probabilities")]
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-4 and m.parity.argmax_agreement == 1.0
    assert m.requirements == [f"onnxruntime=={ort.__version__}"]  # no TensorFlow in the image
    assert {"tf2onnx", "keras"} <= set(m.framework_versions)
    rows = json.loads((wine / "sample.json").read_text())["features"]
    assert m.sample_input == {"features": rows[:8]} and m.baseline and m.baseline.count == len(rows)
    assert m.source_sha256 == sha256_path(wine / "saved_model")

    x = np.asarray(rows, dtype=np.float32)
    sess = ort.InferenceSession(str(result.dir / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = tf.saved_model.load(str(wine / "saved_model")).signatures["serving_default"](
        features=tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(sess.run(None, {"features": x})[0], expected, atol=1e-5)


@pytest.mark.slow
def test_savedmodel_served_natively_with_convert_none(wine: Path) -> None:
    edit_config(wine, convert="none")
    result = package(project(wine))
    m = result.manifest
    assert (m.format, m.file, m.parity) == ("savedmodel", "saved_model", None)
    assert (result.dir / "saved_model" / "saved_model.pb").is_file()
    assert m.sha256 == m.source_sha256 == sha256_path(result.dir / "saved_model")
    assert len(m.requirements) == 1 and m.requirements[0].startswith(("tensorflow-cpu==", "tensorflow=="))


def test_missing_tensorflow_message(tmp_path: Path) -> None:
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\x08\x01")
    (tmp_path / "mldeploy.yaml").write_text("name: tfm\nmodel:\n  path: sm\n")
    res = cli("package", cwd=tmp_path, env=shadow_module(tmp_path, "tensorflow"))
    assert res.returncode == 4, res.stderr
    assert "this is a TensorFlow SavedModel model but tensorflow is not installed" in res.stderr
    assert "pip install 'mldeploy[tensorflow]'" in res.stderr
