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
from typing import Any

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


class _Reservoir:
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


class EmfAggregator:
    """Collects per-version model metrics; ``flush()`` writes EMF lines (called periodically and at shutdown)."""

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

    def _slot(self, version: str) -> dict[str, Any]:
        slot = self._data.get(version)
        if slot is None:
            slot = self._data[version] = {"latency": _Reservoir(), "confidence": _Reservoir(), "low": 0,
                                          "errors": 0}
        return slot

    def request(self, version: str, latency_ms: float, ok: bool) -> None:
        with self._lock:
            slot = self._data.get(version) or self._slot(version)
            slot["latency"].add(latency_ms)  # rounded when flushed (only the ≤ 100 kept values)
            if not ok:
                slot["errors"] += 1

    def confidences(self, version: str, values: list[float]) -> None:
        threshold = self.threshold
        with self._lock:
            slot = self._data.get(version) or self._slot(version)
            add = slot["confidence"].add
            for v in values:
                add(v)
                if v < threshold:
                    slot["low"] += 1

    def confidence(self, version: str, value: float) -> None:
        """``confidences`` of one value."""
        with self._lock:
            slot = self._data.get(version) or self._slot(version)
            slot["confidence"].add(value)
            if value < self.threshold:
                slot["low"] += 1

    def flush(self) -> int:
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


async def flush_periodically(emf: EmfAggregator, interval_s: float) -> None:
    """Flush ``emf`` every ``interval_s`` (off the event loop) until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(emf.flush)
