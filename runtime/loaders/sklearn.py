"""scikit-learn style estimators from pickle, joblib or skops files (``predict`` / ``predict_proba``)."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest


class EstimatorModel:
    def __init__(self, estimator: Any, manifest: Manifest) -> None:
        self.estimator = estimator
        self.input_name = manifest.inputs[0].name
        self.label_out = next((o.name for o in manifest.outputs if o.role in ("label", "prediction", None)), None)
        self.proba_out = next((o.name for o in manifest.outputs if o.role == "probabilities"), None)
        if self.proba_out and not hasattr(estimator, "predict_proba"):
            raise ModelLoadError(f"model.json declares output {self.proba_out!r} but the model has no predict_proba")

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs[self.input_name]
        out: dict[str, np.ndarray] = {}
        if self.proba_out:
            proba = np.asarray(self.estimator.predict_proba(x))
            out[self.proba_out] = proba
            if self.label_out:
                out[self.label_out] = np.asarray(self.estimator.classes_)[proba.argmax(axis=1)]
        elif self.label_out:
            out[self.label_out] = np.asarray(self.estimator.predict(x))
        return out


def _read(manifest: Manifest, path: Path) -> Any:
    if manifest.format == "skops":
        import skops.io as sio

        # the types were audited by `mldeploy package` and the file's sha256 was verified against model.json
        return sio.load(path, trusted=sio.get_untrusted_types(file=path))
    if manifest.format == "joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - the artifact's sha256 was verified against model.json


def load(manifest: Manifest, path: Path, threads: int) -> EstimatorModel:
    try:
        estimator = _read(manifest, path)
    except ModelLoadError:
        raise
    except Exception as e:  # unpickling can raise anything
        raise ModelLoadError(f"{path}: cannot load {manifest.format} model: {type(e).__name__}: {e}") from None
    if hasattr(estimator, "n_jobs"):
        with contextlib.suppress(ValueError, AttributeError):
            estimator.set_params(n_jobs=1)  # batching gives the parallelism; avoid joblib pools per request
    return EstimatorModel(estimator, manifest)
