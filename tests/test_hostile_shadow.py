"""Shadow evaluation under hostile (large) requests: the queue of offers is bounded by count (``shadow.queue``,
default 64) but not by bytes. Each offer holds the request's decoded inputs, and one request may be as large as
``runtime.max_body_bytes`` (16 MiB by default) allows — so while the candidate is busy, 64 sampled large requests
keep about 1 GiB alive in the stable task (a 1–2 GiB Fargate task is OOM-killed: the shadow phase takes the stable
version down). The real ``ShadowEvaluator``, its worker held on a gate.

``runtime/shadow.py`` is being edited by another helper this session: the test is a strict xfail documenting the
fix — count the queued offers' ``nbytes`` (inputs + outputs) and drop (and count as dropped) an offer that would
take the queue past a byte budget (e.g. ``shadow.queue_bytes``, default 64 MiB; one offer larger than the budget is
dropped too) — and starts passing (failing as XPASS) once it lands.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from runtime.formatting import OutputFormatter
from runtime.manifest import Manifest, Tensor
from runtime.metrics import Metrics
from runtime.shadow import ShadowConfig, ShadowEvaluator

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


@pytest.mark.xfail(strict=True, reason="runtime/shadow.py: the offer queue is bounded by count, not bytes (64 × a "
                                       "16 MiB request ≈ 1 GiB held); fix pending there (another helper's file)")
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
