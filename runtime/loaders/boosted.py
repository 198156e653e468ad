"""Gradient-boosted trees in their library's own file format (never pickle).

XGBoost JSON/UBJ (``Booster.save_model``, served with the CPU-only ``xgboost-cpu`` wheel), LightGBM text models
(``Booster.save_model``) and CatBoost ``.cbm``. Classifiers return ``label`` (class index; the response maps it to
``class_labels``) and ``probabilities`` (binary models: two columns); regressors return one column.

``mldeploy package`` uses the same code to check the written file, so what was measured is what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest

FORMATS = ("xgboost", "lightgbm", "catboost")


def read_booster(fmt: str, path: Path, threads: int = 1) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """Load a native model file; return it and a function from a float32 batch to raw outputs
    (class probabilities, a 1-D positive-class probability for binary models, or predictions)."""
    if fmt == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(path))  # JSON or UBJ, told apart by the file extension
        booster.set_param({"nthread": threads})
        return booster, lambda x: np.asarray(booster.inplace_predict(x, validate_features=False))
    if fmt == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        return booster, lambda x: np.asarray(booster.predict(x, num_threads=threads))
    if fmt == "catboost":
        import catboost as cb

        model = cb.CatBoost()
        model.load_model(str(path))
        loss = str(model.get_all_params().get("loss_function", ""))
        kind = "Probability" if loss in ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll") else \
            "RawFormulaVal"
        return model, lambda x: np.asarray(model.predict(x, prediction_type=kind, thread_count=threads))
    raise ModelLoadError(f"{path}: unknown boosted-trees format {fmt!r}")


def as_outputs(raw: np.ndarray, rows: int, *, proba_out: str | None, label_out: str | None,
               pred_out: str | None) -> dict[str, np.ndarray]:
    """Raw library outputs → the manifest's named outputs."""
    raw = np.ascontiguousarray(raw)  # CatBoost returns Fortran-ordered arrays; the response encoder needs C order
    if proba_out:
        p = raw.astype(np.float32)
        if p.ndim == 1 or p.shape[1] == 1:  # binary: probability of class 1
            p = p.reshape(rows)
            p = np.stack([1.0 - p, p], axis=1)
        out = {proba_out: np.ascontiguousarray(p)}
        if label_out:
            out[label_out] = p.argmax(axis=1).astype(np.int64)
        return out
    name = pred_out or label_out or "variable"
    return {name: raw.astype(np.float32).reshape(rows, -1)}


class BoostedModel:
    def __init__(self, fmt: str, path: Path, manifest: Manifest, threads: int) -> None:
        self.booster, self._raw = read_booster(fmt, path, threads)
        self.input_name = manifest.inputs[0].name
        roles = {o.role: o.name for o in manifest.outputs if o.role}
        self.proba_out = roles.get("probabilities")
        self.label_out = roles.get("label")
        self.pred_out = roles.get("prediction") or (manifest.outputs[0].name if not roles else None)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(inputs[self.input_name], dtype=np.float32)
        return as_outputs(self._raw(x), len(x), proba_out=self.proba_out, label_out=self.label_out,
                          pred_out=self.pred_out)


def load(manifest: Manifest, path: Path, threads: int) -> BoostedModel:
    if len(manifest.inputs) != 1:
        raise ModelLoadError(f"{path}: a {manifest.format} model takes one input, model.json lists "
                             f"{len(manifest.inputs)}")
    try:
        return BoostedModel(manifest.format, path, manifest, threads)
    except ModelLoadError:
        raise
    except ImportError as e:
        raise ModelLoadError(f"format {manifest.format!r} needs {e.name!r}, which is not installed in this image "
                             f"(model.json requirements: {', '.join(manifest.requirements) or 'none'})") from None
    except Exception as e:  # the libraries raise their own error types for corrupt files
        raise ModelLoadError(f"{path}: cannot load {manifest.format} model: {type(e).__name__}: {e}") from None
