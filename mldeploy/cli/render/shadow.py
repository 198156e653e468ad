"""``canary --report``: the shadow queue, from the runtime's ``GET /shadow`` ``queue`` object
(``runtime.shadow.ShadowEvaluator._queue_doc``: count and byte bounds, what waits, offers offered and dropped)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUEUE_KEYS = ("capacity", "depth", "bytes_capacity", "bytes", "offered", "dropped", "dropped_bytes")


def queue_doc(queue: Mapping[str, Any] | None) -> dict[str, int] | None:
    """The queue object of the ``--json`` report: every ``QUEUE_KEYS`` key an integer (0 when a runtime older
    than the byte budget does not send it); None when there is no queue (AWS: CloudWatch has none)."""
    if not queue:
        return None
    return {k: int(queue.get(k) or 0) for k in QUEUE_KEYS}


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def queue_line(queue: Mapping[str, Any]) -> str:
    """``queue: 3/64 waiting (1.2 MiB of 64.0 MiB), 120 offered, dropped 5 (2 over the byte budget)``."""
    q = queue_doc(queue) or dict.fromkeys(QUEUE_KEYS, 0)
    held = f" ({_mib(q['bytes'])} of {_mib(q['bytes_capacity'])})" if q["bytes_capacity"] else ""
    return (f"queue: {q['depth']}/{q['capacity']} waiting{held}, {q['offered']} offered, dropped {q['dropped']} "
            f"({q['dropped_bytes']} over the byte budget)")


def report_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``workflows.release.shadow_report``'s document with its ``queue`` normalised (``queue_doc``)."""
    return {**doc, "queue": queue_doc(doc.get("queue"))}
