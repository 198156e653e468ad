"""Compare the original model's outputs with the converted model's: max abs/rel error, argmax agreement; and time
one single-row prediction of the served model (``parity.single_row_ms``, which ``mldeploy cost`` turns into a
capacity estimate until ``mldeploy bench`` measures one)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from mldeploy.config.schema import Parity
from runtime.manifest import ParityReport, Tensor


def _pairs(original: Mapping[str, np.ndarray], converted: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """Match outputs by name when the names agree, else by position."""
    if set(original) == set(converted):
        return [(k, k) for k in original]
    if len(original) != len(converted):
        raise ValueError(f"the converted model has {len(converted)} outputs, the original {len(original)}")
    return list(zip(original, converted, strict=True))


def compare(original: Mapping[str, np.ndarray], converted: Mapping[str, np.ndarray], outputs: list[Tensor],
            tolerance: Parity, samples: int) -> ParityReport:
    """Numeric outputs must satisfy ``|conv - orig| <= atol + rtol * |orig|``; labels must agree on
    ``min_argmax_agreement`` of the rows, as must the argmax of probabilities/logits.

    ``max_rel_error`` divides by ``max(|orig|, atol)`` so that near-zero references do not explode it.
    """
    roles = {t.name: t.role for t in outputs}
    max_abs = max_rel = 0.0
    agreements: list[float] = []
    close = True
    for name_o, name_c in _pairs(original, converted):
        a = np.asarray(original[name_o])
        b = np.asarray(converted[name_c])
        if a.size != b.size:
            raise ValueError(f"output {name_o!r}: shape {a.shape} vs converted {b.shape}")
        b = b.reshape(a.shape)
        role = roles.get(name_o) or roles.get(name_c)
        if role == "label" or a.dtype.kind in "USOb" or b.dtype.kind in "USOb":
            agreements.append(float(np.mean(a.astype(str) == b.astype(str))))
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        diff = np.abs(a64 - b64)
        if diff.size:
            max_abs = max(max_abs, float(diff.max()))
            max_rel = max(max_rel, float((diff / np.maximum(np.abs(a64), max(tolerance.atol, 1e-12))).max()))
        close &= bool(np.allclose(b64, a64, atol=tolerance.atol, rtol=tolerance.rtol, equal_nan=True))
        if role in ("probabilities", "logits") and a.ndim == 2 and a.shape[1] > 1:
            agreements.append(float(np.mean(a64.argmax(axis=1) == b64.argmax(axis=1))))
    agreement = min(agreements) if agreements else None
    passed = close and (agreement is None or agreement >= tolerance.min_argmax_agreement)
    return ParityReport(samples=samples, max_abs_error=max_abs, max_rel_error=max_rel,
                        argmax_agreement=agreement, passed=passed)


def time_single_row(call: Callable[[], object], runs: int = 20, budget_s: float = 0.5,
                    slow_ms: float = 100.0) -> float:
    """Median wall time of ``call()`` in milliseconds, after one warm-up call.

    Up to ``runs`` timed calls, stopping once ``budget_s`` is spent or, after 3, when the median exceeds
    ``slow_ms`` (a slow model's figure is already precise enough); never fewer than 3.
    """
    call()
    start = time.perf_counter()
    times: list[float] = []
    while len(times) < runs:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and (time.perf_counter() - start > budget_s
                                or statistics.median(times) * 1000 > slow_ms):
            break
    return max(round(statistics.median(times) * 1000, 4), 0.0001)


def onnx_single_row(path: Path, x: Mapping[str, np.ndarray]) -> Callable[[], object]:
    """A call that runs the ONNX file on the first row of ``x`` in a one-thread CPU session (for timing)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    values = [np.asarray(v)[:1] for v in x.values()]
    row = {k: np.asarray(v)[:1] for k, v in x.items()} if set(names) == set(x) else \
        dict(zip(names, values, strict=True))
    from runtime.loaders.records_onnx import Feed

    row = Feed(session.get_inputs())(row)  # a DataFrame model's columns: the graph's dtypes, [1, 1] (as served)
    return lambda: session.run(None, row)


def served_single_row_ms(served_format: str, path: Path, x: Mapping[str, np.ndarray]) -> float | None:
    """One-thread single-row latency of the served model file, or None where there is no cheap way to hold it
    loaded (only ONNX is timed) or the run fails: the figure is an estimate's input, never a reason to fail."""
    if served_format != "onnx":
        return None
    try:
        return time_single_row(onnx_single_row(path, x))
    except Exception:  # noqa: BLE001 - timing is best effort
        return None
