"""Open Inference Protocol tensors: datatype names ↔ numpy, JSON ``data`` and the binary tensor extension codec.

Binary layout (Triton's ``binary_tensor_data`` extension): the body is the JSON header followed by each binary
tensor's raw bytes in order, C order, little endian; ``BYTES`` elements are a 4-byte little-endian length and the
bytes. Every failure raises ``InputError`` naming the field (answered 400 by the protocol's error format).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from runtime.inputs import InputError

Loc = list[str | int]
BYTES = "BYTES"
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    BYTES: np.dtype(object),
}
_BY_NUMPY = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items() if name != BYTES}
_ORJSON_NATIVE = frozenset("?bBhHiIlLqQefd")  # numpy type chars orjson serialises without tolist()
MAX_RANK = 32


def datatype_of(dtype: np.dtype | str) -> str:
    """The protocol datatype of a numpy dtype or a manifest dtype name (``string``/objects/text → ``BYTES``)."""
    if isinstance(dtype, str):
        if dtype in ("string", "object", "str", "bytes"):
            return BYTES
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            return BYTES
    if dtype.kind in "OUS":
        return BYTES
    return _BY_NUMPY.get((dtype.kind, dtype.itemsize), BYTES)


def check_shape(shape: Any, loc: Loc) -> list[int]:
    """A request tensor's ``shape``: a list of at most 32 non-negative ints."""
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise InputError(loc, f"must be a list of at most {MAX_RANK} non-negative integers")
    return shape


def element_count(shape: list[int]) -> int:
    return math.prod(shape)


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for v in value:
            _flatten(v, out)
    else:
        out.append(value)


def from_json(data: Any, datatype: str, shape: list[int], loc: Loc) -> np.ndarray:
    """``data`` (flat or nested, row-major) → an array of ``shape``; coerces numbers to ``datatype``."""
    if not isinstance(data, list):
        data = [data]
    count = element_count(shape)
    if datatype == BYTES:
        flat: list[Any] = []
        _flatten(data, flat)
        if not all(isinstance(v, str) for v in flat):
            raise InputError(loc, "BYTES data must be strings")
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
    else:
        dtype = DATATYPES[datatype]
        try:
            # floats parse straight into their dtype; ints and bools are checked before the cast (1.5 is refused)
            arr = np.asarray(data, dtype=dtype if dtype.kind == "f" else None)
        except (ValueError, TypeError, OverflowError) as e:
            raise InputError(loc, f"not a rectangular array of {datatype} values: {str(e).splitlines()[0]}") \
                from None
        if arr.dtype != dtype:
            arr = _coerce(arr, dtype, datatype, loc)
    if arr.size != count:
        raise InputError(loc, f"shape {shape} holds {count} values; data has {arr.size}")
    return arr.reshape(shape)


def _coerce(arr: np.ndarray, dtype: np.dtype, datatype: str, loc: Loc) -> np.ndarray:
    kind = arr.dtype.kind
    if kind not in "biuf" or (dtype.kind == "b" and kind == "f"):
        raise InputError(loc, f"values must be {datatype}, got {arr.dtype.name if kind != 'O' else 'mixed'} data")
    if dtype.kind in "iub" and kind == "f" and not np.all(np.mod(arr, 1) == 0):
        raise InputError(loc, f"values must be integers ({datatype})")
    if dtype.kind == "b" and kind in "iu" and not np.isin(arr, (0, 1)).all():
        raise InputError(loc, "BOOL values must be true/false (or 0/1)")
    if dtype.kind in "iu" and arr.size and kind in "iuf":
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise InputError(loc, f"values out of range for {datatype}")
    return arr.astype(dtype)


def binary_size(datatype: str, shape: list[int]) -> int | None:
    """Bytes a binary tensor of fixed-size ``datatype`` must hold (None for ``BYTES``: variable length)."""
    return None if datatype == BYTES else element_count(shape) * DATATYPES[datatype].itemsize


def from_binary(raw: memoryview, datatype: str, shape: list[int], loc: Loc) -> np.ndarray:
    """Raw tensor bytes → an array of ``shape`` (``BYTES`` elements decoded as UTF-8 text)."""
    count = element_count(shape)
    if datatype == BYTES:
        return _decode_bytes(raw, count, loc).reshape(shape)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InputError(loc, f"shape {shape} of {datatype} needs {count * dtype.itemsize} bytes; "
                              f"binary_data_size is {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype, count=count)
    if not arr.flags.aligned:
        arr = arr.copy()
    return arr.reshape(shape)


def _decode_bytes(raw: memoryview, count: int, loc: Loc) -> np.ndarray:
    out = np.empty(count, dtype=object)
    pos, end = 0, len(raw)
    for i in range(count):
        if pos + 4 > end:
            raise InputError(loc, f"BYTES tensor ends after {i} of {count} elements")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > end:
            raise InputError(loc, f"BYTES element {i} declares {n} bytes past the end of the tensor")
        try:
            out[i] = bytes(raw[pos:pos + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(loc, f"BYTES element {i} is not UTF-8 text") from None
        pos += n
    if pos != end:
        raise InputError(loc, f"{end - pos} bytes left after the {count} BYTES elements")
    return out


def to_binary(arr: np.ndarray) -> bytes:
    """An output array's raw bytes (C order, little endian; ``BYTES``: length-prefixed elements)."""
    if datatype_of(arr.dtype) == BYTES:
        parts = []
        for v in arr.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    dtype = DATATYPES[datatype_of(arr.dtype)]
    return np.ascontiguousarray(arr, dtype=dtype).tobytes()


def to_json(arr: np.ndarray) -> Any:
    """An output array as flat row-major JSON ``data`` (a numpy array orjson serialises, or a list)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.dtype.char in _ORJSON_NATIVE and flat.dtype.isnative:
        return flat
    if flat.dtype.kind in "OUS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return flat.tolist()
