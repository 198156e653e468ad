"""Example artifacts (model file + hand-written model.json) for the runtime tests and the serving benchmark.

Until ``mldeploy package`` lands these write the manifest directly; they produce exactly the folder layout the
server expects: ``<dir>/model.json`` + ``<dir>/<model file>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np

from runtime.manifest import Baseline, ImageSpec, Manifest, Tensor

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_LABELS = ["setosa", "versicolor", "virginica"]
CNN_LABELS = [f"class_{i}" for i in range(10)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _iris():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _manifest(folder: Path, file: str, **kw) -> Manifest:
    path = folder / file
    m = Manifest(file=file, sha256=_sha(path), size_bytes=path.stat().st_size,
                 created_at=dt.datetime.now(dt.UTC).isoformat(), **kw)
    m.save(folder)
    return m


def _iris_common(x: np.ndarray) -> dict:
    return dict(
        task="classification", class_labels=IRIS_LABELS, feature_names=IRIS_FEATURES,
        sample_input={"input": x[:3].tolist()},
        baseline=Baseline(mean=x.mean(0).tolist(), std=x.std(0).tolist(), count=len(x)),
    )


def iris_onnx(folder: Path, version: str = "1.0.0", n_estimators: int = 100, seed: int = 0) -> Manifest:
    """100-tree iris random forest → ONNX (skl2onnx, zipmap off): outputs label + probabilities."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    folder.mkdir(parents=True, exist_ok=True)
    x, y = _iris()
    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(x, y)
    onx = convert_sklearn(rf, initial_types=[("input", FloatTensorType([None, 4]))],
                          options={id(rf): {"zipmap": False}}, target_opset=17)
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    label, proba = (o.name for o in onx.graph.output)
    return _manifest(
        folder, "model.onnx", name="iris", version=version, format="onnx", source_format="sklearn",
        inputs=[Tensor(name="input", dtype="float32", shape=[None, 4])],
        outputs=[Tensor(name=label, dtype="int64", shape=[None], role="label"),
                 Tensor(name=proba, dtype="float32", shape=[None, 3], role="probabilities")],
        requirements=["onnxruntime"], **_iris_common(x),
    )


def iris_sklearn(folder: Path, fmt: str = "joblib", version: str = "1.0.0") -> Manifest:
    """Iris logistic regression saved as joblib, pickle or skops."""
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    x, y = _iris()
    clf = LogisticRegression(max_iter=500).fit(x, y)
    file = {"joblib": "model.joblib", "pickle": "model.pkl", "skops": "model.skops"}[fmt]
    if fmt == "joblib":
        import joblib

        joblib.dump(clf, folder / file)
    elif fmt == "pickle":
        import pickle

        (folder / file).write_bytes(pickle.dumps(clf))
    else:
        import skops.io as sio

        sio.dump(clf, folder / file)
    return _manifest(
        folder, file, name="iris", version=version, format=fmt, source_format=fmt,
        inputs=[Tensor(name="input", dtype="float32", shape=[None, 4])],
        outputs=[Tensor(name="label", dtype="int64", shape=[None], role="label"),
                 Tensor(name="probabilities", dtype="float32", shape=[None, 3], role="probabilities")],
        requirements=["scikit-learn"], **_iris_common(x),
    )


def cnn_module():
    """A small 224×224×3 → 10-class CNN (the benchmark's image model)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()


def cnn_torchscript(folder: Path, version: str = "1.0.0") -> Manifest:
    """The CNN traced to TorchScript; input NCHW float32, output logits (softmaxed by the server)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    module = cnn_module()
    traced = torch.jit.trace(module, torch.zeros(1, 3, 224, 224))
    traced.save(str(folder / "model.pt"))
    return _manifest(
        folder, "model.pt", name="cnn", version=version, format="torchscript", source_format="torch",
        task="image-classification", class_labels=CNN_LABELS, image=ImageSpec(),
        inputs=[Tensor(name="image", dtype="float32", shape=[None, 3, 224, 224])],
        outputs=[Tensor(name="logits", dtype="float32", shape=[None, 10], role="logits")],
        requirements=["torch"], framework_versions={"torch": torch.__version__},
    )


class SlowClassifier:
    """A picklable iris-like classifier that sleeps ``delay`` seconds per batch (timeouts, queueing, drain tests)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.classes_ = np.arange(3)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import time

        time.sleep(self.delay)
        out = np.zeros((len(x), 3), np.float32)
        out[:, 0] = 1.0
        return out


def slow_pickle(folder: Path, delay: float, version: str = "1.0.0") -> Manifest:
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(SlowClassifier(delay)))
    return _manifest(
        folder, "model.pkl", name="slow", version=version, format="pickle", source_format="pickle",
        task="classification", class_labels=IRIS_LABELS, feature_names=IRIS_FEATURES,
        inputs=[Tensor(name="input", dtype="float32", shape=[None, 4])],
        outputs=[Tensor(name="label", dtype="int64", shape=[None], role="label"),
                 Tensor(name="probabilities", dtype="float32", shape=[None, 3], role="probabilities")],
    )
