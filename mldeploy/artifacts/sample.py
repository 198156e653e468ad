"""Example inputs: read ``model.sample_input`` (.json/.npy), generate inputs from a signature, baseline stats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.errors import ArtifactError
from runtime.manifest import Baseline, Tensor

MAX_SAMPLE_ROWS = 8
MAX_SAMPLE_VALUES = 4096  # per row: larger inputs (images) are not embedded in model.json
_DYNAMIC_DIM = 8


def _load(path: Path) -> Any:
    """The sample file's content: an array (.npy), {name: array} (.npz) or JSON (a request body's ``inputs``)."""
    field = "model.sample_input"
    if not path.is_file():
        raise ArtifactError(f"{field}: {path} does not exist", hint="fix the path or remove model.sample_input")
    try:
        if path.suffix == ".npy":
            raw: Any = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ArtifactError(f"{field}: cannot read {path}: {e}", hint="use a .json or .npy file") from e
    if isinstance(raw, dict) and "inputs" in raw and isinstance(raw["inputs"], dict | list):
        raw = raw["inputs"]  # the request body shape the server accepts
    return raw


def _records(raw: Any) -> bool:
    return isinstance(raw, list) and bool(raw) and isinstance(raw[0], dict)


def _columns(raw: Any, inputs: list[Tensor]) -> bool:
    """``{feature: [values]}``: flat JSON lists under names that are not all input names."""
    return (isinstance(raw, dict) and bool(raw) and not set(raw) <= {t.name for t in inputs}
            and all(isinstance(v, list) and not any(isinstance(e, list | dict) for e in v) for v in raw.values()))


def sample_keys(path: Path, inputs: list[Tensor]) -> list[str] | None:
    """The field names of a sample given as records ``[{name: value}, …]`` or columns ``{name: [values]}``
    (in the file's order); None for arrays and ``{input: rows}``."""
    raw = _load(path)
    if _records(raw):
        return [str(k) for k in raw[0]]
    if _columns(raw, inputs):
        return [str(k) for k in raw]
    return None


def _from_records(raw: Any, inputs: list[Tensor], names: list[str] | None, where: str) -> Any:
    """Records or columns → ``{input: rows}`` in the order of ``names`` (a mapping of input names is kept)."""
    if not (_records(raw) or _columns(raw, inputs)):
        return raw
    if not names:
        raise ArtifactError(f"{where}: records/columns need feature names", hint="set model.feature_names")
    if _records(raw):
        for i, rec in enumerate(raw):
            if not isinstance(rec, dict):
                raise ArtifactError(f"{where}: record {i} is a {type(rec).__name__}, not an object like record 0")
            _same_fields(list(rec), names, f"{where}: record {i}")
        cols = {n: [rec[n] for rec in raw] for n in names}
    else:
        _same_fields(list(raw), names, f"{where}: the columns")
        cols = {n: raw[n] if isinstance(raw[n], list) else [raw[n]] for n in names}
        if len({len(c) for c in cols.values()}) > 1:
            raise ArtifactError(f"{where}: the columns have different lengths "
                                f"({', '.join(f'{n}: {len(c)}' for n, c in cols.items())})")
    if len(inputs) == 1:
        return {inputs[0].name: [list(row) for row in zip(*cols.values(), strict=True)]}
    return {t.name: [[v] for v in cols[t.name]] if len(t.shape) == 2 else cols[t.name] for t in inputs}


def _same_fields(got: list[str], names: list[str], what: str) -> None:
    missing = [n for n in names if n not in got]
    extra = [k for k in got if k not in names]
    if missing or extra:
        parts = ([f"is missing fields {missing}"] if missing else []) + (
            [f"has unexpected fields {extra}"] if extra else [])
        raise ArtifactError(f"{what} {' and '.join(parts)}; the model's features are {names}",
                            hint="give every record the model's feature names (model.feature_names or the names "
                            "the model was trained with)")


def read_sample(path: Path, inputs: list[Tensor], names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a sample file: ``.npy`` (single input), ``.npz`` or ``.json`` (``{input: rows}``, plain rows, records
    ``[{feature: value}, …]`` or columns ``{feature: [values]}``, the latter two ordered by ``names``)."""
    field = "model.sample_input"
    raw = _from_records(_load(path), inputs, names, f"{field} ({path.name})")
    if not isinstance(raw, dict):
        if len(inputs) != 1:
            raise ArtifactError(f"{field}: the model has {len(inputs)} inputs; give a mapping "
                                f"{{{', '.join(t.name for t in inputs)}}} in {path.name}")
        raw = {inputs[0].name: raw}
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        if spec.name not in raw:
            raise ArtifactError(f"{field}: {path.name} has no input {spec.name!r} (has: {', '.join(map(str, raw))})")
        try:
            arr = np.asarray(raw[spec.name], dtype=spec.dtype if spec.dtype != "string" else object)
        except (ValueError, TypeError) as e:
            raise ArtifactError(f"{field}: input {spec.name!r} in {path.name} is not a {spec.dtype} array: {e}") from e
        if arr.ndim == 1 and len(inputs) > 1 and spec.shape[1:] == [1]:
            arr = arr[:, None]  # one column per input: [v, …] is N rows of one value
        elif arr.ndim == len(spec.shape) - 1:
            arr = arr[None, ...]
        _check_shape(arr, spec, f"{field} ({path.name})")
        out[spec.name] = arr
    return out


def _check_shape(arr: np.ndarray, spec: Tensor, where: str) -> None:
    if arr.ndim != len(spec.shape) or any(d not in (None, -1) and d != n for d, n in zip(spec.shape, arr.shape,
                                                                                           strict=True)):
        want = "×".join("N" if d in (None, -1) else str(d) for d in spec.shape)
        raise ArtifactError(f"{where}: input {spec.name!r} has shape {'×'.join(map(str, arr.shape))}, the model "
                            f"expects {want}")


def generate(inputs: list[Tensor], rows: int, seed: int = 0,
             like: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Deterministic random inputs matching the signature (drawn around ``like``'s mean/std when given)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = [rows] + [_DYNAMIC_DIM if d in (None, -1) else d for d in spec.shape[1:]]
        ref = like.get(spec.name) if like else None
        if spec.dtype.startswith(("int", "uint")):
            hi = int(ref.max()) + 1 if ref is not None and ref.size else 10
            out[spec.name] = rng.integers(0, max(hi, 1), size=shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif spec.dtype == "string" and spec.categories:  # a category column: its categories, each in turn
            out[spec.name] = np.asarray(spec.categories, dtype=object)[np.arange(int(np.prod(shape))) % len(
                spec.categories)].reshape(shape)
        elif spec.dtype == "string" and ref is not None and len(ref):  # more rows like the sample's own texts
            out[spec.name] = ref[np.arange(rows) % len(ref)]
        elif spec.dtype == "string":  # [N] or [N, k]: texts in every cell
            out[spec.name] = texts(int(np.prod(shape)), rng).reshape(shape)
        elif ref is not None and ref.size and ref.ndim >= 1:
            mean, std = ref.mean(axis=0), ref.std(axis=0)
            out[spec.name] = (mean + rng.standard_normal(shape) * np.where(std > 0, std, 1.0)).astype(spec.dtype)
        else:
            out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return out


_WORDS = ("the", "a", "model", "service", "was", "quick", "slow", "and", "friendly", "order", "arrived", "late",
          "price", "quality", "is", "not", "very", "good", "bad", "great", "battery", "screen", "works", "never",
          "support", "delivery", "on", "time", "i", "love", "this", "product", "hate", "it", "okay", "expected",
          "more", "beautiful", "design", "broken", "2024", "café", "naïve", "!", "?", "déjà-vu", "e-mail", "x")


def texts(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Deterministic texts of 1 to 300 words (the longest past any small model's maximum length: truncation)."""
    lengths = [300 if i % 8 == 7 else int(rng.integers(1, 40)) for i in range(rows)]
    return np.asarray([" ".join(rng.choice(_WORDS, size=n)) for n in lengths], dtype=object)


def parity_inputs(inputs: list[Tensor], sample: dict[str, np.ndarray] | None, rows: int) -> dict[str, np.ndarray]:
    """The sample rows, topped up with generated rows (around the sample's statistics) to ``rows``."""
    if sample is None:
        return generate(inputs, rows)
    have = min(len(v) for v in sample.values())
    if have >= rows:
        return {k: v[:rows] for k, v in sample.items()}
    extra = generate(inputs, rows - have, like=sample)
    return {k: np.concatenate([sample[k][:have], extra[k]]) for k in sample}


def baseline(sample: dict[str, np.ndarray] | None, layout: str | None = None) -> Baseline | None:
    """Per-feature mean/std of the (single, numeric) sample input; per channel for images."""
    if not sample or len(sample) != 1:
        return None
    arr = next(iter(sample.values()))
    if arr.dtype.kind not in "fiub" or arr.ndim < 2:
        return None
    arr = arr.astype(np.float64)
    if arr.ndim == 2:
        flat = arr
    elif arr.ndim == 4:
        axis = 3 if layout == "NHWC" else 1
        flat = np.moveaxis(arr, axis, -1).reshape(-1, arr.shape[axis])
    else:
        flat = arr.reshape(arr.shape[0], -1)
    return Baseline(mean=[round(float(x), 6) for x in flat.mean(axis=0)],
                    std=[round(float(x), 6) for x in flat.std(axis=0)], count=int(arr.shape[0]))


def embeddable(sample: dict[str, np.ndarray] | None) -> dict[str, Any] | None:
    """≤ 8 rows as JSON lists, or None when a row is too large (images: the server generates zeros)."""
    if not sample:
        return None
    if any(np.size(v[0]) > MAX_SAMPLE_VALUES for v in sample.values() if len(v)):  # np.size: text rows are str
        return None
    return {k: _shortest(v[:MAX_SAMPLE_ROWS]) for k, v in sample.items()}


def _shortest(arr: np.ndarray) -> Any:
    """JSON lists with the shortest decimal that round-trips (5.1, not 5.099999904632568 for float32)."""
    if arr.dtype == np.float32 or arr.dtype == np.float16:
        return np.vectorize(float, otypes=[object])(arr.astype(str)).tolist() if arr.size else arr.tolist()
    return arr.tolist()
