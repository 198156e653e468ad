"""Shadow evaluation under hostile (large) requests: each offer holds the request's decoded inputs, and one request
may be as large as ``runtime.max_body_bytes`` (16 MiB by default) allows — so a queue bounded by count only (64
offers) keeps about 1 GiB alive in the stable task while the candidate is busy (a 1–2 GiB Fargate task is
OOM-killed: the shadow phase takes the stable version down). The queue is also bounded by bytes
(``shadow.queue_bytes``, default 64 MiB: the queued offers' input + output ``nbytes``); an offer past it is dropped
and counted (``dropped`` and ``dropped_bytes`` in ``/shadow``; ``mldeploy_shadow_dropped_total`` and
``mldeploy_shadow_dropped_by_bytes_total``). The real
``ShadowEvaluator``, its worker held on a gate.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from runtime.formatting import OutputFormatter
from runtime.manifest import Manifest, Tensor
from runtime.metrics import Metrics
from runtime.shadow import QUEUE_BYTES, ShadowConfig, ShadowEvaluator

MIB = 1024 * 1024
BUDGET = 256 * MIB
"""Generous: four times the suggested default budget; today's queue holds 1 GiB."""


def _repo(candidate: Any, cfg: ShadowConfig) -> Any:
    versions = {}
    for version, model in (("1.0.0", None), ("1.1.0", candidate)):
        m = Manifest(name="m", version=version, format="pickle", source_format="pickle", file="m.pkl", sha256="0",
                     size_bytes=1, task="regression", created_at="now", inputs=[Tensor(name="x", shape=[None, 1])],
                     outputs=[Tensor(name="y", shape=[None], role="prediction")])
        versions[version] = SimpleNamespace(manifest=m, formatter=OutputFormatter(m, 1),
                                            batcher=SimpleNamespace(model=model))
    return SimpleNamespace(versions=versions, router=SimpleNamespace(shadow=cfg))


def test_large_offers_are_dropped_before_the_queue_holds_a_gibibyte() -> None:
    gate = threading.Event()

    class Candidate:
        def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            gate.wait(10)
            return {"y": inputs["x"][:, 0]}

    shadow = ShadowEvaluator(_repo(Candidate(), ShadowConfig("1.1.0")), Metrics())  # default queue: 64
    x = np.zeros((4 * MIB, 1), dtype=np.float32)  # 16 MiB: one request at runtime.max_body_bytes
    y = x[:, 0]
    try:
        for _ in range(64):
            shadow.on_response(SimpleNamespace(version="1.0.0", inputs={"x": x}, outputs={"y": y}))
        q = shadow.snapshot()["queue"]
        held = q["depth"] * (x.nbytes + y.nbytes)
        assert q["offered"] == 64
        assert held <= BUDGET and q["dropped"] > 0, f"{held / MIB:.0f} MiB queued, {q['dropped']} dropped"
    finally:
        gate.set()
        shadow.stop()


def _wait(cond: Any, timeout: float = 5.0) -> None:
    import time
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_the_byte_budget_comes_from_the_routing_file_and_is_given_back_when_offers_run() -> None:
    """``shadow.queue_bytes`` (routing.json) sets the budget; an offer alone larger than it is dropped; the offer
    the worker is evaluating still counts; the bytes of evaluated offers are given back (new offers fit again); the
    reason is in the metric."""
    gate = threading.Event()
    started = threading.Event()

    class Candidate:
        def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            started.set()
            gate.wait(10)
            return {"y": inputs["x"][:, 0]}

    cfg = ShadowConfig.parse({"version": "1.1.0", "queue_bytes": 3 * MIB}, ["1.0.0", "1.1.0"])
    assert cfg is not None and cfg.queue_bytes == 3 * MIB
    assert ShadowConfig("1.1.0").queue_bytes == QUEUE_BYTES == 64 * MIB
    metrics = Metrics()
    shadow = ShadowEvaluator(_repo(Candidate(), cfg), metrics)
    one = np.zeros((MIB // 8, 1), dtype=np.float32)  # 0.5 MiB in + 0.5 MiB out: 1 MiB an offer
    big = np.zeros((MIB, 1), dtype=np.float32)  # 4 + 4 MiB: past the budget on its own
    offer = SimpleNamespace(version="1.0.0", inputs={"x": one}, outputs={"y": one[:, 0]})
    try:
        shadow.on_response(offer)
        assert started.wait(5)  # the worker holds the first offer: off the queue, still in memory, still counted
        assert shadow.snapshot()["queue"]["bytes"] == MIB
        shadow.on_response(SimpleNamespace(version="1.0.0", inputs={"x": big}, outputs={"y": big[:, 0]}))
        for _ in range(4):
            shadow.on_response(offer)
        q = shadow.snapshot()["queue"]
        assert (q["offered"], q["depth"], q["bytes"], q["bytes_capacity"]) == (6, 2, 3 * MIB, 3 * MIB), q
        assert (q["dropped"], q["dropped_bytes"]) == (3, 3), q
        text = generate_latest(metrics.registry).decode()
        assert 'mldeploy_shadow_dropped_total{candidate="1.1.0"} 3.0' in text
        assert 'mldeploy_shadow_dropped_by_bytes_total{candidate="1.1.0"} 3.0' in text
        gate.set()
        _wait(lambda: shadow.snapshot()["queue"]["bytes"] == 0)  # all evaluated
        shadow.on_response(offer)  # fits again
        assert shadow.snapshot()["queue"]["dropped"] == 3
    finally:
        gate.set()
        shadow.stop()


@pytest.mark.parametrize("value", [0, 1023, 2**41])
def test_a_bad_queue_bytes_names_the_key(value: int) -> None:
    with pytest.raises(ValueError, match="shadow.queue_bytes"):
        ShadowConfig.parse({"version": "1.1.0", "queue_bytes": value}, ["1.0.0", "1.1.0"])
