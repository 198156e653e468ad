"""Packaging of scikit-learn/pickle/joblib/skops and ONNX models: manifest, parity, cache, errors."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.detect import detect_format
from mldeploy.artifacts.verify import verify
from mldeploy.errors import ArtifactError, ConfigError
from runtime.manifest import Manifest
from tests.artifact_helpers import cli, edit_config, example, project, shadow_module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def iris_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("iris-sklearn", tmp_path_factory.mktemp("iris-src"))


@pytest.fixture
def iris(iris_src: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built iris example (model.pkl + sample.json + mldeploy.yaml)."""
    for f in iris_src.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_iris_pickle_is_served_as_onnx_with_parity_and_full_manifest(iris: Path) -> None:
    import onnxruntime as ort
    from sklearn.datasets import load_iris

    result = package(project(iris))
    m = result.manifest
    assert result.dir == iris / ".mldeploy" / "default" / "artifact"
    assert Manifest.load(result.dir) == m
    assert (m.source_format, m.format, m.file, m.task, m.version) == ("pickle", "onnx", "model.onnx",
                                                                      "classification", "1.0.0")
    onnx_file = result.dir / "model.onnx"
    assert m.sha256 == sha256(onnx_file) and m.size_bytes == onnx_file.stat().st_size
    assert m.source_sha256 == sha256(iris / "model.pkl")
    assert [(t.name, t.dtype, t.shape) for t in m.inputs] == [("input", "float32", [None, 4])]
    assert [(t.name, t.role) for t in m.outputs] == [("label", "label"), ("probabilities", "probabilities")]
    assert m.class_labels == ["setosa", "versicolor", "virginica"]
    assert m.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    # parity: tree ensemble in ONNX agrees with scikit-learn to float32 rounding
    assert m.parity and m.parity.passed and m.parity.samples == 64
    assert m.parity.max_abs_error < 1e-5 and m.parity.argmax_agreement == 1.0
    # the served ONNX model's single-row time (one thread, median): `mldeploy cost` estimates capacity from it
    assert isinstance(m.parity.single_row_ms, float) and 0 < m.parity.single_row_ms < 100
    assert json.loads((result.dir / "model.json").read_text())["parity"]["single_row_ms"] == m.parity.single_row_ms
    # the server needs onnxruntime only: no scikit-learn in the image
    assert m.requirements == [f"onnxruntime=={ort.__version__}"]
    assert {"scikit-learn", "skl2onnx", "numpy"} <= set(m.framework_versions)
    # sample (first 8 rows, shortest decimals) and drift baseline (all 30 rows of sample.json)
    rows = json.loads((iris / "sample.json").read_text())["input"]
    assert m.sample_input == {"input": rows[:8]}
    assert m.baseline and m.baseline.count == 30
    np.testing.assert_allclose(m.baseline.mean, np.mean(rows, axis=0), atol=1e-5)
    np.testing.assert_allclose(m.baseline.std, np.std(rows, axis=0), atol=1e-5)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m.created_at)
    # the served ONNX model classifies the real data like the original
    iris_data = load_iris()
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"input": iris_data.data.astype(np.float32)})
    original = pickle.loads((iris / "model.pkl").read_bytes())
    assert (label == original.predict(iris_data.data)).mean() == 1.0
    assert proba.shape == (150, 3)


def test_repackage_is_cached_until_model_or_config_changes(iris: Path) -> None:
    first = package(project(iris))
    onnx_bytes = (first.dir / "model.onnx").read_bytes()
    again = package(project(iris))
    assert again.cached and again.manifest == first.manifest  # same created_at: nothing rewritten
    assert (again.dir / "model.onnx").read_bytes() == onnx_bytes

    edit_config(iris, version="1.0.1")
    bumped = package(project(iris))
    assert not bumped.cached and bumped.manifest.version == "1.0.1"
    assert bumped.manifest.sha256 == first.manifest.sha256  # conversion is deterministic

    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris()
    (iris / "model.pkl").write_bytes(pickle.dumps(RandomForestClassifier(10, random_state=1).fit(data.data,
                                                                                                 data.target)))
    retrained = package(project(iris))
    assert not retrained.cached and retrained.manifest.source_sha256 == sha256(iris / "model.pkl")
    assert retrained.manifest.sha256 != first.manifest.sha256

    (retrained.dir / "model.onnx").write_bytes(b"\x08\x07tampered")
    repaired = package(project(iris))  # a changed artifact is never reused
    assert not repaired.cached and repaired.manifest.sha256 == retrained.manifest.sha256


def test_convert_none_serves_the_pickle_pinned_and_tampering_is_refused(iris: Path) -> None:
    import joblib
    import sklearn

    from runtime.loaders import ModelLoadError, load_model

    edit_config(iris, convert="none")
    result = package(project(iris))
    m = result.manifest
    assert (m.format, m.file, m.parity) == ("pickle", "model.pkl", None)
    assert m.sha256 == m.source_sha256 == sha256(iris / "model.pkl")
    assert f"scikit-learn=={sklearn.__version__}" in m.requirements
    assert f"joblib=={joblib.__version__}" in m.requirements and f"numpy=={np.__version__}" in m.requirements
    assert not any(r.startswith("onnxruntime") for r in m.requirements)
    model = load_model(m, result.dir, threads=1)  # the server's loader accepts the packaged file
    assert model.predict({"input": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)})["probabilities"].shape == (1, 3)

    served = result.dir / "model.pkl"
    evil = pickle.loads(served.read_bytes())
    evil.n_outputs_ = 1
    served.write_bytes(pickle.dumps(evil))
    with pytest.raises(ArtifactError, match=r"model\.pkl has sha256 .* but model\.json records .*refusing to load "
                                            r"it \(unpickling runs code\)"):
        verify(result.dir)
    with pytest.raises(ModelLoadError, match="does not match model.json"):
        load_model(m, result.dir, threads=1)


def test_joblib_compressed_and_skops_are_detected_and_served(iris: Path) -> None:
    import joblib
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    joblib.dump(model, iris / "model.joblib", compress=3)
    assert detect_format(iris / "model.joblib") == "joblib"
    edit_config(iris, path="model.joblib", convert="none")
    m = package(project(iris)).manifest
    assert (m.format, m.file) == ("joblib", "model.joblib")

    joblib.dump(model, iris / "plain.pkl")  # uncompressed joblib under a pickle name: served with joblib
    edit_config(iris, path="plain.pkl")
    assert package(project(iris)).manifest.format == "joblib"

    sio.dump(model, iris / "model.skops")
    assert detect_format(iris / "model.skops") == "skops"
    edit_config(iris, path="model.skops", convert="auto")
    m = package(project(iris)).manifest
    assert (m.source_format, m.format) == ("skops", "onnx") and m.parity and m.parity.passed
    assert m.parity.max_abs_error < 1e-4
    edit_config(iris, convert="none")
    m = package(project(iris)).manifest
    assert m.format == "skops" and any(r.startswith("skops==") for r in m.requirements)


def test_regressor_gets_prediction_role(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes()
    (tmp_path / "reg.pkl").write_bytes(pickle.dumps(Ridge().fit(data.data, data.target)))
    (tmp_path / "mldeploy.yaml").write_text("name: reg\nmodel:\n  path: reg.pkl\n")
    m = package(project(tmp_path)).manifest
    assert m.task == "regression" and m.format == "onnx"
    assert [(t.name, t.role) for t in m.outputs] == [("variable", "prediction")]
    assert m.inputs[0].shape == [None, 10] and m.class_labels is None
    assert m.parity and m.parity.passed and m.parity.argmax_agreement is None


def test_onnx_model_is_served_as_is_with_signature_from_graph(iris: Path, tmp_path: Path) -> None:
    onnx_file = package(project(iris)).dir / "model.onnx"
    folder = tmp_path / "onnx-app"
    folder.mkdir()
    (folder / "iris.onnx").write_bytes(onnx_file.read_bytes())
    (folder / "mldeploy.yaml").write_text("name: iris-onnx\nmodel:\n  path: iris.onnx\n")
    m = package(project(folder)).manifest
    assert (m.source_format, m.format, m.parity) == ("onnx", "onnx", None)
    assert m.sha256 == sha256(onnx_file)
    assert [(t.name, t.shape) for t in m.inputs] == [("input", [None, 4])]
    assert [(t.name, t.dtype, t.role) for t in m.outputs] == [("label", "int64", "label"),
                                                              ("probabilities", "float32", "probabilities")]
    assert m.task == "classification" and m.framework_versions["opset"] == "17"


def test_parity_failure_fails_explicit_onnx_and_falls_back_in_auto(iris: Path) -> None:
    strict = {"atol": 0.0, "rtol": 0.0, "min_argmax_agreement": 1.0, "samples": 64}
    edit_config(iris, convert="onnx", parity=strict)
    with pytest.raises(ArtifactError, match=r"parity check failed for pickle → onnx: max abs error \S+, max rel "
                                            r"error \S+, argmax agreement 1.0") as err:
        package(project(iris))
    assert "model.parity" in (err.value.hint or "")
    edit_config(iris, convert="auto")
    result = package(project(iris))
    assert result.manifest.format == "pickle" and result.manifest.parity is None
    assert result.notes and "parity check failed" in result.notes[0] and "serving pickle" in result.notes[0]


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"is empty \(0 bytes\)"),
    (b"\x00\x01garbage" * 10, r"cannot tell the format of .*bad.bin"),
    (b"PK\x03\x04truncated", r"starts like a zip archive but cannot be read .*corrupt or truncated"),
])
def test_unknown_or_corrupt_files_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        detect_format(bad)


def test_truncated_pickle_and_onnx_are_reported_as_corrupt(iris: Path) -> None:
    data = (iris / "model.pkl").read_bytes()
    (iris / "model.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"model\.pkl is a pickle file but cannot be loaded .*corrupt or truncated"):
        package(project(iris))
    (iris / "m.onnx").write_bytes(b"\x08\x07\x12\x04skl2" + b"\xff" * 40)
    edit_config(iris, path="m.onnx")
    with pytest.raises(ArtifactError, match=r"m\.onnx is not a valid ONNX model"):
        package(project(iris))


def test_wrong_format_override_and_folders(iris: Path, tmp_path: Path) -> None:
    edit_config(iris, format="onnx")
    with pytest.raises(ArtifactError, match=r"model\.format is 'onnx' but model\.pkl looks like a pickle file") as err:
        package(project(iris))
    assert "model.format: pickle" in (err.value.hint or "")
    edit_config(iris, format="joblib")  # joblib reads plain pickles: accepted
    assert package(project(iris)).manifest.source_format == "joblib"
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ArtifactError, match="folder without saved_model.pb"):
        detect_format(tmp_path / "empty_dir")


def test_keras_archive_gets_an_export_hint(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.keras", "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"")
    (tmp_path / "mldeploy.yaml").write_text("name: km\nmodel:\n  path: m.keras\n")
    with pytest.raises(ArtifactError, match="Keras v3 .keras archive") as err:
        package(project(tmp_path))
    assert "model.export" in (err.value.hint or "")


def test_sample_and_label_mismatches_name_the_field(iris: Path) -> None:
    (iris / "bad.json").write_text(json.dumps({"input": [[1, 2, 3]]}))
    edit_config(iris, sample_input="bad.json")
    with pytest.raises(ArtifactError, match=r"model\.sample_input \(bad\.json\): input 'input' has shape 1×3, the "
                                            r"model expects N×4"):
        package(project(iris))
    edit_config(iris, sample_input="sample.json", class_labels=["a", "b"])
    with pytest.raises(ArtifactError, match=r"model\.class_labels has 2 entries but the model has 3 classes"):
        package(project(iris))


def test_skops_with_unknown_types_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=json.dumps).fit([[1.0]]), tmp_path / "f.skops")
    (tmp_path / "mldeploy.yaml").write_text("name: fx\nmodel:\n  path: f.skops\n")
    with pytest.raises(ArtifactError, match=r"f\.skops is a skops file with types mldeploy does not trust: "
                                            r"json\.dumps") as e:
        package(project(tmp_path))
    assert "model:\n    trusted_types:\n    - json.dumps" in (e.value.hint or "")


def test_missing_framework_message(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.pt", "w") as zf:
        zf.writestr("m/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("m/code/__torch__.py", "")
    (tmp_path / "mldeploy.yaml").write_text("name: mt\nmodel:\n  path: m.pt\n  inputs: [{name: x, shape: [null, 2]}]\n")
    res = cli("package", cwd=tmp_path, env=shadow_module(tmp_path, "torch"))
    assert res.returncode == 4, res.stderr
    assert "this is a PyTorch model but torch is not installed" in res.stderr
    assert "pip install 'mldeploy[torch]'" in res.stderr and "Traceback" not in res.stderr


def test_cli_package_json_and_error_exit_codes(iris: Path) -> None:
    res = cli("package", "--json", "-f", str(iris / "mldeploy.yaml"))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["source_format"], doc["format"], doc["cached"]) == ("pickle", "onnx", False)
    assert doc["parity"]["passed"] and doc["sha256"] == sha256(Path(doc["dir"]) / "model.onnx")
    human = cli("package", "-f", str(iris / "mldeploy.yaml"))
    assert human.returncode == 0 and "pickle → onnx" in human.stderr and "reused" in human.stderr
    assert "onnxruntime==" in human.stderr

    edit_config(iris, format="torchscript")
    res = cli("package", "--output", str(iris / "out"), "-f", str(iris / "mldeploy.yaml"))
    assert res.returncode == 4
    assert "model.format is 'torchscript' but model.pkl looks like a pickle file" in res.stderr
    assert "Traceback" not in res.stderr


def test_output_dir_is_honoured(iris: Path) -> None:
    result = package(project(iris), iris / "out")
    assert result.dir == iris / "out" and verify(iris / "out") == result.manifest
    assert sorted(p.name for p in (iris / "out").iterdir()) == [".package-key", "model.json", "model.onnx"]


def test_missing_model_path_is_a_config_error(iris: Path) -> None:
    edit_config(iris, path="nope.pkl")
    with pytest.raises(ConfigError, match=r"model\.path: nope\.pkl does not exist"):
        package(project(iris))


def test_validate_uses_the_content_detector(iris: Path) -> None:
    res = cli("validate", "--json", "-f", str(iris / "mldeploy.yaml"))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["format"] == "pickle" and any("loading it executes code" in w for w in doc["warnings"])
    assert any("skops or ONNX" in w for w in doc["warnings"])
    edit_config(iris, format="onnx")
    doc = json.loads(cli("validate", "--json", "-f", str(iris / "mldeploy.yaml")).stdout)
    assert any("model.format is 'onnx' but model.pkl looks like a pickle file" in w for w in doc["warnings"])


def test_unconvertible_custom_estimator_falls_back_to_pickle_with_notes(tmp_path: Path) -> None:
    import sys

    (tmp_path / "custom_est_mod.py").write_text(
        "import numpy as np\n\n\nclass Doubler:\n    n_features_in_ = 3\n\n"
        "    def predict(self, x):\n        return np.asarray(x).sum(axis=1) * 2\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import custom_est_mod

        (tmp_path / "m.pkl").write_bytes(pickle.dumps(custom_est_mod.Doubler()))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("custom_est_mod", None)
    (tmp_path / "mldeploy.yaml").write_text("name: custom\nmodel:\n  path: m.pkl\n")
    with pytest.raises(ArtifactError, match="unpickles custom_est_mod.Doubler from custom_est_mod") as err:
        package(project(tmp_path))  # importable here (the config's folder), but the server would not have it
    assert "code_paths: [custom_est_mod.py]" in (err.value.hint or "")
    (tmp_path / "mldeploy.yaml").write_text("name: custom\nmodel:\n  path: m.pkl\n"
                                            "  code_paths: [custom_est_mod.py]\n")
    result = package(project(tmp_path))
    m = result.manifest
    assert (m.format, m.task, m.parity) == ("pickle", "regression", None)
    assert any("conversion pickle → onnx failed" in n and "serving pickle" in n for n in result.notes)
    assert any(r.startswith("numpy==") for r in m.requirements)
    edit_config(tmp_path, convert="onnx")
    with pytest.raises(ArtifactError, match="conversion pickle → onnx failed") as err:
        package(project(tmp_path))
    assert "model.convert: none" in (err.value.hint or "")


def test_manifest_without_single_row_ms_still_loads(iris: Path) -> None:
    """model.json files written before ``parity.single_row_ms`` existed load with it unset."""
    result = package(project(iris))
    path = result.dir / "model.json"
    doc = json.loads(path.read_text())
    del doc["parity"]["single_row_ms"]
    path.write_text(json.dumps(doc))
    m = Manifest.load(result.dir)
    assert m.parity and m.parity.passed and m.parity.single_row_ms is None


def test_single_row_timing_is_bounded() -> None:
    from mldeploy.artifacts.parity import time_single_row

    calls: list[int] = []
    assert time_single_row(lambda: calls.append(1)) > 0
    assert len(calls) == 21  # one warm-up + 20 timed
    slow: list[int] = []

    def sleepy() -> None:
        slow.append(1)
        import time

        time.sleep(0.12)

    assert time_single_row(sleepy) >= 100
    assert len(slow) == 4  # warm-up + 3: a call over 100 ms stops the timing
