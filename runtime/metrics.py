"""Prometheus metrics (single- or multi-process) and per-feature input drift against the manifest baseline.

With several uvicorn workers ``__main__`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts, so every
worker writes its samples to shared files and ``/metrics`` on any worker reports the whole process group.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import threading
import time
from collections import deque
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


_bisect = bisect.bisect_left
FLUSH_INTERVAL_S = 0.1  # buffered samples reach the Prometheus values (shared files with several workers) this often


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """All server metrics, registered on a private registry (several apps can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mldeploy_requests", "HTTP requests", ["route", "status", "version"], registry=r)
        self.latency = Histogram(
            "mldeploy_request_latency_seconds", "Request latency", ["route", "version"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "mldeploy_batch_size", "Rows per batched inference", ["version"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "mldeploy_inference_seconds", "Model time per batch", ["version"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "mldeploy_queue_depth", "Requests waiting for inference", ["version"],
            multiprocess_mode="livesum", registry=r,
        )
        self.in_flight = Gauge("mldeploy_in_flight", "Requests being served", multiprocess_mode="livesum", registry=r)
        self.load_seconds = Gauge(
            "mldeploy_model_load_seconds", "Model load + warm-up time", ["version"], multiprocess_mode="max", registry=r
        )
        self.ready = Gauge("mldeploy_ready", "1 when loaded, warmed and not draining", multiprocess_mode="min",
                           registry=r)
        self.confidence = Histogram(
            "mldeploy_prediction_confidence", "Top-1 probability per row", ["version"],
            buckets=CONFIDENCE_BUCKETS, registry=r,
        )
        self.low_confidence = Counter(
            "mldeploy_low_confidence", "Rows whose top-1 probability is below the threshold", ["version"], registry=r
        )
        self.rejected = Counter("mldeploy_rejected", "Requests refused before inference", ["reason"], registry=r)
        self.feature_mean = Gauge(
            "mldeploy_feature_mean", "Running mean of an input feature", ["version", "feature"],
            multiprocess_mode="mostrecent", registry=r,
        )
        self.feature_std = Gauge(
            "mldeploy_feature_std", "Running std of an input feature", ["version", "feature"],
            multiprocess_mode="mostrecent", registry=r,
        )
        self.feature_drift = Gauge(
            "mldeploy_feature_drift_zscore",
            "|running mean - baseline mean| / baseline std per feature (input drift)", ["version", "feature"],
            multiprocess_mode="mostrecent", registry=r,
        )

        self._buffers: list[_Buffered] = []
        self._buffers_lock = threading.Lock()
        self._gauges: list[tuple[Any, Any]] = []  # (gauge child, () -> value) refreshed at each flush
        self._on_flush: list[Any] = []  # (now) -> None, called at each flush (drift publication)
        self._before_flush: list[Any] = []  # () -> None, called first at each flush (batched request samples)
        self.flushed_at = 0.0

    # -- the hot path: per-request samples are tallied in process memory and pushed every FLUSH_INTERVAL_S
    # (each prometheus value update takes a lock, and with several workers a pid check and an mmap write)

    def counter(self, child: Any) -> BufferedCounter:
        """A buffered view of a labelled counter child."""
        return self._register(BufferedCounter(child))

    def histogram(self, child: Any) -> BufferedHistogram | Any:
        """A buffered view of a labelled histogram child (the child itself on a prometheus_client without the
        bucket internals it relies on)."""
        if not isinstance(getattr(child, "_buckets", None), list) or not hasattr(child, "_sum") \
                or not hasattr(child, "_upper_bounds"):
            return child
        return self._register(BufferedHistogram(child))

    def gauge(self, child: Any, read: Any) -> None:
        """Set ``child`` to ``read()`` at every flush (queue depths, requests in flight)."""
        with self._buffers_lock:
            self._gauges.append((child, read))

    def on_flush(self, callback: Any) -> None:
        """Call ``callback(now)`` (``time.monotonic()``) at every flush, after the buffered samples."""
        with self._buffers_lock:
            self._on_flush.append(callback)

    def before_flush(self, callback: Any) -> None:
        """Call ``callback()`` at the start of every flush, before the buffered samples are pushed (a source that
        batches its own samples adds them to the buffers then)."""
        with self._buffers_lock:
            self._before_flush.append(callback)

    def _register(self, buf: _Buffered) -> Any:
        with self._buffers_lock:
            self._buffers.append(buf)
        return buf

    def maybe_flush(self, now: float) -> None:
        if now - self.flushed_at >= FLUSH_INTERVAL_S:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Push every buffered sample to its Prometheus value (any thread)."""
        self.flushed_at = now = time.monotonic() if now is None else now
        with self._buffers_lock:
            first = list(self._before_flush)
        for callback in first:
            callback()
        with self._buffers_lock:
            buffers, gauges, hooks = list(self._buffers), list(self._gauges), list(self._on_flush)
        for buf in buffers:
            buf.flush()
        for child, read in gauges:
            child.set(read())
        for hook in hooks:
            hook(now)

    async def flush_periodically(self) -> None:
        """Flush every ``FLUSH_INTERVAL_S`` (also while no request comes) until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def render(self) -> bytes:
        self.flush()
        if multiprocess_enabled():
            return render_multiprocess()
        return generate_latest(self.registry)


class _Buffered:
    """Samples appended to a deque by any thread without a lock (``deque.append`` is atomic); ``flush`` (any
    thread, one at a time: the lock) takes the samples present when it starts and pushes them to ``child``."""

    __slots__ = ("child", "lock", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.lock = threading.Lock()
        self.pending: deque[float] = deque()

    def _take(self) -> list[float]:
        """The samples present now, oldest first (appends meanwhile stay for the next flush); under ``lock``."""
        pending = self.pending
        popleft = pending.popleft
        return [popleft() for _ in range(len(pending))]

    def flush(self) -> None:
        raise NotImplementedError


class BufferedCounter(_Buffered):
    __slots__ = ("inc",)

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        append = self.pending.append
        self.inc = lambda amount=1.0: append(amount)  # one C call on the hot path
        """``inc(amount=1.0)``: count ``amount``."""

    def flush(self) -> None:
        with self.lock:
            amounts = self._take()
        if amounts:
            self.child.inc(math.fsum(amounts))


class BufferedHistogram(_Buffered):
    """Observations appended in process memory; ``flush`` sorts them into buckets (numpy for many) and adds the
    counts and sum to the child's bucket and sum values. An observation is a deque append."""

    __slots__ = ("bounds", "observe", "observe_many", "_np_bounds")

    def __init__(self, child: Any) -> None:
        super().__init__(child)
        self.bounds = list(child._upper_bounds)
        self._np_bounds = np.asarray(self.bounds, dtype=np.float64)
        self.observe = self.pending.append
        """``observe(amount)``: one observation."""
        self.observe_many = self.pending.extend
        """``observe_many(amounts)``: several (``deque.extend`` is atomic too)."""

    def counts(self, values: list[float]) -> list[int]:
        """Per bucket: how many of ``values`` fall in it (the first bucket with value <= bound, as observe()
        does); one spare slot past the last bound (never flushed: the last bound is +Inf)."""
        if len(values) < 64:
            counts = [0] * (len(self.bounds) + 1)
            bounds = self.bounds
            for v in values:
                if v == v:  # NaN: no bucket (as observe()), numpy's sort order puts it in the spare slot
                    counts[_bisect(bounds, v)] += 1
            return counts
        idx = np.searchsorted(self._np_bounds, np.asarray(values, dtype=np.float64), side="left")
        return np.bincount(idx, minlength=len(self.bounds) + 1).tolist()

    def flush(self) -> None:
        with self.lock:
            values = self._take()
        if not values:
            return
        buckets = self.child._buckets
        for i, c in enumerate(self.counts(values)[:len(buckets)]):
            if c:
                buckets[i].inc(c)
        self.child._sum.inc(math.fsum(values))


def render_multiprocess() -> bytes:
    """Every worker's samples from ``PROMETHEUS_MULTIPROC_DIR`` (served by the supervisor with several workers)."""
    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry)
    return generate_latest(registry)


class DriftTracker:
    """Running per-feature mean/std (Chan's parallel update, per batch) compared with the manifest baseline.

    Gauges are refreshed at most once per ``interval_s``, from the metrics flush (``Metrics.on_flush``), so wide
    inputs cost nothing per request. Nothing is published (nor shown by ``stats``) before ``min_count`` rows: with
    few rows the means are the callers' inputs.
    """

    FOLD_ROWS = 512

    def __init__(self, metrics: Metrics, version: str, names: list[str], baseline_mean: list[float] | None,
                 baseline_std: list[float] | None, interval_s: float = 1.0, min_count: int = 100) -> None:
        self.metrics, self.version, self.names = metrics, version, names
        self.base_mean = np.asarray(baseline_mean, dtype=np.float64) if baseline_mean else None
        self.base_std = np.asarray(baseline_std, dtype=np.float64) if baseline_std else None
        self.n = 0
        self.mean = np.zeros(len(names))
        self.m2 = np.zeros(len(names))
        self.interval_s = interval_s
        self.min_count = min_count
        self._last = 0.0
        self._lock = threading.Lock()
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        metrics.on_flush(self._tick)

    def update(self, x: np.ndarray) -> None:
        """Queue a batch; batches are folded into the running statistics every ``FOLD_ROWS`` rows (or when read,
        or published) — a list append per request instead of a numpy reduction."""
        if x.ndim != 2 or x.shape[1] != len(self.names) or x.dtype.kind not in "iufc":
            return
        with self._lock:
            self._pending.append(x)
            self._pending_rows += x.shape[0]
            full = self._pending_rows >= self.FOLD_ROWS
        if full:
            self._fold()

    def _tick(self, now: float) -> None:
        """At a metrics flush: publish if ``interval_s`` has passed since the last publication."""
        if now - self._last >= self.interval_s:
            self._last = now
            self.publish()

    def _fold(self) -> None:
        with self._lock:
            pending, self._pending, self._pending_rows = self._pending, [], 0
            if not pending:
                return
            xb = (pending[0] if len(pending) == 1 else np.concatenate(pending)).astype(np.float64, copy=False)
            nb = xb.shape[0]
            mb = xb.mean(axis=0)
            m2b = ((xb - mb) ** 2).sum(axis=0)
            n = self.n + nb
            delta = mb - self.mean
            self.mean = self.mean + delta * nb / n
            self.m2 = self.m2 + m2b + delta**2 * self.n * nb / n
            self.n = n

    def stats(self) -> dict[str, dict[str, float]]:
        self._fold()
        with self._lock:
            std = np.sqrt(self.m2 / max(self.n - 1, 1))
            mean = self.mean.copy()
            n = self.n
        if n < self.min_count:
            return {name: {"count": n} for name in self.names}
        out = {}
        for i, name in enumerate(self.names):
            entry = {"mean": float(mean[i]), "std": float(std[i]), "count": n}
            if self.base_mean is not None and self.base_std is not None and i < len(self.base_mean):
                entry["drift_z"] = float(abs(mean[i] - self.base_mean[i]) / max(self.base_std[i], 1e-12))
            out[name] = entry
        return out

    def publish(self) -> None:
        self._fold()
        if self.n < self.min_count:
            return
        for name, s in self.stats().items():
            self.metrics.feature_mean.labels(self.version, name).set(s["mean"])
            self.metrics.feature_std.labels(self.version, name).set(s["std"])
            if "drift_z" in s:
                self.metrics.feature_drift.labels(self.version, name).set(s["drift_z"])
