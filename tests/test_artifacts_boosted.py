"""XGBoost / LightGBM / CatBoost: detection, ONNX via onnxmltools with parity, native (never pickle) fallback,
serving through the real HTTP server, ``init``, and the wheelhouse's CPU-only rule (xgboost → xgboost-cpu)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mldeploy.artifacts import package
from mldeploy.artifacts.detect import describe_model, detect_format, find_model_files, guess_format
from mldeploy.errors import BuildError
from mldeploy.image import wheelhouse as wh
from tests.artifact_helpers import cli, edit_config, example, project
from tests.infra import runtime_server

ROOT = Path(__file__).resolve().parent.parent
xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")


# -- the real server ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def served(artifact: Path, log_dir: Path) -> Iterator[str]:
    """``python -m runtime --model-dir artifact`` on a free port; yields its base URL once /ready answers 200."""
    with runtime_server(log_dir, artifact) as proc:
        yield proc.url


def single_request_ms(client: httpx.Client, rows: list, n: int = 30) -> float:
    """Median client-side time of one single-row ``POST /predict`` on a kept-alive connection."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert client.post("/predict", json={"inputs": rows}).status_code == 200
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2] * 1000


# -- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example("boosted-trees", tmp_path_factory.mktemp("boosted-src"))


@pytest.fixture
def proj(src: Path, tmp_path: Path) -> Path:
    for f in src.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def _wine() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_wine

    d = load_wine()
    return d.data.astype(np.float32), d.target


# -- detection and init ------------------------------------------------------------------------------------------

def test_native_files_are_detected_by_content_and_found_by_init(src: Path, tmp_path: Path) -> None:
    assert detect_format(src / "xgb_model.ubj") == "xgboost"
    assert detect_format(src / "lgbm_model.txt") == "lightgbm"
    model = xgb.XGBClassifier(n_estimators=2).fit(*_wine())
    model.save_model(str(tmp_path / "m.json"))  # JSON flavour, named like any JSON file
    assert detect_format(tmp_path / "m.json") == guess_format(tmp_path / "m.json") == "xgboost"
    (tmp_path / "sample.json").write_text('{"input": [[1, 2]]}')
    assert tmp_path / "sample.json" not in find_model_files(tmp_path)  # plain JSON is not a model
    assert tmp_path / "m.json" in find_model_files(tmp_path)
    assert detect_format(src / "model.pkl") == "pickle"
    assert "XGBoost model in a pickle file" in (describe_model(src / "model.pkl", "pickle") or "")
    if (src / "catboost_model.cbm").exists():
        assert detect_format(src / "catboost_model.cbm") == "catboost"


def test_init_writes_the_native_format_and_describes_a_pickled_booster(proj: Path) -> None:
    (proj / "mldeploy.yaml").unlink()
    r = cli("-f", str(proj / "mldeploy.yaml"), "init", "--model", str(proj / "lgbm_model.txt"), "--name", "trees")
    assert r.returncode == 0, r.stderr
    assert "format: lightgbm" in (proj / "mldeploy.yaml").read_text()
    r = cli("-f", str(proj / "mldeploy.yaml"), "init", "--force", "--model", str(proj / "model.pkl"), "--name", "t2")
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())  # rich wraps at the console width (120 columns under CI=true)
    assert "XGBoost model in a pickle file" in said and "not pickle" in said


# -- packaging ---------------------------------------------------------------------------------------------------

def test_pickled_xgboost_is_served_as_onnx_with_parity(proj: Path) -> None:
    res = package(project(proj))
    m = res.manifest
    assert (m.source_format, m.format) == ("pickle", "onnx")
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-5 and m.parity.argmax_agreement == 1.0
    assert m.requirements == [r for r in m.requirements if r.startswith("onnxruntime")]
    assert [t.role for t in m.outputs] == ["label", "probabilities"] and m.class_labels == ["class_0", "class_1",
                                                                                             "class_2"]


@pytest.mark.parametrize("file,fmt", [("lgbm_model.txt", "lightgbm"), ("xgb_model.ubj", "xgboost"),
                                      ("catboost_model.cbm", "catboost")])
def test_native_files_convert_to_onnx(proj: Path, file: str, fmt: str) -> None:
    if not (proj / file).exists():
        pytest.skip("catboost is not installed")
    edit_config(proj, path=file)
    m = package(project(proj)).manifest
    assert (m.source_format, m.format) == (fmt, "onnx")
    assert m.parity and m.parity.passed and m.parity.max_abs_error < 1e-5


@pytest.mark.parametrize("file,fmt,served_file", [("model.pkl", "xgboost", "model.ubj"),
                                                  ("xgb_model.ubj", "xgboost", "model.ubj"),
                                                  ("lgbm_model.txt", "lightgbm", "model.lgb.txt")])
def test_convert_none_serves_the_native_format_never_pickle(proj: Path, file: str, fmt: str,
                                                            served_file: str) -> None:
    edit_config(proj, path=file, convert="none")
    m = package(project(proj)).manifest
    assert (m.format, m.file) == (fmt, served_file)
    if fmt == "xgboost":
        assert any(r.startswith("xgboost-cpu==") for r in m.requirements)
        assert not any(r.startswith("xgboost==") for r in m.requirements)


def test_failed_conversion_falls_back_to_native_not_pickle(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.artifacts.formats import boosted

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("MissingShapeCalculator: simulated")

    monkeypatch.setattr(boosted.BoostedHandler, "_to_onnx", broken)
    res = package(project(proj), force=True)
    assert (res.manifest.source_format, res.manifest.format) == ("pickle", "xgboost")
    assert res.manifest.parity and res.manifest.parity.passed  # the written native file was checked too
    assert any("serving xgboost" in n for n in res.notes)


def test_regressor_and_binary_classifier(tmp_path: Path, proj: Path) -> None:
    x, y = _wine()
    reg = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(x, x[:, 0])
    (proj / "reg.pkl").write_bytes(pickle.dumps(reg))
    edit_config(proj, path="reg.pkl", class_labels=None)
    m = package(project(proj)).manifest
    assert m.task == "regression" and m.format == "onnx" and m.parity and m.parity.passed
    binary = xgb.XGBClassifier(n_estimators=10).fit(x, (y == 1).astype(int))
    binary.save_model(str(proj / "bin.ubj"))
    edit_config(proj, path="bin.ubj", convert="none")
    m = package(project(proj)).manifest
    assert m.format == "xgboost" and m.outputs[1].shape == [None, 2] and m.class_labels == ["0", "1"]


# -- serving through the real HTTP server ------------------------------------------------------------------------

@pytest.mark.parametrize("file,convert", [("model.pkl", "auto"), ("model.pkl", "none"), ("lgbm_model.txt", "none"),
                                          ("catboost_model.cbm", "none")])
def test_served_predictions_match_the_library(proj: Path, tmp_path: Path, file: str, convert: str) -> None:
    if not (proj / file).exists():
        pytest.skip("catboost is not installed")
    edit_config(proj, path=file, convert=convert)
    res = package(project(proj))
    x, _ = _wine()
    if file == "model.pkl":
        expected = pickle.loads((proj / file).read_bytes()).predict_proba(x)
    elif file.endswith(".txt"):
        expected = lgb.Booster(model_file=str(proj / file)).predict(x)
    else:
        import catboost

        expected = catboost.CatBoostClassifier().load_model(str(proj / file)).predict_proba(x)
    with served(res.dir, tmp_path) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/predict", json={"inputs": x.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        latency_ms = single_request_ms(client, x[:1].tolist())
    got = np.asarray(body["probabilities"])
    assert np.abs(got - expected).max() < 1e-5
    assert body["predictions"] == [f"class_{i}" for i in expected.argmax(axis=1)]
    print(f"FIGURE {file} {res.manifest.source_format}->{res.manifest.format} size={res.manifest.size_bytes} "
          f"parity={res.manifest.parity.max_abs_error if res.manifest.parity else 0:.2e} latency_ms={latency_ms:.2f}")


# -- the image: CPU-only xgboost, and the CUDA refusal names the package -----------------------------------------

def test_xgboost_requirements_become_the_cpu_only_wheel() -> None:
    for platform in ("linux/amd64", "linux/arm64"):
        assert wh.pin_requirement("xgboost==3.2.0", platform) == "xgboost-cpu==3.2.0"
        assert wh.pin_requirement("xgboost>=2.1", platform) == "xgboost-cpu>=2.1"
    assert wh.pin_requirement("xgboost==2.0.3", "linux/amd64") == "xgboost==2.0.3"  # no NCCL dependency before 2.1
    assert wh.merge_requirements([["xgboost==3.2.0"], ["xgboost-cpu==3.2.0"]], "linux/amd64") == ["xgboost-cpu==3.2.0"]


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-manylinux_2_28_x86_64.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_cuda_refusal_names_the_package_that_pulls_it_and_the_fix(tmp_path: Path) -> None:
    wheels = [_wheel(tmp_path, "xgboost", "3.2.0", ["numpy", 'nvidia-nccl-cu12; platform_system == "Linux"']),
              _wheel(tmp_path, "nvidia_nccl_cu12", "2.32.3", []), _wheel(tmp_path, "numpy", "2.4.6", [])]
    with pytest.raises(BuildError) as e:
        wh.check_no_cuda(wheels)
    assert "nvidia_nccl_cu12-2.32.3" in e.value.message and "required by xgboost 3.2.0" in e.value.message
    assert "xgboost-cpu" in (e.value.hint or "") and "torch" not in (e.value.hint or "")
    pip_err = ('ERROR: Could not find a version that satisfies the requirement nvidia-nccl-cu12; platform_system == '
               '"Linux" (from xgboost) (from versions: none)')
    err = wh._cuda_in_pip_failure(pip_err)
    assert err and "required by xgboost" in err.message and "xgboost-cpu" in (err.hint or "")


def test_xgboost_cpu_wheel_resolves_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real download (host pip config) of what a native-XGBoost artifact needs: no nvidia-* wheel."""
    if os.environ.get("MLDEPLOY_OFFLINE") == "1":
        pytest.skip("MLDEPLOY_OFFLINE=1")
    monkeypatch.setenv("MLDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    try:
        house = wh.ensure_wheelhouse(wh.merge_requirements([["xgboost==" + xgb.__version__]], "linux/amd64"),
                                     platform="linux/amd64", python_version="3.11")
    except BuildError as e:
        if "could not download" in e.message:
            pytest.skip(f"no package index reachable: {e.message.splitlines()[0]}")
        raise
    names = [p.name for p in house.dir.glob("*.whl")]
    assert any(n.startswith("xgboost_cpu-") for n in names) and not any(n.startswith("nvidia") for n in names)
    print(f"FIGURE wheelhouse xgboost-cpu {house.size_bytes / 1e6:.1f} MB: {', '.join(sorted(names))}")


def test_npy_body_works_for_native_models(proj: Path, tmp_path: Path) -> None:
    edit_config(proj, path="xgb_model.ubj", convert="none")
    res = package(project(proj))
    x, _ = _wine()
    buf = io.BytesIO()
    np.save(buf, x[:5])
    with served(res.dir, tmp_path) as url:
        r = httpx.post(url + "/predict", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    assert json.loads(r.text)["predictions"][0] == "class_0"
