"""``model.inputs[].allow_missing``: the configured value, which wins over what ``package`` detects
(``formats.sklearn_frame.allow_missing`` for DataFrame models), and the check that the model really answers a
missing value (NaN; JSON null at the server) where it is set to ``true``: finite outputs from the original model
and from the served one (a conversion), else ``package`` refuses (exit 3, naming the input and the error).
``false`` needs no check: the server refuses null there (422 naming the field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from runtime.manifest import Tensor

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def configured(cfg_inputs: list[Any] | None) -> dict[str, bool]:
    """The inputs whose ``allow_missing`` the config sets (pydantic's fields set), by name."""
    return {t.name: bool(t.allow_missing) for t in cfg_inputs or () if "allow_missing" in t.model_fields_set}


def with_missing(x: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """``x`` with input ``name`` missing: all of row 0, and one value per further row (feature ``i`` in row
    ``i``), so every feature of a ``[N, features]`` input is missing once; other inputs unchanged."""
    out = dict(x)
    col = np.array(x[name], dtype=object if x[name].dtype.kind in "OUS" else x[name].dtype)
    flat = col.reshape(len(col), -1)
    flat[0] = np.nan
    for i in range(min(len(flat) - 1, flat.shape[1])):
        flat[i + 1, i] = np.nan
    out[name] = flat.reshape(col.shape)
    return out


def error(predict: Predict, x: dict[str, np.ndarray], t: Tensor) -> str | None:
    """Why ``predict`` does not answer a missing value in ``t`` (an exception, or NaN/Infinity out), else None."""
    if not (t.dtype.startswith("float") or t.dtype in ("string", "object")):
        return f"a {t.dtype} input cannot hold a missing value (NaN)"
    try:
        out = predict(with_missing(x, t.name))
    except Exception as e:  # the model's own refusal: any type
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    bad = [k for k, v in out.items() if np.asarray(v).dtype.kind == "f" and not np.isfinite(np.asarray(v)).all()]
    return f"output {bad[0]!r} is NaN or infinite" if bad else None


def check(cfg_inputs: list[Any] | None, inputs: list[Tensor], x: dict[str, np.ndarray],
          runs: dict[str, Predict]) -> tuple[str, str] | None:
    """The first input configured ``allow_missing: true`` that one of ``runs`` (``{what: predict}``) does not
    answer: ``(config field, message)``; None when every one is answered."""
    wanted = {n for n, v in configured(cfg_inputs).items() if v}
    by_name = {t.name: t for t in inputs}
    for i, spec in enumerate(cfg_inputs or ()):
        if spec.name not in wanted or spec.name not in by_name or spec.name not in x:
            continue
        for what, predict in runs.items():
            if (why := error(predict, x, by_name[spec.name])) is not None:
                return (f"model.inputs[{i}].allow_missing",
                        f"true, but {what} fails on a missing value in input {spec.name!r}: {why}")
    return None


def check_package(handler: Any, served: Any, folder: Any, cfg_inputs: list[Any] | None, inputs: list[Tensor],
                  x: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """``check`` on the original model and, where it differs, the served one (``handler.run_served``)."""
    if not any(v for v in configured(cfg_inputs).values()):
        return None
    runs: dict[str, Predict] = {"the model": handler.predict}
    if served.format != handler.format:
        runs[f"the served {served.format} model"] = lambda xm: handler.run_served(served, folder, xm)
    return check(cfg_inputs, inputs, x, runs)
