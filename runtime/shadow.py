"""Shadow evaluation: a candidate version answers a sample of live requests *after* the stable answer is sent.

``routing.json`` names the candidate — ``{"weights": {"1.0.0": 100}, "shadow": {"version": "1.1.0", "sample":
0.1}}`` (``runtime.routing.Router.shadow``). ``on_response`` is one of the data plane's after-response hooks
(``InferenceService.after_response``, run by the serving middleware once the answer has been sent): a sampled
stable answer — its version, decoded inputs and outputs — is offered to a queue bounded by count (``queue``)
and by bytes (``queue_bytes``: the offers' input and output ``nbytes``; one request may be as large as
``runtime.max_body_bytes``). An offer that does not fit is dropped (counted, with its reason): shadow work never
waits, never grows past its budget, and never changes an answer. One daemon thread
drains the queue: the first offer of each drain runs alone (its time is the candidate's latency on a real request),
the others with the same shapes in one call; then the thread rests (at least ``REST_MIN_S``, and so that it computes
at most ``BUSY_MAX`` of the time), so under load the queue fills and offers are dropped rather than the stable side
losing CPU (or waiting for the GIL). It records, per
(stable, candidate) pair:

- agreement: the same label per row (classifiers), ``|a - b| <= tolerance * max(1, |a|)`` (regressors);
- shift: the population stability index of the top score over ``BINS`` fixed bins on [0, 1], overall and per
  predicted class (classifiers with probabilities);
- the candidate's latency on real requests (the offers timed alone);
- optionally (``keep`` > 0; never with ``runtime.auth.sensitive_data``) the ``keep`` rows where the two disagree
  most.

Published as Prometheus metrics (on the app's registry), EMF lines (``Shadow*`` in the app's namespace, dimension
``Candidate``) and ``snapshot()`` — the JSON that ``GET /shadow`` on the metrics port returns to the CLI.
With several uvicorn workers each worker shadows its own requests and writes its raw measures (counts, histograms,
latencies, kept rows) to ``shadow-<pid>.json`` in the shared multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``,
at most every ``SHARE_INTERVAL_S``); the supervisor serves ``GET /shadow`` from their sum (``render_shared``), as
it serves ``/metrics`` from the workers' Prometheus files.
With no second version loaded nothing here is built (no hook): the request path does not change.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from prometheus_client import Counter, Gauge, Histogram

from runtime.contract.shadow import QUEUE, QUEUE_BYTES, QUEUE_BYTES_MAX, QUEUE_BYTES_MIN, QUEUE_MAX, QUEUE_MIN
from runtime.metrics import LATENCY_BUCKETS, Metrics

log = logging.getLogger("mldeploy.shadow")
BINS = 10  # top-score bins of width 0.1 on [0, 1]
PSI_MIN_ROWS = 50  # a class's PSI is reported (and gated) once both sides predicted it this often
LATENCY_KEPT = 4096  # candidate latencies kept for the percentiles
DRAIN_MAX = 256  # offers evaluated per wake-up: one timed alone, the others with the same shapes in one call
BUSY_MAX = 0.1  # the worker rests so that it computes at most this share of the time (the stable side's CPU) …
REST_MIN_S = 0.1  # … and at least this long between drains: offers gather and run together (≤ 10 drains a second)
Offer = tuple[str, str, dict[str, np.ndarray], dict[str, np.ndarray]]  # stable, candidate, inputs, stable outputs
SHARE_INTERVAL_S = 0.2  # several workers: each writes its measures to the shared directory at most this often
SHARE_PREFIX = "shadow-"  # shadow-<pid>.json in PROMETHEUS_MULTIPROC_DIR


def offer_bytes(item: Offer) -> int:
    """What one queued offer keeps alive: its input and output arrays' ``nbytes`` (no copy, no walk)."""
    return sum(int(getattr(a, "nbytes", 0)) for part in (item[2], item[3]) for a in part.values())


def _groups(items: list[Offer]) -> list[list[Offer]]:
    """Offers that can be concatenated: same pair, same input/output names, dtypes and non-batch shapes, every
    array batch-first with the offer's row count."""
    groups: dict[Any, list[Offer]] = {}
    for item in items:
        stable, candidate, inputs, outputs = item
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        arrays = [*inputs.items(), *outputs.items()]
        if any(not isinstance(a, np.ndarray) or a.ndim == 0 or a.shape[0] != rows for _, a in arrays):
            key: Any = id(item)  # not stackable: alone
        else:
            key = (stable, candidate, tuple((n, a.dtype.str, a.shape[1:]) for n, a in arrays))
        groups.setdefault(key, []).append(item)
    return list(groups.values())


@dataclass(frozen=True)
class ShadowConfig:
    """The ``shadow`` object of ``routing.json``."""

    version: str
    sample: float = 1.0  # share of the stable side's requests offered
    tolerance: float = 1e-6  # regressors: relative tolerance (absolute below 1)
    keep: int = 0  # most-disagreeing rows kept for inspection (0: none)
    queue: int = QUEUE  # offers waiting for the candidate; the newest is dropped beyond
    queue_bytes: int = QUEUE_BYTES  # bytes (inputs + outputs) the waiting offers may hold; the newest is dropped beyond

    @classmethod
    def parse(cls, doc: Any, versions: list[str]) -> ShadowConfig | None:
        """Validate the ``shadow`` object (None or missing: off); ValueError names the bad key."""
        if doc is None:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
            raise ValueError("shadow must be an object with a version, e.g. {\"version\": \"1.1.0\"}")
        unknown = set(doc) - {"version", "sample", "tolerance", "keep", "queue", "queue_bytes"}
        if unknown:
            raise ValueError(f"shadow has unknown keys {sorted(unknown)}")
        if doc["version"] not in versions:
            raise ValueError(f"shadow version {doc['version']!r} is not loaded ({versions})")
        cfg = cls(doc["version"], float(doc.get("sample", 1.0)), float(doc.get("tolerance", 1e-6)),
                  int(doc.get("keep", 0)), int(doc.get("queue", QUEUE)), int(doc.get("queue_bytes", QUEUE_BYTES)))
        if not 0 < cfg.sample <= 1:
            raise ValueError(f"shadow.sample {cfg.sample} must be in (0, 1]")
        if cfg.tolerance < 0 or not 0 <= cfg.keep <= 1000 or not QUEUE_MIN <= cfg.queue <= QUEUE_MAX:
            raise ValueError("shadow.tolerance must be >= 0, shadow.keep 0..1000, "
                             f"shadow.queue {QUEUE_MIN}..{QUEUE_MAX}")
        if not QUEUE_BYTES_MIN <= cfg.queue_bytes <= QUEUE_BYTES_MAX:
            raise ValueError(f"shadow.queue_bytes {cfg.queue_bytes} must be in {QUEUE_BYTES_MIN}..{QUEUE_BYTES_MAX} "
                             f"(default {QUEUE_BYTES})")
        return cfg


def psi(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (each bin smoothed by 0.5 count)."""
    e = np.asarray(expected, dtype=np.float64) + 0.5
    a = np.asarray(actual, dtype=np.float64) + 0.5
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _bins(scores: np.ndarray) -> np.ndarray:
    return np.minimum((np.clip(scores, 0.0, 1.0) * BINS).astype(np.int64), BINS - 1)


@dataclass
class PairStats:
    """What one (stable, candidate) pair measured."""

    stable: str
    candidate: str
    requests: int = 0
    rows: int = 0
    agreements: int = 0
    errors: int = 0
    stable_hist: dict[str, np.ndarray] = field(default_factory=dict)  # class -> top-score bin counts
    candidate_hist: dict[str, np.ndarray] = field(default_factory=dict)
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_KEPT))  # seconds per request
    worst: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)  # min-heap of disagreements
    seq: int = 0

    def add_hist(self, hist: dict[str, np.ndarray], labels: list[str], scores: np.ndarray) -> None:
        b = _bins(scores)
        total = hist.setdefault("*", np.zeros(BINS, dtype=np.int64))
        total += np.bincount(b, minlength=BINS)
        names = np.asarray(labels, dtype=object)
        for label in set(labels):
            h = hist.setdefault(label, np.zeros(BINS, dtype=np.int64))
            h += np.bincount(b[names == label], minlength=BINS)

    def shift(self) -> dict[str, Any]:
        """PSI overall (``*``) and per class with at least ``PSI_MIN_ROWS`` rows on both sides."""
        if "*" not in self.stable_hist or "*" not in self.candidate_hist:
            return {"psi": None, "per_class": {}, "bins": BINS}
        per = {c: round(psi(h, self.candidate_hist[c]), 6) for c, h in sorted(self.stable_hist.items())
               if c != "*" and c in self.candidate_hist and h.sum() >= PSI_MIN_ROWS
               and self.candidate_hist[c].sum() >= PSI_MIN_ROWS}
        overall = round(psi(self.stable_hist["*"], self.candidate_hist["*"]), 6)
        return {"psi": overall, "max_psi": max([overall, *per.values()]), "per_class": per, "bins": BINS}

    def latency_ms(self) -> dict[str, Any]:
        values = sorted(self.latencies)
        if not values:
            return {"count": 0, "p50": None, "p99": None}

        def pct(q: float) -> float:
            return round(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] * 1000, 3)

        return {"count": len(values), "p50": pct(0.5), "p99": pct(0.99)}

    def state(self) -> dict[str, Any]:
        """The raw measures (what ``merge`` adds up): counts, histograms, latencies, kept rows."""
        return {"stable": self.stable, "candidate": self.candidate, "requests": self.requests, "rows": self.rows,
                "agreements": self.agreements, "errors": self.errors,
                "stable_hist": {c: h.tolist() for c, h in self.stable_hist.items()},
                "candidate_hist": {c: h.tolist() for c, h in self.candidate_hist.items()},
                "latencies": list(self.latencies), "worst": [[sc, sq, row] for sc, sq, row in self.worst]}

    def merge(self, state: dict[str, Any], keep: int) -> None:
        """Add another worker's ``state()`` of the same pair (latencies: the last ``LATENCY_KEPT`` of both; kept
        rows: the ``keep`` most disagreeing)."""
        self.requests += int(state["requests"])
        self.rows += int(state["rows"])
        self.agreements += int(state["agreements"])
        self.errors += int(state["errors"])
        for mine, theirs in ((self.stable_hist, state["stable_hist"]), (self.candidate_hist, state["candidate_hist"])):
            for c, h in theirs.items():
                mine[c] = mine.get(c, np.zeros(BINS, dtype=np.int64)) + np.asarray(h, dtype=np.int64)
        self.latencies.extend(float(v) for v in state["latencies"])
        worst = self.worst + [(float(sc), int(sq), row) for sc, sq, row in state["worst"]]
        self.worst = heapq.nlargest(keep, worst, key=lambda t: (t[0], -t[1])) if keep else []

    def to_json(self, keep_allowed: bool) -> dict[str, Any]:
        return {
            "stable": self.stable, "candidate": self.candidate, "requests": self.requests, "rows": self.rows,
            "agreements": self.agreements, "errors": self.errors,
            "agreement": round(self.agreements / self.rows, 6) if self.rows else None,
            "shift": self.shift(), "candidate_latency_ms": self.latency_ms(),
            "disagreements": [d for _, _, d in sorted(self.worst, key=lambda t: (-t[0], t[1]))]
            if keep_allowed else "not stored (runtime.auth.sensitive_data)",
        }


class ShadowMetrics:
    """The Prometheus side: counters and histograms fed by the worker, gauges refreshed by ``publish``."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        pair = ["stable", "candidate"]
        self.rows = Counter("mldeploy_shadow_rows", "Rows answered by both the stable and the shadow version", pair,
                            registry=r)
        self.agreements = Counter("mldeploy_shadow_agreements", "Shadow rows where both versions agree", pair,
                                  registry=r)
        self.offered = Counter("mldeploy_shadow_offered", "Requests offered to the shadow queue", ["candidate"],
                               registry=r)
        self.dropped = Counter("mldeploy_shadow_dropped", "Shadow offers dropped (queue full: its count or its bytes)",
                               ["candidate"], registry=r)
        self.dropped_bytes = Counter("mldeploy_shadow_dropped_by_bytes", "Of the dropped shadow offers, those past the "
                                     "queue's byte budget (shadow.queue_bytes)", ["candidate"], registry=r)
        self.errors = Counter("mldeploy_shadow_errors", "Shadow inferences that failed", ["candidate"], registry=r)
        self.latency = Histogram("mldeploy_shadow_candidate_latency_seconds", "Candidate model time per request",
                                 ["candidate"], buckets=LATENCY_BUCKETS, registry=r)
        self.agreement = Gauge("mldeploy_shadow_agreement_ratio", "Agreed rows / shadow rows", pair,
                               multiprocess_mode="mostrecent", registry=r)
        self.psi = Gauge("mldeploy_shadow_top_score_psi", "PSI of the top score, candidate vs stable ('*': all)",
                         [*pair, "class"], multiprocess_mode="mostrecent", registry=r)
        self.depth = Gauge("mldeploy_shadow_queue_depth", "Shadow offers waiting", multiprocess_mode="livesum",
                           registry=r)

    def publish(self, pairs: list[PairStats], depth: int) -> None:
        self.depth.set(depth)
        for p in pairs:
            if p.rows:
                self.agreement.labels(p.stable, p.candidate).set(p.agreements / p.rows)
            s = p.shift()
            if s["psi"] is not None:
                self.psi.labels(p.stable, p.candidate, "*").set(s["psi"])
                for c, v in s["per_class"].items():
                    self.psi.labels(p.stable, p.candidate, c).set(v)


class ShadowEvaluator:
    """The queue, the worker thread and the measures of every pair seen since start."""

    def __init__(self, repository: Any, metrics: Metrics, emf: Any = None, *, sensitive: bool = False,
                 emf_interval_s: float = 60.0, share_dir: str | None = None) -> None:
        self.share_dir = share_dir if share_dir is not None else os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self._shared: tuple[Any, ...] | None = None  # (offered, dropped, bytes, rows, config) last written
        self._shared_at = 0.0
        self.repository = repository
        self.router = repository.router
        self.sensitive = sensitive
        self.emf = emf
        self.emf_interval_s = emf_interval_s
        self.prom = ShadowMetrics(metrics)
        self._queue: queue.Queue[Offer] | None = None
        self._capacity = 0
        self._pairs: dict[tuple[str, str], PairStats] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.offered = 0
        self.dropped = 0
        self.dropped_bytes = 0  # of ``dropped``: offers refused by the byte budget
        self._bytes = 0  # what the queued offers hold (inputs + outputs nbytes)
        self._bytes_lock = threading.Lock()  # _bytes: added on the event loop, taken off by the worker
        self._emf_pending: dict[str, dict[str, Any]] = {}
        self._emf_at = time.monotonic()
        self._children: dict[str, tuple[Any, Any]] = {}

    # ---------------------------------------------------------------- request path (event loop)

    def on_response(self, p: Any) -> None:
        """The data plane's after-response hook (``InferenceService.after_response``), with each ``Prediction``
        once its answer has been sent: offer a sampled stable answer to the queue."""
        cfg = self.router.shadow
        if cfg is None or p.version == cfg.version or p.inputs is None:
            return
        if cfg.sample < 1.0 and random.random() >= cfg.sample:  # noqa: S311 - sampling, not security
            return
        self.offer((p.version, cfg.version, p.inputs, p.outputs))

    def offer(self, item: Offer) -> bool:
        """Queue one (stable, candidate, inputs, outputs); False (and counted) when the queue is full."""
        cfg = self.router.shadow
        q = self._queue
        if cfg is None:
            return False
        if q is None or self._capacity != cfg.queue:
            q = self._resize(cfg.queue)
        offered, dropped, over = self._children.get(item[1]) or self._child(item[1])
        self.offered += 1
        offered.inc()
        size = offer_bytes(item)
        with self._bytes_lock:
            fits = self._bytes + size <= cfg.queue_bytes
            if fits:
                self._bytes += size
        if not fits:  # one offer larger than the budget is dropped too
            self.dropped += 1
            self.dropped_bytes += 1
            dropped.inc()
            over.inc()
            return False
        try:
            q.put_nowait(item)
        except queue.Full:
            self._taken(size)
            self.dropped += 1
            dropped.inc()
            return False
        return True

    def _taken(self, size: int) -> None:
        """``size`` bytes left the queue (evaluated, dropped or refused)."""
        with self._bytes_lock:
            self._bytes = max(0, self._bytes - size)

    @staticmethod
    def _get(q: queue.Queue[Offer], timeout: float | None = None) -> Offer:
        """One offer off the queue (``queue.Empty`` when none waits); its bytes stay counted until it is evaluated
        or dropped (``_taken``): the budget covers the offers in the worker's hands too."""
        return q.get(timeout=timeout) if timeout is not None else q.get_nowait()

    def _child(self, candidate: str) -> tuple[Any, Any, Any]:
        """The candidate's offered/dropped counter children, cached (``labels()`` takes a lock and builds a key)."""
        triple = self._children[candidate] = (self.prom.offered.labels(candidate),
                                              self.prom.dropped.labels(candidate),
                                              self.prom.dropped_bytes.labels(candidate))
        return triple

    def _resize(self, capacity: int) -> queue.Queue:
        with self._lock:
            old = self._queue
            self._queue, self._capacity = queue.Queue(maxsize=capacity), capacity
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
                self._thread.start()
        if old is not None:  # what waited in the old queue is dropped (the capacity changed under it)
            while True:
                try:
                    self._taken(offer_bytes(self._get(old)))
                except queue.Empty:
                    break
                self.dropped += 1
        return self._queue

    # ---------------------------------------------------------------- worker thread

    def _work(self) -> None:
        """Drain what waits (up to ``DRAIN_MAX`` offers), evaluate it, then rest so that the worker is busy at most
        ``BUSY_MAX`` of the time: under load the queue fills and offers are dropped, the stable side keeps the CPU."""
        while not self._stop.is_set():
            q = self._queue
            try:
                first = self._get(q, timeout=0.25) if q is not None else None
            except queue.Empty:
                first = None
            if first is not None:
                items = [first]
                while len(items) < DRAIN_MAX:
                    try:
                        items.append(self._get(q))  # type: ignore[arg-type]
                    except queue.Empty:
                        break
                t0 = time.perf_counter()
                self._drain(items)
                del items, first  # the offers' arrays are freed now, as their bytes were given back
                busy = time.perf_counter() - t0
                self._stop.wait(min(1.0, max(REST_MIN_S, busy * (1 - BUSY_MAX) / BUSY_MAX)))
            self._maybe_emf()
            self._maybe_share()

    def _drain(self, items: list[Offer]) -> None:
        """Evaluate the drained offers, then give their bytes back to the budget."""
        try:
            for group in _groups(items):
                try:
                    self._evaluate_group(group)
                except Exception:  # a shadow failure is counted, never raised into serving
                    log.exception("shadow evaluation failed")
        finally:
            self._taken(sum(offer_bytes(i) for i in items))

    def _evaluate_group(self, group: list[Offer]) -> None:
        """The first offer alone (its time is the candidate's latency on a real request), the rest in one call."""
        self._evaluate(*group[0])
        if len(group) > 1:
            stable, candidate = group[0][0], group[0][1]
            inputs = {n: np.concatenate([g[2][n] for g in group[1:]]) for n in group[0][2]}
            outputs = {n: np.concatenate([g[3][n] for g in group[1:]]) for n in group[0][3]}
            self._evaluate(stable, candidate, inputs, outputs, requests=len(group) - 1, timed=False)

    def _evaluate(self, stable: str, candidate: str, inputs: dict[str, np.ndarray],
                  outputs: dict[str, np.ndarray], requests: int = 1, timed: bool = True) -> None:
        versions = self.repository.versions
        smv, cmv = versions[stable], versions.get(candidate)
        pair = self._pair(stable, candidate)
        if cmv is None or cmv.batcher is None:
            return
        t0 = time.perf_counter()
        try:
            cout = cmv.batcher.model.predict(inputs)
        except Exception as e:  # noqa: BLE001 - any model failure is a shadow error
            with self._lock:
                pair.errors += requests
            self.prom.errors.labels(candidate).inc(requests)
            log.warning("shadow %s failed: %s", candidate, str(e)[:200])
            return
        seconds = time.perf_counter() - t0
        sfields, _ = smv.formatter.format(outputs, 1)
        cfields, _ = cmv.formatter.format(cout, 1)
        s_proba, c_proba = smv.formatter.probabilities(outputs), cmv.formatter.probabilities(cout)
        s_pred, c_pred = np.asarray(sfields.get("predictions")), np.asarray(cfields.get("predictions"))
        rows = int(s_pred.shape[0]) if s_pred.ndim else 1
        regress = s_proba is None and s_pred.dtype.kind in "fc" and c_pred.dtype.kind in "iufc"
        cfg = self.router.shadow
        tol = cfg.tolerance if cfg is not None else 1e-6
        if regress:
            a = s_pred.astype(np.float64).reshape(rows, -1)
            b = c_pred.astype(np.float64).reshape(rows, -1)
            gap = np.abs(a - b) / np.maximum(1.0, np.abs(a))
            agree = (gap <= tol).all(axis=1)
            score = gap.max(axis=1)
        else:
            s_lab = [str(x) for x in s_pred.reshape(-1).tolist()]
            c_lab = [str(x) for x in c_pred.reshape(-1).tolist()]
            agree = np.asarray([x == y for x, y in zip(s_lab, c_lab, strict=False)], dtype=bool)
            score = np.where(agree, 0.0, 1.0)
            if s_proba is not None and c_proba is not None and s_proba.shape == c_proba.shape:
                idx = s_proba.argmax(axis=-1)
                rows_i = np.arange(len(idx))
                score = score * (1.0 + np.abs(s_proba[rows_i, idx] - c_proba[rows_i, idx]))
        keep = 0 if self.sensitive or cfg is None else cfg.keep
        with self._lock:
            pair.requests += requests
            pair.rows += len(agree)
            pair.agreements += int(agree.sum())
            if timed:
                pair.latencies.append(seconds)
            if not regress and s_proba is not None and c_proba is not None:
                pair.add_hist(pair.stable_hist, s_lab, s_proba.max(axis=-1))
                pair.add_hist(pair.candidate_hist, c_lab, c_proba.max(axis=-1))
            if keep:
                self._keep(pair, keep, agree, score, inputs, s_pred, c_pred)
        self.prom.rows.labels(stable, candidate).inc(len(agree))
        self.prom.agreements.labels(stable, candidate).inc(int(agree.sum()))
        slot = self._emf_pending.setdefault(candidate, {"rows": 0, "agreements": 0, "latency": []})
        slot["rows"] += len(agree)
        slot["agreements"] += int(agree.sum())
        if not timed:
            return
        self.prom.latency.labels(candidate).observe(seconds)
        if len(slot["latency"]) < 100:  # EMF: at most 100 values per metric and line
            slot["latency"].append(round(seconds * 1000, 3))

    def _keep(self, pair: PairStats, keep: int, agree: np.ndarray, score: np.ndarray,
              inputs: dict[str, np.ndarray], s_pred: np.ndarray, c_pred: np.ndarray) -> None:
        for i in np.flatnonzero(~agree).tolist():
            s = float(score[i])
            if len(pair.worst) >= keep and s <= pair.worst[0][0]:
                continue
            pair.seq += 1
            row = {"score": round(s, 6), "stable": s_pred.reshape(len(agree), -1)[i].tolist(),
                   "candidate": c_pred.reshape(len(agree), -1)[i].tolist(),
                   "input": {n: np.asarray(v[i]).tolist() for n, v in inputs.items()}}
            entry = (s, pair.seq, row)
            if len(pair.worst) < keep:
                heapq.heappush(pair.worst, entry)
            else:
                heapq.heapreplace(pair.worst, entry)

    def _pair(self, stable: str, candidate: str) -> PairStats:
        with self._lock:
            pair = self._pairs.get((stable, candidate))
            if pair is None:
                pair = self._pairs[(stable, candidate)] = PairStats(stable, candidate)
            return pair

    def _maybe_emf(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._emf_at < self.emf_interval_s:
            return
        self._emf_at = now
        pending, self._emf_pending = self._emf_pending, {}
        self.publish()
        if self.emf is None or not pending:
            return
        for candidate, slot in pending.items():
            with self._lock:
                worst = [p.shift().get("max_psi") for p in self._pairs.values() if p.candidate == candidate]
            metrics = [{"Name": "ShadowRows", "Unit": "Count"}, {"Name": "ShadowAgreements", "Unit": "Count"},
                       {"Name": "ShadowLatency", "Unit": "Milliseconds"}, {"Name": "ShadowDropped", "Unit": "Count"}]
            doc: dict[str, Any] = {
                "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
                    {"Namespace": self.emf.namespace, "Dimensions": [["app", "env", "Candidate"]],
                     "Metrics": metrics}]},
                "app": self.emf.app, "env": self.emf.env, "Candidate": candidate,
                "ShadowRows": slot["rows"], "ShadowAgreements": slot["agreements"],
                "ShadowLatency": slot["latency"], "ShadowDropped": self.dropped,
            }
            psis = [w for w in worst if w is not None]
            if psis:
                metrics.append({"Name": "ShadowPSI", "Unit": "None"})
                doc["ShadowPSI"] = max(psis)
            self.emf.stream.write(orjson.dumps(doc).decode() + "\n")
        self.emf.stream.flush()

    # ---------------------------------------------------------------- several workers

    def _maybe_share(self, force: bool = False) -> None:
        """Write this worker's measures to ``shadow-<pid>.json`` in ``share_dir`` when they changed (at most every
        ``SHARE_INTERVAL_S``; atomic: a reader never sees half a file)."""
        if self.share_dir is None:
            return
        now = time.monotonic()
        if not force and now - self._shared_at < SHARE_INTERVAL_S:
            return
        with self._lock:  # new measures, or a new routing.json shadow object (followed like the weights)
            mark = (self.offered, self.dropped, self._bytes, sum(p.rows + p.errors for p in self._pairs.values()),
                    self.router.shadow)
            if mark == self._shared and not force:
                return
            doc = self._share_doc()
        self._shared, self._shared_at = mark, now
        path = os.path.join(self.share_dir, f"{SHARE_PREFIX}{os.getpid()}.json")
        try:
            with open(path + ".tmp", "wb") as fh:
                fh.write(orjson.dumps(doc))
            os.replace(path + ".tmp", path)
        except OSError as e:  # a full or removed directory costs the aggregate view, never serving
            log.warning("could not write the shadow measures to %s: %s", path, e)

    def _share_doc(self) -> dict[str, Any]:
        cfg = self.router.shadow
        return {"pid": os.getpid(), "shadow": None if cfg is None else {"version": cfg.version, "sample": cfg.sample,
                                                    "tolerance": cfg.tolerance, "keep": 0 if self.sensitive
                                                    else cfg.keep},
                "queue": self._queue_doc(),
                # the kept rows hold inputs: never written with runtime.auth.sensitive_data (keep is 0 then)
                "pairs": [p.state() if not self.sensitive else {**p.state(), "worst": []}
                          for p in self._pairs.values()]}

    # ---------------------------------------------------------------- reading

    def _queue_doc(self) -> dict[str, int]:
        """The queue's state: its count capacity and depth, its byte budget and what it holds, the offers offered
        and dropped (``dropped_bytes`` of them refused by the byte budget)."""
        cfg = self.router.shadow
        return {"capacity": self._capacity, "depth": self._queue.qsize() if self._queue is not None else 0,
                "bytes_capacity": cfg.queue_bytes if cfg is not None else 0, "bytes": self._bytes,
                "offered": self.offered, "dropped": self.dropped, "dropped_bytes": self.dropped_bytes}

    def publish(self) -> None:
        """Refresh the gauges (agreement, PSI, queue depth)."""
        with self._lock:
            pairs = list(self._pairs.values())
        self.prom.publish(pairs, self._queue.qsize() if self._queue is not None else 0)

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /shadow`` returns: the configuration, the queue and every pair's measures."""
        cfg = self.router.shadow
        with self._lock:
            pairs = [p.to_json(not self.sensitive) for p in self._pairs.values()]
        return {
            "shadow": None if cfg is None else {"version": cfg.version, "sample": cfg.sample,
                                                "tolerance": cfg.tolerance, "keep": 0 if self.sensitive else cfg.keep},
            "sensitive_data": self.sensitive,
            "queue": self._queue_doc(),
            "pairs": pairs,
        }

    def render(self) -> bytes:
        return orjson.dumps(self.snapshot())

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the worker (what is still queued is dropped: shadow work never delays a shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._maybe_emf(force=True)
        if self._thread is not None:
            self._maybe_share(force=True)


def shared_snapshot(directory: str, sensitive: bool) -> dict[str, Any]:
    """``GET /shadow`` with several workers: the sum of every worker's ``shadow-<pid>.json`` in ``directory`` —
    counts and histograms added, latency percentiles over the workers' latencies together, the most disagreeing
    rows of all (the ``keep`` of the newest configuration), the queues added up. A worker that exited still counts
    (its file stays, as its Prometheus counters do)."""
    docs: list[tuple[float, dict[str, Any]]] = []
    try:
        names = [n for n in os.listdir(directory) if n.startswith(SHARE_PREFIX) and n.endswith(".json")]
    except OSError:
        names = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as fh:
                docs.append((os.path.getmtime(path), orjson.loads(fh.read())))
        except (OSError, orjson.JSONDecodeError):  # removed or replaced meanwhile: its next write counts
            continue
    docs.sort(key=lambda d: d[0])
    cfg = docs[-1][1]["shadow"] if docs else None
    keep = 0 if sensitive or cfg is None else int(cfg.get("keep") or 0)
    pairs: dict[tuple[str, str], PairStats] = {}
    queue_sum = {"capacity": 0, "depth": 0, "bytes_capacity": 0, "bytes": 0, "offered": 0, "dropped": 0,
                 "dropped_bytes": 0}
    per_worker = []
    for _, doc in docs:
        for k in queue_sum:
            queue_sum[k] += int((doc.get("queue") or {}).get(k) or 0)
        per_worker.append({"pid": doc.get("pid"), "offered": int((doc.get("queue") or {}).get("offered") or 0),
                           "rows": sum(int(p["rows"]) for p in doc.get("pairs") or [])})
        for state in doc.get("pairs") or []:
            key = (state["stable"], state["candidate"])
            pair = pairs.get(key)
            if pair is None:
                pair = pairs[key] = PairStats(*key, latencies=deque(maxlen=LATENCY_KEPT * max(1, len(docs))))
            pair.merge(state, keep)
    return {"shadow": cfg, "sensitive_data": sensitive, "queue": queue_sum, "workers": per_worker,
            "pairs": [p.to_json(not sensitive) for p in pairs.values()]}


def render_shared(directory: str, sensitive: bool) -> bytes:
    return orjson.dumps(shared_snapshot(directory, sensitive))
