"""The batcher's choice between the event loop and its inference thread (``runtime.batching``): fast thread
batches bring a slow warm-up back to the loop, a fast model pushed over the bound is measured again on the loop (a
probe), so GIL waits in the thread cannot keep it off the loop for good; a slow model never runs there."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from runtime.batching import PROBE_FACTOR, Batcher


class Model:
    """Sleeps ``warmup`` on its first call, then ``loop`` seconds on the event loop's thread and ``thread``
    seconds elsewhere (a stand-in for the GIL wait of a thread run); records where each call ran."""

    def __init__(self, warmup: float, loop: float, thread: float) -> None:
        self.warmup, self.loop, self.thread = warmup, loop, thread
        self.where: list[str] = []

    def predict(self, inputs):
        main = threading.current_thread() is threading.main_thread()
        self.where.append("loop" if main else "thread")
        time.sleep(self.warmup if len(self.where) == 1 else self.loop if main else self.thread)
        return {"y": inputs["x"] * 2}


async def _serve(model: Model, n: int, **kw) -> tuple[Batcher, list[np.ndarray]]:
    b = Batcher(model, max_batch_size=4, max_wait_ms=1, max_queue=100, **kw)
    b.predict_sync({"x": np.ones((1, 2), np.float32)})  # the warm-up seeds the average
    b.start()
    out = []
    for i in range(n):  # one at a time: each is its own batch
        out.append((await b.submit({"x": np.full((1, 2), i, np.float32)}))["y"])
        await asyncio.sleep(0.002)
    await b.stop()
    return b, out


def test_fast_thread_batches_bring_a_slow_warmup_back_to_the_loop():
    model = Model(warmup=0.12, loop=0.0, thread=0.0)  # a first call 2.4x the bound, then instant
    b, out = asyncio.run(_serve(model, 20, inline_max_ms=50, probe_s=3600))
    assert [float(o[0, 0]) for o in out] == [2.0 * i for i in range(20)]
    assert model.where[1] == "thread" and model.where[-1] == "loop"  # the thread's own times lowered it
    assert b.batch_seconds < 0.05


def test_slow_thread_batches_cannot_keep_a_fast_model_off_the_loop():
    # pushed just over the bound by its warm-up; every thread batch looks slow (as the GIL wait under load)
    model = Model(warmup=0.06, loop=0.0, thread=0.06)
    b, _ = asyncio.run(_serve(model, 12, inline_max_ms=50, probe_s=0.05))
    assert "thread" in model.where and model.where[-3:] == ["loop"] * 3  # a probe measured it on the loop
    stuck = Model(warmup=0.06, loop=0.0, thread=0.06)
    asyncio.run(_serve(stuck, 6, inline_max_ms=50, probe_s=3600))  # no probe yet: the thread times keep it out
    assert stuck.where[1:] == ["thread"] * 6


def test_a_slow_model_is_never_probed_on_the_loop():
    model = Model(warmup=0.05, loop=0.05, thread=0.05)  # 2.5x a 20 ms bound: above PROBE_FACTOR
    assert PROBE_FACTOR < 0.05 / 0.02
    asyncio.run(_serve(model, 5, inline_max_ms=20, probe_s=0))
    assert model.where[1:] == ["thread"] * 5
