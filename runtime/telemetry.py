"""Structured JSON logs (one object per line, with the request id) and CloudWatch Embedded Metric Format lines.

EMF lines are plain stdout log lines that CloudWatch Logs turns into metrics: no AWS API call is ever made from
the server. Samples are aggregated per version and flushed every ``interval_s`` as one line whose latency and
confidence values are a uniform reservoir of at most 100 samples (EMF's per-line array limit) plus exact counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

EMF_MAX_VALUES = 100
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # we write our own access line with the request id


_random = random.random
_BULK = 32  # reservoir draws of at least this many values go through numpy


class _Reservoir:
    """A uniform sample of at most ``EMF_MAX_VALUES`` of the values added (Algorithm R) and their exact count."""

    __slots__ = ("count", "values")

    def __init__(self) -> None:
        self.count = 0
        self.values: list[float] = []

    def add(self, v: float) -> None:
        self.count += 1
        if len(self.values) < EMF_MAX_VALUES:
            self.values.append(v)
        else:
            j = int(_random() * self.count)  # noqa: S311 - sampling, not security (one C call, not randrange)
            if j < EMF_MAX_VALUES:
                self.values[j] = v

    def extend(self, vs: list[float], scale: float = 1.0) -> None:
        """``add(v * scale)`` for each of ``vs`` in order, the draws made together (numpy for many): item number
        ``n`` (1-based, over all items added) replaces slot ``j = floor(u * n)`` if ``j < EMF_MAX_VALUES``."""
        values = self.values
        n0 = self.count
        self.count = n0 + len(vs)
        room = EMF_MAX_VALUES - len(values)
        if room > 0:
            head, vs = vs[:room], vs[room:]
            values.extend(head if scale == 1.0 else [v * scale for v in head])
            n0 += len(head)
        if not vs:
            return
        if len(vs) < _BULK:
            for k, v in enumerate(vs, n0 + 1):
                j = int(_random() * k)  # noqa: S311 - sampling, not security
                if j < EMF_MAX_VALUES:
                    values[j] = v * scale
            return
        draws = _rng.random(len(vs)) * np.arange(n0 + 1, n0 + len(vs) + 1, dtype=np.float64)
        for i in np.flatnonzero(draws < EMF_MAX_VALUES).tolist():  # in order: a later item wins its slot
            values[int(draws[i])] = vs[i] * scale


_rng = np.random.default_rng()


class EmfAggregator:
    """Collects per-version model metrics; ``flush()`` writes EMF lines (called periodically and at shutdown).

    A sample is a deque append (no lock, no reservoir draw per request): ``fold()`` moves the pending samples into
    the per-version counts and reservoirs — at every ``flush()``, and from the serving bookkeeping at each metrics
    flush (``runtime.http.middleware.Serving.fold``), so that few samples wait in memory. ``before_flush`` callbacks
    (sources that batch their own samples) run first at each ``flush()``."""

    def __init__(self, namespace: str, service: str, low_confidence_threshold: float, stream=None) -> None:
        # app/env dimensions match the CloudWatch dashboard's SEARCH('{mldeploy,app,env} …'); the ECS task
        # definition sets MLDEPLOY_APP / MLDEPLOY_ENV, locally they default to the model name and "local".
        self.namespace, self.service = namespace, service
        self.app = os.environ.get("MLDEPLOY_APP") or service
        self.env = os.environ.get("MLDEPLOY_ENV") or "local"
        self.threshold = low_confidence_threshold
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        self._requests: deque[tuple[str, float, bool]] = deque()  # (version, latency ms, ok)
        self._confidence: deque[tuple[str, float]] = deque()  # (version, value)
        self._confidences: deque[tuple[str, list[float]]] = deque()  # (version, values)
        self._before_flush: list[Callable[[], None]] = []

    def before_flush(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at the start of every ``flush()`` (it may add samples)."""
        self._before_flush.append(callback)

    def _slot(self, version: str) -> dict[str, Any]:
        slot = self._data.get(version)
        if slot is None:
            slot = self._data[version] = {"latency": _Reservoir(), "confidence": _Reservoir(), "low": 0,
                                          "errors": 0}
        return slot

    def request(self, version: str, latency_ms: float, ok: bool) -> None:
        self._requests.append((version, latency_ms, ok))

    def add_requests(self, version: str, latencies: list[float], errors: int, scale: float = 1.0) -> None:
        """Count ``len(latencies)`` requests of ``version`` (latencies × ``scale`` in ms), ``errors`` of them
        failed."""
        with self._lock:
            slot = self._data.get(version) or self._slot(version)
            slot["latency"].extend(latencies, scale)  # rounded when flushed (only the ≤ 100 kept values)
            slot["errors"] += errors

    def confidences(self, version: str, values: list[float]) -> None:
        self._confidences.append((version, values))

    def confidence(self, version: str, value: float) -> None:
        """``confidences`` of one value."""
        self._confidence.append((version, value))

    def fold(self) -> None:
        """Move the pending samples into the per-version counts and reservoirs (any thread)."""
        with self._lock:
            requests, confidence, confidences = (_take(self._requests), _take(self._confidence),
                                                 _take(self._confidences))
            if not (requests or confidence or confidences):
                return
            threshold = self.threshold
            latencies: dict[str, list[float]] = {}
            errors: dict[str, int] = {}
            for version, latency_ms, ok in requests:
                got = latencies.get(version)
                if got is None:
                    got = latencies[version] = []
                    errors[version] = 0
                got.append(latency_ms)
                if not ok:
                    errors[version] += 1
            values: dict[str, list[float]] = {}
            for version, value in confidence:
                got = values.get(version)
                if got is None:
                    got = values[version] = []
                got.append(value)
            for version, many in confidences:
                got = values.get(version)
                if got is None:
                    got = values[version] = []
                got.extend(many)
            for version, got in latencies.items():
                slot = self._data.get(version) or self._slot(version)
                slot["latency"].extend(got)
                slot["errors"] += errors[version]
            for version, got in values.items():
                slot = self._data.get(version) or self._slot(version)
                slot["confidence"].extend(got)
                slot["low"] += (int(np.count_nonzero(np.asarray(got, dtype=np.float64) < threshold))
                                if len(got) >= _BULK else sum(v < threshold for v in got))

    def flush(self) -> int:
        for callback in list(self._before_flush):
            callback()
        self.fold()
        with self._lock:
            data, self._data = self._data, {}
        lines = 0
        for version, slot in data.items():
            metrics = [
                {"Name": "Latency", "Unit": "Milliseconds"},
                {"Name": "Requests", "Unit": "Count"},
                {"Name": "Errors", "Unit": "Count"},
                {"Name": "LowConfidence", "Unit": "Count"},
            ]
            doc: dict[str, Any] = {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {"Namespace": self.namespace, "Dimensions": [["app", "env"], ["app", "env", "Version"]],
                         "Metrics": metrics}
                    ],
                },
                "app": self.app,
                "env": self.env,
                "Version": version,
                "Latency": [round(v, 3) for v in slot["latency"].values],
                "Requests": slot["latency"].count,
                "Errors": slot["errors"],
                "LowConfidence": slot["low"],
            }
            if slot["confidence"].count:
                metrics.append({"Name": "Confidence", "Unit": "None"})
                doc["Confidence"] = [round(v, 4) for v in slot["confidence"].values]
            self.stream.write(orjson.dumps(doc).decode() + "\n")
            lines += 1
        if lines:
            self.stream.flush()
        return lines


def _take(pending: deque[Any]) -> list[Any]:
    """The items present now, oldest first (appends meanwhile stay); ``deque.popleft`` is atomic."""
    popleft = pending.popleft
    return [popleft() for _ in range(len(pending))]


async def flush_periodically(emf: EmfAggregator, interval_s: float) -> None:
    """Flush ``emf`` every ``interval_s`` (off the event loop) until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(emf.flush)
