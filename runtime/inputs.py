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
import operator
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
        self.missing = frozenset(t.name for t in self.tensors if t.allow_missing)  # JSON null accepted (NaN)
        self.records = RecordLayout.of(self.features, self.tensors)
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
        if dtype.kind == "f" and not np.isfinite(arr).all():  # only a refusal pays for what follows
            if name not in self.missing:
                raise InputError(loc, "values must be finite numbers (no NaN/Infinity, and no null: this model "
                                      "takes no missing values in this input)")
            if np.isinf(arr).any():
                raise InputError(loc, "values must be numbers or null (no Infinity)")
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
    # numpy turns ["Lyon", 75] into strings ("75"): a number among strings is refused, not stringified
    if dtype.kind == "O" and arr.dtype.kind == "U" and arr.ndim == 1 and isinstance(value, list) and (
            bad := next((i for i, v in enumerate(value) if not isinstance(v, str)), None)) is not None:
        raise InputError([*loc, bad], f"must be a string, got {_json_type(value[bad])}")
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
        records = " or records (one object per row)" if spec.records is not None else ""
        raise InputError([key], f"this model has several inputs ({names}); send an object keyed by input name"
                                f"{records}")
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
        out = {n: _checked(spec, n, v, [key, n]) for n, v in value.items()}
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


def record_kind(names: list[str] | None, tensors: list[Tensor]) -> str | None:
    """``row``: one [N, features] input; ``per-input``: one [N] or [N, 1] input per feature, named as the
    features; None: the model takes no records (no names, or inputs that are not rows of features)."""
    if not names:
        return None
    if len(tensors) == 1 and len(tensors[0].shape) == 2:
        return "row"
    if len(tensors) > 1 and sorted(names) == sorted(t.name for t in tensors) and all(
            len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1) for t in tensors):
        return "per-input"
    return None


class RecordLayout:
    """How records ``[{feature: value, …}, …]`` become input arrays, precomputed once per model version.

    The names are model.json's ``feature_names``, in column order; a record's key order does not matter. Either
    the model has one ``[N, features]`` input (a record is a row), or one input per feature (``[N]``/``[N, 1]``,
    the inputs named as the features: a record is one value per input). Per record: one C-level ``itemgetter``
    call and a length check (O(fields)); the missing/unexpected fields are worked out only for a refused record.
    """

    def __init__(self, names: list[str], per_input: list[Tensor] | None) -> None:
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.per_input = per_input
        get = operator.itemgetter(*names)
        self.get = get if len(names) > 1 else (lambda row: (get(row),))

    @classmethod
    def of(cls, names: list[str], tensors: list[Tensor]) -> RecordLayout | None:
        kind = record_kind(names, tensors)
        if kind is None:
            return None
        by_name = {t.name: t for t in tensors}
        return cls(names, [by_name[n] for n in names] if kind == "per-input" else None)

    def table(self, rows: list[Any], key: str) -> list[tuple[Any, ...]]:
        """One tuple of values per record, in ``names`` order; InputError naming the first bad record."""
        get, n = self.get, len(self.names)
        try:  # n keys, all of them ours (keys are unique): exactly the fields, in any order
            table = [get(row) for row in rows if len(row) == n]
        except (KeyError, TypeError):  # a name missing, or a record that is not an object
            table = []
        if len(table) == len(rows):
            return table
        raise self.refusal(rows, key)

    def refusal(self, rows: list[Any], key: str) -> InputError:
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                return InputError([key, i], f"record {i}: expected an object with the fields {self.names}, got "
                                            f"{_json_type(row)}")
            missing = [f for f in self.names if f not in row]
            extra = [f for f in row if f not in self.index]
            if missing or extra:
                parts = ([f"missing fields {missing}"] if missing else []) + (
                    [f"unexpected fields {extra}"] if extra else [])
                return InputError([key, i, (missing or extra)[0]],
                                  f"record {i}: {'; '.join(parts)}; expected {self.names}")
        return InputError([key], f"records must have the fields {self.names}")  # pragma: no cover


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _from_records(rows: list[Any], spec: InputSpec, key: str) -> Inputs:
    layout = spec.records
    if layout is None:
        why = ("this model has no feature_names in model.json (set model.feature_names and package again)"
               if not spec.features else f"this model's inputs ({', '.join(spec.by_name)}) are not rows of features")
        raise InputError([key, 0], f"records (objects per row) are not accepted: {why}; send rows of values")
    spec.check_rows(len(rows))
    table = layout.table(rows, key)
    if layout.per_input is None:
        name = spec.tensors[0].name
        return {name: spec.check(name, _array(table, [key], spec.dtypes[name]), [key])}
    out: Inputs = {}
    for t, col in zip(layout.per_input, zip(*table, strict=True), strict=True):
        loc: list[str | int] = [key, t.name]
        try:
            if (texts := _texts_or_null(spec, t, col, loc)) is not None:
                out[t.name] = texts if len(t.shape) == 1 else texts[:, None]
                continue
            arr = _array(list(col), loc, spec.dtypes[t.name])
            if arr.ndim != 1:
                raise InputError(loc, "a record's value must be a single value")
            if len(t.shape) == 1:
                out[t.name] = spec.check(t.name, arr, loc)
            elif spec.dtypes[t.name].kind == "O":  # strings: checked as a list of texts, then one per row
                out[t.name] = spec.check(t.name, arr, loc)[:, None]
            else:
                out[t.name] = spec.check(t.name, arr[:, None], loc)
        except InputError as e:
            raise (_bad_value(col, t, key) or e) from None
    return out


def _bad_value(col: tuple[Any, ...], t: Tensor, key: str) -> InputError | None:
    """The first record whose value for per-input field ``t`` has the wrong JSON type (a string in a number
    column, a number in a string column, mixed-type records): a 422 naming the record and the field."""
    text = t.dtype in ("string", "object")
    want = "a string" if text else f"a number ({t.dtype})"
    for i, v in enumerate(col):
        if v is None and not t.allow_missing:
            return InputError([key, i, t.name], f"record {i}: field {t.name!r} is null, but this model has no "
                                                f"imputer for it and cannot take a missing value there: send {want}")
        if v is not None and not (isinstance(v, str) if text else isinstance(v, int | float)
                                  and not isinstance(v, bool)):
            return InputError([key, i, t.name], f"record {i}: field {t.name!r} must be {want}"
                                                f"{' or null' if t.allow_missing else ''}, got {_json_type(v)}")
    return None


def _texts_or_null(spec: InputSpec, t: Tensor, values: tuple[Any, ...] | list[Any],
                   loc: list[str | int]) -> np.ndarray | None:
    """A string input sent with a null in it: an object array of its strings and None (the loader makes those
    NaN) where it takes missing values (``allow_missing``), else an InputError; None for a string input without
    nulls or another input (the usual checks run)."""
    if spec.dtypes[t.name].kind != "O" or None not in values:
        return None
    if t.name not in spec.missing:
        raise InputError([*loc, list(values).index(None)], "is null, but this model has no imputer for this input "
                                                           "and cannot take a missing value: send a string")
    bad = next((i for i, v in enumerate(values) if v is not None and not isinstance(v, str)), None)
    if bad is not None:
        raise InputError([*loc, bad], f"must be a string or null, got {_json_type(values[bad])}")
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    if t.categories is not None:  # a category column: its other values are checked too (runtime.text)
        from runtime.text import check_categories
        check_categories(t.name, arr, loc, frozenset(t.categories), t.categories)
    return arr


def _checked(spec: InputSpec, name: str, value: Any, loc: list[str | int]) -> np.ndarray:
    """One named input of a JSON mapping, checked (a string input that takes missing values may hold nulls)."""
    t = spec.by_name[name]
    if isinstance(value, list) and (texts := _texts_or_null(spec, t, value, loc)) is not None:
        return texts if len(t.shape) == 1 else texts[:, None]
    return spec.check(name, _array(value, loc, spec.dtypes[name]), loc)


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
