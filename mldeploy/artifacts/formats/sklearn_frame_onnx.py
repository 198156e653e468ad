"""A DataFrame pipeline (``sklearn_frame``) → ONNX with skl2onnx: one graph input per column, so the image needs
onnxruntime only (no pandas, no scikit-learn).

Each column becomes a ``[N, 1]`` graph input of its name: ``tensor(string)`` for a string column, ``tensor(int64)``
for an integer one (``model.inputs``; ``tensor(float)`` where skl2onnx cannot mix it with float columns), else
``tensor(float)``. The contract (model.json ``inputs``) stays the
DataFrame's (float64 / string ``[N]``); ``runtime.loaders.records_onnx.Feed`` maps the fields onto the graph, and
``run`` here uses the same feed for the parity check. skl2onnx imputes strings by value only, so a string
``SimpleImputer`` of NaN is converted with ``MISSING_TEXT`` as its missing value (the feed sends that for a null).
Parity is checked as for every format (``packager._produce``), and here also with a missing value in each column
that takes one (``check_missing``): a conversion that answers a null differently is refused, and the pickle served.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.formats.base import Served, Signature
from mldeploy.artifacts.formats.sklearn_frame import STRING, _walk, _with_missing
from runtime.loaders.records_onnx import MISSING_TEXT, Feed
from runtime.manifest import Tensor

OPSET = {"": 17, "ai.onnx.ml": 3}
FILE = "model.onnx"


def initial_types(columns: list[Tensor], ints: bool = True) -> list[tuple[str, Any]]:
    """skl2onnx's typed inputs, one ``[None, 1]`` per column (an integer column as ``tensor(float)`` too unless
    ``ints``)."""
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    kinds = {STRING: StringTensorType, "object": StringTensorType}
    return [(t.name, (kinds.get(t.dtype) or (Int64TensorType if ints and t.dtype.startswith(("int", "uint"))
                                               else FloatTensorType))([None, 1])) for t in columns]


def _is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


@contextlib.contextmanager
def _string_imputers_by_value(model: Any) -> Iterator[None]:
    """While converting: every fitted string ``SimpleImputer`` of NaN/None imputes ``MISSING_TEXT`` instead."""
    patched = [est for est in _walk(model) if type(est).__name__ == "SimpleImputer" and _is_nan(
        getattr(est, "missing_values", 0)) and np.asarray(getattr(est, "statistics_", [])).dtype.kind in "OUS"]
    before = [est.missing_values for est in patched]
    try:
        for est in patched:
            est.missing_values = MISSING_TEXT
        yield
    finally:
        for est, value in zip(patched, before, strict=True):
            est.missing_values = value


def run(path: Path, columns: list[Tensor], x: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[Tensor]]:
    """The converted graph's outputs on ``x`` (fed exactly as the server feeds it), and its output tensors."""
    from mldeploy.artifacts.formats.onnx_fmt import OnnxRunner

    runner = OnnxRunner(path)
    feed = Feed(runner.session.get_inputs(), (t.name for t in columns if t.allow_missing))
    return runner.run(feed(x)), runner.tensors()[1]


def check_missing(predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], path: Path,
                  columns: list[Tensor], x: dict[str, np.ndarray], sig: Signature, tolerance: Any) -> None:
    """Raise ValueError unless the graph answers like the pipeline with a missing value in each column that takes
    one (alone in a row, and all at once in the first)."""
    from mldeploy.artifacts.parity import compare

    nullable = [t.name for t in columns if t.allow_missing]
    rows = len(next(iter(x.values()))) if x else 0
    for which in ([{c} for c in nullable] + ([set(nullable)] if len(nullable) > 1 else [])) if rows else []:
        xm = _with_missing(x, columns, which, slice(None))
        report = compare(predict(xm), run(path, columns, xm)[0], sig.outputs, tolerance, rows)
        if not report.passed:
            raise ValueError(f"the ONNX graph answers a missing value in {sorted(which)} differently from the "
                             f"pipeline: max abs error {report.max_abs_error:.3g}, argmax agreement "
                             f"{report.argmax_agreement}")


def convert(model: Any, columns: list[Tensor], out_dir: Path, sig: Signature,
            predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], x: dict[str, np.ndarray] | None,
            tolerance: Any) -> Served:
    """Write ``model.onnx`` (one input per column) and check it on missing values; raises what skl2onnx raises
    for what it cannot convert (the packager then serves the pickle, saying why)."""
    from skl2onnx import to_onnx

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    with warnings.catch_warnings(), _string_imputers_by_value(model):
        warnings.simplefilter("ignore")
        try:
            onx = to_onnx(model, initial_types=initial_types(columns), options=options, target_opset=OPSET)
        except Exception:  # e.g. an int64 and a float column into one transformer: "should have the same type"
            if not any(t.dtype.startswith(("int", "uint")) for t in columns):
                raise
            onx = to_onnx(model, initial_types=initial_types(columns, ints=False), options=options,
                          target_opset=OPSET)  # integers as tensor(float): exact up to 2**24, parity checks it
    path = out_dir / FILE
    path.write_bytes(onx.SerializeToString())
    if x is not None:
        try:
            check_missing(predict, path, columns, x, sig, tolerance)
        except Exception:
            path.unlink(missing_ok=True)
            raise
    return Served(format="onnx", file=FILE)
