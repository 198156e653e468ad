"""Per-request size limits derived from the task's memory: rows per request and the per-row cost estimate.

Formula (documented in ``ServingConfig.max_rows_per_request``): a quarter of the memory limit is the budget of
one request; a row costs 4× its input bytes (body, parsed array, dtype cast, batch concat) plus 2 KiB for its
formatted answer (Python objects for predictions/probabilities/top-k and the JSON bytes, measured at ~1.2 KiB on
a 3-class model). The result is clamped to [``ROWS_FLOOR``, ``ROWS_CEILING``].
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from runtime.manifest import Manifest

ROWS_FLOOR = 16
ROWS_CEILING = 100_000
REQUEST_SHARE = 0.25
OUTPUT_ROW_BYTES = 2048
DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024  # aws.memory's default, when no limit is visible
_CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit_bytes(memory_mib: int | None = None, cgroup_files: tuple[str, ...] = _CGROUP_FILES) -> int:
    """``memory_mib`` (``MLDEPLOY_MEMORY_MIB``, set by the task definition), else the cgroup limit, else the
    physical memory, else 1 GiB."""
    if memory_mib:
        return memory_mib * 1024 * 1024
    for path in cgroup_files:
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # v1 reports "no limit" as a huge number, v2 as "max"
            return int(raw)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY_BYTES


def input_row_bytes(m: Manifest) -> int:
    """Bytes of one input row: every input's non-batch dims (dynamic = 1) × itemsize; images per the image spec."""
    if m.image is not None:
        return m.image.width * m.image.height * m.image.channels * 4
    total = 0
    for t in m.inputs:
        itemsize = 8 if t.dtype in ("string", "object") else _itemsize(t.dtype)
        total += itemsize * math.prod(d if d not in (None, -1) else 1 for d in t.shape[1:])
    return max(total, 1)


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize or 8
    except TypeError:
        return 8


def default_max_rows(memory_bytes: int, row_bytes: int) -> int:
    """The rows one request may carry: ``REQUEST_SHARE`` of memory / (4 × row bytes + 2 KiB), clamped."""
    rows = int(memory_bytes * REQUEST_SHARE / (4 * row_bytes + OUTPUT_ROW_BYTES))
    return max(ROWS_FLOOR, min(ROWS_CEILING, rows))
