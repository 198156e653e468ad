"""Dynamic batching: one bounded asyncio queue per model version, one worker task, one inference thread.

Requests are queued with their rows; the worker takes everything waiting (up to ``max_batch_size`` rows), waits
up to ``max_wait_ms`` for more only while other requests are still being parsed, concatenates compatible inputs,
runs one inference in a dedicated thread and resolves each request's future with its slice of the outputs.

Tiny models are the exception: handing a batch to the thread and back (executor queue, GIL hand-over, wake-up of
the loop) costs more than the inference. While the model's measured time per batch (an exponential average, seeded
by the warm-up) stays below ``INLINE_MAX_MS``, batches of at most ``max_batch_size`` rows run in the worker task
itself, and a request arriving at an idle batcher (empty queue, nothing being parsed) runs at once in its own task,
without queueing. A slower batch raises the average past the bound and later ones go back to the thread; big
requests (above ``max_batch_size`` rows) always do.

A batch timed in the thread includes the wait for the GIL, which the busy event loop holds — milliseconds under
load, whatever the model — which could keep a fast model that one preempted batch pushed over the bound in the
thread for good. So while the batches last timed on the loop (warm-up, requests answered inline, probes) averaged
within ``PROBE_FACTOR`` × the bound, a batch runs on the loop every ``PROBE_S`` (a probe) and its time replaces the
average: measured again, without the GIL wait. A model never timed that fast on the loop is never probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from runtime.loaders import LoadedModel

Inputs = dict[str, np.ndarray]
INLINE_MAX_MS = 1.0  # on the event loop only while a batch takes less than this (exponential average)
PROBE_S = 1.0  # off the loop, a batch runs on it again this often to measure again (see the module docstring)
PROBE_FACTOR = 2.0  # ... while the average is within this many times INLINE_MAX_MS
_EWMA_WEIGHT = 0.2


class QueueFullError(Exception):
    """The queue holds ``max_queue`` requests; the caller answers 503 with Retry-After."""


class InferenceError(Exception):
    """The model raised while predicting this request (after a retry on its own)."""


@dataclass(slots=True)
class _Item:
    inputs: Inputs
    rows: int
    future: asyncio.Future | None
    key: tuple = field(default=())


def _shape_key(inputs: Inputs) -> tuple:
    return tuple((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items())


class Batcher:
    """Queue + worker for one model. ``after_batch(inputs, outputs, rows, seconds)`` runs where the batch runs
    (the inference thread, or the event loop for inline batches)."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        after_batch: Callable[[Inputs, Inputs, int, float], None] | None = None,
        name: str = "model",
        inline_max_ms: float = INLINE_MAX_MS,
        probe_s: float = PROBE_S,
    ) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.after_batch = after_batch
        self.arriving = 0  # requests being parsed that will submit soon (the worker waits for them)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_queue)
        self._event = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task | None = None
        self._busy = False
        self._carry: _Item | None = None
        self.inline_max = inline_max_ms / 1000.0
        self.batch_seconds: float | None = None  # exponential average of the model's time per batch
        self.probe_s = probe_s
        self._probed_at = 0.0  # time.monotonic() of the last probe (set at start: none in the first probe_s)
        self._loop_seconds: float | None = None  # the average of the batches timed on the loop (probes' gate)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._probed_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued (graceful drain), then stop the worker and its thread."""
        deadline = time.monotonic() + timeout
        while (self._queue.qsize() or self._busy or self._carry) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    def predict_sync(self, inputs: Inputs) -> Inputs:
        """Run outside the queue (warm-up at start, nothing else running); its time seeds both averages."""
        t0 = time.perf_counter()
        out = self.model.predict(inputs)
        self._timed(time.perf_counter() - t0, on_loop=True)
        return out

    def _timed(self, seconds: float, probe: bool = False, on_loop: bool = False) -> None:
        """Fold a batch's time into the average (a probe's replaces it), and into the loop's if timed there."""
        avg = self.batch_seconds
        self.batch_seconds = seconds if avg is None or probe else avg + _EWMA_WEIGHT * (seconds - avg)
        if probe or on_loop:
            loop = self._loop_seconds
            self._loop_seconds = seconds if loop is None else loop + _EWMA_WEIGHT * (seconds - loop)

    def _probe(self, rows: int) -> bool:
        """Whether this batch, which would go to the thread, runs on the loop to measure the model again."""
        loop = self._loop_seconds
        if loop is None or loop >= PROBE_FACTOR * self.inline_max or rows > self.max_batch_size:
            return False
        now = time.monotonic()
        if now - self._probed_at < self.probe_s:
            return False
        self._probed_at = now
        return True

    def inline(self, rows: int) -> bool:
        """Whether a batch of ``rows`` runs on the event loop (see the module docstring)."""
        avg = self.batch_seconds
        return avg is not None and avg < self.inline_max and rows <= self.max_batch_size

    def run_now(self, inputs: Inputs, rows: int) -> Inputs | None:
        """The outputs, computed now in the caller's task, when the batcher is idle (empty queue, nothing being
        parsed, no batch running) and the model is fast enough to run inline; None when the request must queue.
        Raises InferenceError."""
        avg = self.batch_seconds
        if (avg is None or avg >= self.inline_max or rows > self.max_batch_size or self.arriving > 0 or self._busy
                or self._carry is not None or self._task is None or not self._queue.empty()):
            return None
        # idle batcher, nobody to wait for: a batch of one, now, in this task (as ``_infer`` of one item)
        t0 = time.perf_counter()
        try:
            outputs = self.model.predict(inputs)
            seconds = time.perf_counter() - t0
            self.batch_seconds = avg + _EWMA_WEIGHT * (seconds - avg)
            loop = self._loop_seconds  # timed on the loop: the probes' gate too
            self._loop_seconds = seconds if loop is None else loop + _EWMA_WEIGHT * (seconds - loop)
            if self.after_batch:
                self.after_batch(inputs, outputs, rows, seconds)
        except Exception as e:  # the model's own exceptions
            raise InferenceError(f"{type(e).__name__}: {e}") from None
        return outputs

    async def submit(self, inputs: Inputs) -> Inputs:
        rows = next(iter(inputs.values())).shape[0]
        res = self.run_now(inputs, rows)
        if res is not None:
            return res
        fut = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(inputs, rows, fut, _shape_key(inputs)))
        except asyncio.QueueFull:
            raise QueueFullError from None
        self._event.set()
        return await fut

    async def _collect(self) -> list[_Item]:
        first, self._carry = self._carry or await self._queue.get(), None
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self.max_wait
        while rows < self.max_batch_size:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if self.arriving <= 0 or remaining <= 0:
                    break
                self._event.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._event.wait()
                except TimeoutError:
                    break
                continue
            item = self._queue.get_nowait()
            if item.rows + rows > self.max_batch_size:
                self._carry = item  # too big to join: it starts the next batch
                break
            batch.append(item)
            rows += item.rows
        return [it for it in batch if not it.future.done()]  # drop requests that timed out while queued

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            self._busy = True
            try:
                groups: dict[tuple, list[_Item]] = {}
                for it in batch:
                    groups.setdefault(it.key, []).append(it)
                for items in groups.values():
                    rows = sum(it.rows for it in items)
                    if self.inline(rows):
                        results = self._infer_group(items)
                    elif self._probe(rows):
                        results = self._infer_group(items, True)
                    else:
                        results = await loop.run_in_executor(self._executor, self._infer_group, items)
                    for it, res in zip(items, results, strict=True):
                        if it.future.done():
                            continue
                        if isinstance(res, BaseException):
                            it.future.set_exception(res)
                        else:
                            it.future.set_result(res)
            finally:
                self._busy = False

    def _infer_group(self, items: list[_Item], probe: bool = False) -> list[Inputs | BaseException]:
        """One batched call (in the inference thread, or on the loop: inline or a ``probe``); on failure, each
        request alone so one bad input fails alone."""
        try:
            return self._infer(items, probe)
        except Exception as e:  # the model's own exceptions
            if len(items) == 1:
                return [InferenceError(f"{type(e).__name__}: {e}")]
        out: list[Inputs | BaseException] = []
        for it in items:
            try:
                out.extend(self._infer([it], probe))
            except Exception as e:
                out.append(InferenceError(f"{type(e).__name__}: {e}"))
        return out

    def _infer(self, items: list[_Item], probe: bool = False) -> list[Inputs]:
        t0 = time.perf_counter()
        single = len(items) == 1
        if single:
            inputs = items[0].inputs
        else:
            inputs = {k: np.concatenate([it.inputs[k] for it in items]) for k in items[0].inputs}
        outputs = self.model.predict(inputs)
        seconds = time.perf_counter() - t0
        self._timed(seconds, probe)
        total = items[0].rows if single else sum(it.rows for it in items)
        if self.after_batch:
            self.after_batch(inputs, outputs, total, seconds)
        if single:
            return [outputs]
        results: list[Inputs] = []
        start = 0
        for it in items:
            end = start + it.rows
            results.append({k: v[start:end] if np.ndim(v) and len(v) == total else v for k, v in outputs.items()})
            start = end
        return results
