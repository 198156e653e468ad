"""Request samples batched per flush (``runtime.http.middleware.Serving.fold``, ``runtime.telemetry``): one append
per request, and the same Prometheus counts and EMF lines as counting each request at once."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from runtime import telemetry
from runtime.contract.serving import AccessLog
from runtime.http.middleware import Serving
from runtime.lifecycle import Drain
from runtime.metrics import Metrics
from runtime.telemetry import EMF_MAX_VALUES, EmfAggregator, _Reservoir


def _serving() -> tuple[Serving, Metrics, EmfAggregator, io.StringIO]:
    buf = io.StringIO()
    metrics, emf = Metrics(), EmfAggregator("ns", "svc", 0.6, stream=buf)
    return Serving(metrics, emf, AccessLog(enabled=False), Drain()), metrics, emf, buf


def _record(serving: Serving, n: int, status: int, version: str = "1.0.0", route: str = "/predict") -> None:
    for i in range(n):
        serving.record({"state": {"model_version": version}, "method": "POST", "path": route}, route, status,
                       0.001 * (i % 7 + 1), "r")


def test_a_scrape_counts_every_request_recorded_before_it():
    serving, metrics, emf, _ = _serving()
    metrics.flushed_at = float("inf")  # no flush from the request path: the scrape's own flush folds the samples
    _record(serving, 130, 200)
    _record(serving, 7, 503)
    _record(serving, 3, 200, version="2.0.0")
    text = metrics.render().decode()
    assert 'mldeploy_requests_total{route="/predict",status="200",version="1.0.0"} 130.0' in text
    assert 'mldeploy_requests_total{route="/predict",status="503",version="1.0.0"} 7.0' in text
    assert 'mldeploy_requests_total{route="/predict",status="200",version="2.0.0"} 3.0' in text
    assert 'mldeploy_request_latency_seconds_count{route="/predict",version="1.0.0"} 137.0' in text
    assert 'mldeploy_request_latency_seconds_bucket{le="0.001",route="/predict",version="1.0.0"} 20.0' in text


def test_the_request_path_pushes_samples_once_the_flush_interval_has_passed():
    serving, metrics, _, _ = _serving()
    metrics.flushed_at = 0.0  # long ago: the next request flushes
    _record(serving, 1, 200)
    got = metrics.registry.get_sample_value("mldeploy_requests_total",
                                            {"route": "/predict", "status": "200", "version": "1.0.0"})
    assert got == 1.0


def test_an_emf_flush_counts_every_request_exactly_without_a_metrics_flush():
    serving, metrics, emf, buf = _serving()
    metrics.flushed_at = float("inf")
    _record(serving, 250, 200)
    _record(serving, 5, 502)
    _record(serving, 4, 200, version="")  # no version (a 404 before routing): not an EMF sample
    emf.confidence("1.0.0", 0.5)
    emf.confidences("1.0.0", [0.9, 0.2, 0.7])
    assert emf.flush() == 1 and emf.flush() == 0
    doc = json.loads(buf.getvalue())
    assert doc["Requests"] == 255 and doc["Errors"] == 5 and doc["LowConfidence"] == 2
    assert len(doc["Latency"]) == EMF_MAX_VALUES
    assert set(doc["Latency"]) <= {float(i) for i in range(1, 8)}  # in milliseconds
    assert sorted(doc["Confidence"]) == [0.2, 0.5, 0.7, 0.9]


def test_a_metrics_flush_folds_the_emf_samples_too():
    serving, metrics, emf, _ = _serving()
    _record(serving, 3, 200)
    emf.confidence("1.0.0", 0.9)
    metrics.flush()
    assert not serving._samples and not emf._confidence and not emf._requests  # memory: ≤ one flush interval
    assert emf._data["1.0.0"]["latency"].count == 3 and emf._data["1.0.0"]["confidence"].count == 1


@pytest.mark.parametrize("chunk", [1, 7, 31, 32, 500])
def test_a_reservoir_filled_in_chunks_is_a_uniform_sample(monkeypatch, chunk):
    monkeypatch.setattr(telemetry, "_random", random.Random(1).random)
    monkeypatch.setattr(telemetry, "_rng", np.random.default_rng(1))
    n, trials = 1000, 300
    kept_per_decile = np.zeros(10)
    for _ in range(trials):
        r = _Reservoir()
        r.add(0.0)
        items = list(range(1, n))
        for i in range(0, len(items), chunk):
            r.extend([float(v) for v in items[i:i + chunk]], scale=1.0)
        assert r.count == n and len(r.values) == EMF_MAX_VALUES and len(set(r.values)) == EMF_MAX_VALUES
        kept_per_decile += np.bincount(np.asarray(r.values, dtype=int) // 100, minlength=10)
    expected = trials * EMF_MAX_VALUES / 10  # every item kept with probability 100 / 1000
    assert np.all(np.abs(kept_per_decile - expected) < 0.12 * expected), kept_per_decile


def test_a_reservoir_keeps_the_first_values_in_order_and_scales_them():
    r = _Reservoir()
    r.extend([0.001, 0.002], scale=1000.0)
    r.extend([], scale=1000.0)
    assert r.count == 2 and r.values == [1.0, 2.0]
    r.extend([0.25] * 98, scale=4.0)  # fills the reservoir exactly: nothing drawn yet
    assert r.values[:3] == [1.0, 2.0, 1.0] and len(r.values) == EMF_MAX_VALUES
    r.extend([0.5] * 150, scale=6.0)
    assert r.count == 250 and len(r.values) == EMF_MAX_VALUES and set(r.values) <= {1.0, 2.0, 3.0}
    assert 3.0 in r.values  # 150 later items: some replace kept ones (P(none) = (100/250)·… ≈ 0)


def test_many_confidences_count_the_low_ones_exactly():
    buf = io.StringIO()
    emf = EmfAggregator("ns", "svc", 0.6, stream=buf)
    emf.confidences("1.0.0", [0.5] * 40 + [0.9] * 59 + [float("nan")])  # numpy's count (≥ 32 values)
    emf.confidences("1.0.0", [0.1, 0.7])  # and Python's: NaN is not low in either
    emf.confidence("1.0.0", 0.59)
    assert emf.flush() == 1
    doc = json.loads(buf.getvalue())
    assert doc["LowConfidence"] == 42 and doc["Requests"] == 0 and len(doc["Confidence"]) == EMF_MAX_VALUES
