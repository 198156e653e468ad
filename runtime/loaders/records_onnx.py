"""A scikit-learn DataFrame pipeline converted to ONNX (model.json ``dataframe: true``, ``format: onnx``): records'
fields fed to the graph's inputs by name, with no pandas and no scikit-learn.

The contract keeps the DataFrame's column types (``float64`` / ``string``, shape ``[N]``, ``allow_missing``) so
that it is the same whether the pipeline is served as ONNX or as a pickle; the graph (skl2onnx) takes one
``tensor(float)`` / ``tensor(int64)`` / ``tensor(string)`` ``[N, 1]`` per column. ``Feed`` does the mapping: a
cast, the column axis, and in a string column a missing value (JSON null; NaN at package) becomes
``MISSING_TEXT``, the value the converted string imputers replace (skl2onnx imputes strings by value only, never
NaN: ``mldeploy.artifacts.formats.sklearn_frame_onnx`` converts them with this value as their ``missing_values``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.manifest import Manifest

MISSING_TEXT = "\x00missing"  # never a category a model learned from a DataFrame read from text files
_NUMPY: dict[str, Any] = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                          "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(string)": object,
                          "tensor(float16)": np.float16, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


def _missing_texts(col: np.ndarray) -> np.ndarray:
    """``col`` (object) with None / NaN replaced by ``MISSING_TEXT``."""
    nulls = np.fromiter((v is None or v != v for v in col.ravel()), dtype=bool, count=col.size)  # v != v: NaN
    return np.where(nulls.reshape(col.shape), MISSING_TEXT, col).astype(object) if nulls.any() else col


class Feed:
    """Named columns (``[N]`` or ``[N, 1]``) → the graph's inputs (onnxruntime ``NodeArg``s): dtype, rank, missing
    strings (see the module docstring); an input of another type is passed as it is."""

    def __init__(self, graph_inputs: Iterable[Any], missing: Iterable[str] = ()) -> None:
        self.missing = frozenset(missing)
        self.plan: list[tuple[str, Any, int]] = [(i.name, _NUMPY.get(i.type), len(i.shape)) for i in graph_inputs]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, dtype, rank in self.plan:
            col = np.asarray(inputs[name])
            if dtype is object:
                col = col if col.dtype == object else col.astype(object)
                if name in self.missing:
                    col = _missing_texts(col)
            elif dtype is not None and col.dtype != dtype:
                col = col.astype(dtype)
            if col.ndim == 1 and rank == 2 and dtype is not None:
                col = col[:, None]
            out[name] = col
        return out


class RecordsOnnxModel:
    """``runtime.loaders.onnx``'s model behind a ``Feed`` (thread-safe: the feed keeps no state)."""

    def __init__(self, inner: Any, manifest: Manifest) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.feed = Feed(inner.session.get_inputs(), (t.name for t in manifest.inputs if t.allow_missing))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.predict(self.feed(inputs))


def load(manifest: Manifest, path: Path, threads: int) -> RecordsOnnxModel:
    from runtime.loaders import onnx

    return RecordsOnnxModel(onnx.load(manifest, path, threads), manifest)
