"""Request bodies → named numpy batches, checked against the manifest's input signature.

Accepted: JSON rows / records / columns / named tensors, ``application/x-npy``, raw bytes
(``application/octet-stream`` + ``X-Tensor-Dtype``/``X-Tensor-Shape``) and images (multipart upload or a raw
``image/jpeg``/``image/png`` body, decoded and resized per the manifest's image spec). Every failure raises
``InputError`` naming the offending field, which the app answers with 422. Sizes are checked before anything is
allocated: rows from the JSON list length / ``.npy`` header / ``X-Tensor-Shape``, pixels from the image header
(``PayloadTooLargeError``, 413).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import orjson

from runtime.manifest import Manifest, Tensor

Inputs = dict[str, np.ndarray]
MAX_IMAGE_PIXELS = 40_000_000
NPY_MAX_HEADER = 65536 + 12
IMAGE_TYPES = ("image/jpeg", "image/png")


class PayloadTooLargeError(Exception):
    """413: more rows, pixels or response bytes than this server accepts per request."""


class UnsupportedMediaTypeError(Exception):
    """415: the body's Content-Type is not one the runtime decodes for this model."""


class InputError(Exception):
    def __init__(self, loc: list[str | int], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc, self.msg = loc, msg

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": self.msg, "type": "value_error"}]


class InputSpec:
    """Pre-computed view of a manifest's inputs for fast per-request checks."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.tensors: list[Tensor] = manifest.inputs
        self.by_name = {t.name: t for t in manifest.inputs}
        self.single = manifest.inputs[0] if len(manifest.inputs) == 1 else None
        self.dtypes = {t.name: np.dtype(t.dtype) if t.dtype != "string" else np.dtype(object) for t in self.tensors}
        self.features = manifest.feature_names or []
        if any(t.dtype == "string" for t in self.tensors):  # text models: string inputs checked by runtime.text
            from runtime.text import text_check
            self.check = text_check(self)  # type: ignore[method-assign]
        self.max_rows = 1 << 62  # set by the repository (runtime.limits)
        self.max_image_pixels = MAX_IMAGE_PIXELS
        self.max_request_pixels = 2 * MAX_IMAGE_PIXELS

    def check_rows(self, rows: int, what: str = "rows") -> None:
        """Refuse more than ``max_rows`` rows (413) before the array is built."""
        if rows > self.max_rows:
            raise PayloadTooLargeError(f"{rows} {what} in one request; this server accepts at most "
                                       f"{self.max_rows} (runtime.max_rows_per_request): split the request")

    def rows_of_shape(self, name: str, shape: tuple[int, ...] | list[int]) -> int:
        """Rows a tensor of ``shape`` holds for input ``name`` (1 when sent without the batch axis)."""
        want = len(self.by_name[name].shape)
        return int(shape[0]) if len(shape) >= want and shape else 1

    def check(self, name: str, arr: np.ndarray, loc: list[str | int]) -> np.ndarray:
        t = self.by_name[name]
        want = len(t.shape)
        if arr.size == 0:
            raise InputError(loc, "empty input: send at least one row")
        if arr.ndim == want - 1:
            arr = arr[None, ...]  # a single row without the batch axis
        if arr.ndim != want:
            raise InputError(loc, f"expected {want} dimensions {_fmt(t.shape)}, got shape {list(arr.shape)}")
        for axis, (dim, got) in enumerate(zip(t.shape, arr.shape, strict=True)):
            if axis and dim not in (None, -1) and dim != got:
                raise InputError(loc, f"axis {axis} has {got} values; the model expects {dim} {_fmt(t.shape)}")
        dtype = self.dtypes[name]
        if arr.dtype != dtype:
            if dtype.kind in "fiu" and arr.dtype.kind not in "fiub":
                raise InputError(loc, f"values must be numbers ({t.dtype}), got {arr.dtype.name} data")
            if dtype.kind in "iu" and arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
                raise InputError(loc, f"values must be integers ({t.dtype})")
            arr = arr.astype(dtype)
        if dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputError(loc, "values must be finite numbers (no NaN/Infinity)")
        return arr


def _fmt(shape: list[int | None]) -> str:
    dims = ("batch" if i == 0 else ("?" if d in (None, -1) else str(d)) for i, d in enumerate(shape))
    return "[" + ", ".join(dims) + "]"


def _array(value: Any, loc: list[str | int], dtype: np.dtype) -> np.ndarray:
    try:
        # floats parse straight into the model dtype; ints go through check() so 1.5 is refused, not truncated
        arr = np.asarray(value, dtype=dtype if dtype.kind == "f" else None)
    except (ValueError, TypeError) as e:
        raise InputError(loc, f"not a rectangular array of numbers: {str(e).splitlines()[0]}") from None
    if arr.dtype == object and dtype.kind != "O":
        raise InputError(loc, "not a rectangular array of numbers (rows of different lengths?)")
    return arr


def parse_json(body: bytes, spec: InputSpec) -> Inputs:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InputError(["body"], f"invalid JSON: {e}") from None
    if isinstance(doc, list):
        doc, key = {"inputs": doc}, "inputs"
    elif isinstance(doc, dict):
        key = next((k for k in ("inputs", "instances") if k in doc), None)
        if key is None:
            raise InputError(["body"], "expected an object with 'inputs' (rows, records, columns or named tensors)")
    else:
        raise InputError(["body"], "expected a JSON object with 'inputs'")
    value = doc[key]
    if isinstance(value, dict):
        return _from_mapping(value, spec, key)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _from_records(value, spec, key)
    if spec.single is None:
        names = ", ".join(spec.by_name)
        raise InputError([key], f"this model has several inputs ({names}); send an object keyed by input name")
    name = spec.single.name
    spec.check_rows(_json_rows(value, len(spec.single.shape)))
    return {name: spec.check(name, _array(value, [key], spec.dtypes[name]), [key])}


def _json_rows(value: Any, rank: int) -> int:
    """Rows of a nested JSON list for an input of ``rank`` dims: its length, or 1 for a row without batch axis."""
    if not isinstance(value, list):
        return 1
    depth, v = 0, value
    while isinstance(v, list) and v and depth < rank:
        depth, v = depth + 1, v[0]
    return len(value) if depth >= rank else 1


def _from_mapping(value: dict[str, Any], spec: InputSpec, key: str) -> Inputs:
    if set(value) <= set(spec.by_name):
        missing = [n for n in spec.by_name if n not in value]
        if missing:
            raise InputError([key, missing[0]], "missing input")
        for n, v in value.items():
            spec.check_rows(_json_rows(v, len(spec.by_name[n].shape)))
        out = {n: spec.check(n, _array(v, [key, n], spec.dtypes[n]), [key, n]) for n, v in value.items()}
        rows = {a.shape[0] for a in out.values()}
        if len(rows) > 1:
            raise InputError([key], f"inputs have different row counts {sorted(rows)}")
        return out
    if spec.features and spec.single is not None:  # columns: {"feature": [values...]}
        missing = [f for f in spec.features if f not in value]
        extra = [f for f in value if f not in spec.features]
        if extra:
            raise InputError([key, extra[0]], f"unknown feature; expected {spec.features}")
        if missing:
            raise InputError([key, missing[0]], "missing feature column")
        spec.check_rows(max((len(v) if isinstance(v, list) else 1) for v in value.values()))
        cols = []
        for f in spec.features:
            col = _array(value[f], [key, f], spec.dtypes[spec.single.name])
            if col.ndim == 0:
                col = col[None]
            if col.ndim != 1:
                raise InputError([key, f], "a column must be a flat list of values")
            cols.append(col)
        if len({len(c) for c in cols}) > 1:
            raise InputError([key], "feature columns have different lengths")
        name = spec.single.name
        return {name: spec.check(name, np.stack(cols, axis=1), [key])}
    raise InputError([key, next(iter(value), "")], f"unknown input; expected one of {list(spec.by_name)}")


def _from_records(rows: list[Any], spec: InputSpec, key: str) -> Inputs:
    if not spec.features or spec.single is None:
        raise InputError([key, 0], "records (objects per row) need feature_names in model.json")
    spec.check_rows(len(rows))
    table = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError([key, i], "every row must be an object when the first row is")
        try:
            table.append([row[f] for f in spec.features])
        except KeyError as e:
            raise InputError([key, i, e.args[0]], "missing feature") from None
        if len(row) != len(spec.features):
            extra = next(f for f in row if f not in spec.features)
            raise InputError([key, i, extra], f"unknown feature; expected {spec.features}")
    name = spec.single.name
    return {name: spec.check(name, _array(table, [key], spec.dtypes[name]), [key])}


def parse_npy(body: bytes, spec: InputSpec) -> Inputs:
    if spec.single is None:
        raise InputError(["body"], "application/x-npy carries one tensor; this model has several inputs")
    header = npy_header(body)
    if header is None:
        raise InputError(["body"], "not a valid .npy array: truncated header")
    check_npy_length(header, len(body))
    spec.check_rows(spec.rows_of_shape(spec.single.name, header[0]))
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(["body"], f"not a valid .npy array: {e}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(["body"], "expected a single .npy array, not an .npz archive")
    return {spec.single.name: spec.check(spec.single.name, arr, ["body"])}


def check_npy_length(header: tuple[tuple[int, ...], np.dtype, int], body_length: int) -> None:
    """422 unless the header's shape × itemsize is exactly the bytes that follow it."""
    shape, dtype, offset = header
    declared = math.prod(shape) * dtype.itemsize
    if declared != body_length - offset:
        raise InputError(["body"], f"the .npy header declares shape {list(shape)} of {dtype} ({declared} bytes) "
                                   f"but {body_length - offset} bytes follow it")


def npy_header(prefix: bytes) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """(shape, dtype, data offset) from the start of a ``.npy`` body; ``None`` while the header is incomplete.

    ``np.load`` allocates what the header declares before reading, so the caller checks the shape (rows, and
    shape × itemsize against the bytes that follow) first. Raises InputError for anything but a v1/v2 header of
    a numeric dtype.
    """
    from numpy.lib import format as npy_format

    if len(prefix) < 12:
        if len(prefix) >= 6 and not prefix.startswith(b"\x93NUMPY"):
            raise InputError(["body"], "not a valid .npy array: bad magic string")
        return None
    size = 2 if prefix[6:8] == b"\x01\x00" else 4
    offset = 8 + size + int.from_bytes(prefix[8:8 + size], "little")
    if offset > NPY_MAX_HEADER:
        raise InputError(["body"], f"not a valid .npy array: header of {offset} bytes")
    if len(prefix) < offset:
        return None
    fp = io.BytesIO(prefix[:offset])
    try:
        version = npy_format.read_magic(fp)
        reader = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _, dtype = reader(fp)
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError, …
        raise InputError(["body"], f"not a valid .npy array: {e}") from None
    if dtype.hasobject:
        raise InputError(["body"], "object arrays are not accepted; send numbers")
    return tuple(shape), dtype, offset


def parse_raw(body: bytes, headers, spec: InputSpec) -> Inputs:
    if spec.single is None:
        raise InputError(["body"], "raw tensors carry one input; this model has several inputs")
    name = spec.single.name
    dtype_s = headers.get("x-tensor-dtype") or spec.single.dtype
    try:
        dtype = np.dtype(dtype_s)
    except (TypeError, ValueError, SyntaxError):
        raise InputError(["header", "X-Tensor-Dtype"], f"unknown dtype {dtype_s!r}") from None
    if dtype.kind not in "biuf" or dtype.itemsize == 0:  # 'U'/'S'/'V'/'O'/structured: not a raw tensor
        raise InputError(["header", "X-Tensor-Dtype"], f"{dtype_s!r} is not a numeric dtype (e.g. float32, int64)")
    shape_s = headers.get("x-tensor-shape")
    if not shape_s:
        raise InputError(["header", "X-Tensor-Shape"], "required with application/octet-stream, e.g. '1,3,224,224'")
    try:
        shape = [int(s) for s in shape_s.replace("x", ",").split(",") if s.strip()]
    except ValueError:
        raise InputError(["header", "X-Tensor-Shape"], f"{shape_s!r} is not a comma-separated list of ints") from None
    spec.check_rows(spec.rows_of_shape(name, shape))
    if len(body) % dtype.itemsize:
        raise InputError(["body"], f"{len(body)} bytes is not a whole number of {dtype.name} values")
    count = len(body) // dtype.itemsize
    try:
        arr = np.frombuffer(body, dtype=dtype).reshape(shape)
    except ValueError:
        raise InputError(["header", "X-Tensor-Shape"], f"shape {shape} does not fit {count} {dtype.name} values") \
            from None
    return {name: spec.check(name, arr, ["body"])}
