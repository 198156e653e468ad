"""scikit-learn style estimators from pickle, joblib or skops files (``predict`` / ``predict_proba``).

A model that takes a pandas DataFrame (model.json ``dataframe: true``: a ColumnTransformer selecting columns by
name, string columns) has one input per column; ``to_frame`` builds the DataFrame from them (pandas is imported
only for such models, and the image has it only for them). A column with ``categories`` (a pandas ``category``
column in training) is rebuilt as a ``pandas.Categorical`` of those categories. Where such a model converted to
ONNX, ``runtime.loaders.records_onnx`` serves it instead.
"""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest, Tensor, never_trusted


def to_frame(inputs: dict[str, np.ndarray], columns: list[Tensor]) -> Any:
    """The DataFrame a model fitted on one takes: the columns in ``columns`` order, ``float64`` or strings.

    A missing value (JSON null, ``allow_missing`` inputs only) is NaN in a float column and also NaN in a string
    column: pandas' own marker there (``read_csv`` writes it), which scikit-learn's imputers detect even in a
    column of nothing else (a ``None`` reaches the encoder as an unknown category then). A column with
    ``categories`` becomes a ``pandas.Categorical`` of exactly those (the inputs layer refused any other value)."""
    import pandas as pd

    data = {}
    for t in columns:
        col = np.asarray(inputs[t.name])
        col = col.reshape(len(col), -1)[:, 0] if col.ndim > 1 else col
        if t.dtype in ("string", "object"):
            col = col.astype(object)
            if t.allow_missing and (nulls := np.equal(col, None)).any():
                col = np.where(nulls, np.nan, col)
            if t.categories is not None:
                col = pd.Categorical(col, categories=t.categories)
        else:
            col = col.astype(t.dtype)
        data[t.name] = col
    return pd.DataFrame(data, columns=[t.name for t in columns])


class EstimatorModel:
    def __init__(self, estimator: Any, manifest: Manifest) -> None:
        self.estimator = estimator
        self.input_name = manifest.inputs[0].name
        self.columns = list(manifest.inputs) if manifest.dataframe else None
        self.label_out = next((o.name for o in manifest.outputs if o.role in ("label", "prediction", None)), None)
        self.proba_out = next((o.name for o in manifest.outputs if o.role == "probabilities"), None)
        if self.proba_out and not hasattr(estimator, "predict_proba"):
            raise ModelLoadError(f"model.json declares output {self.proba_out!r} but the model has no predict_proba")

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = to_frame(inputs, self.columns) if self.columns else inputs[self.input_name]
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
