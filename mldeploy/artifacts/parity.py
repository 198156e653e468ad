"""Compare the original model's outputs with the converted model's: max abs/rel error, argmax agreement."""

from __future__ import annotations

from collections.abc import Mapping

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
