"""scikit-learn style estimators from pickle, joblib or skops files (``predict`` / ``predict_proba``)."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest, never_trusted


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
        return _read_skops(manifest, path)
    if manifest.format == "joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - the artifact's sha256 was verified against model.json


def _read_skops(manifest: Manifest, path: Path) -> Any:
    """Load with exactly the types `mldeploy package` vetted (model.json ``trusted_types``), nothing more."""
    import skops.io as sio

    trusted = list(manifest.trusted_types or [])
    if forbidden := sorted(t for t in trusted if never_trusted(t)):
        raise ModelLoadError(f"{path}: model.json trusts types that run code or touch the system "
                             f"({', '.join(forbidden)}); refusing to load it")
    found = sio.get_untrusted_types(file=path)  # reads the schema only; constructs nothing
    if extra := sorted(set(found) - set(trusted)):
        raise ModelLoadError(f"{path}: the skops file contains types that model.json does not trust "
                             f"({', '.join(extra)}); refusing to load it (the file changed after `mldeploy "
                             "package`, or this server's skops differs from the one that packaged it: re-package)")
    return sio.load(path, trusted=trusted)


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
