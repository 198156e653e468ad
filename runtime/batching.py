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

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
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
        """Run outside the queue (warm-up at start); its time seeds ``batch_seconds``."""
        t0 = time.perf_counter()
        out = self.model.predict(inputs)
        self._timed(time.perf_counter() - t0)
        return out

    def _timed(self, seconds: float) -> None:
        avg = self.batch_seconds
        self.batch_seconds = seconds if avg is None else avg + _EWMA_WEIGHT * (seconds - avg)

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
                    if self.inline(sum(it.rows for it in items)):
                        results = self._infer_group(items)
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

    def _infer_group(self, items: list[_Item]) -> list[Inputs | BaseException]:
        """Inference thread: one batched call; on failure, each request alone so one bad input fails alone."""
        try:
            return self._infer(items)
        except Exception as e:  # the model's own exceptions
            if len(items) == 1:
                return [InferenceError(f"{type(e).__name__}: {e}")]
        out: list[Inputs | BaseException] = []
        for it in items:
            try:
                out.extend(self._infer([it]))
            except Exception as e:
                out.append(InferenceError(f"{type(e).__name__}: {e}"))
        return out

    def _infer(self, items: list[_Item]) -> list[Inputs]:
        t0 = time.perf_counter()
        single = len(items) == 1
        if single:
            inputs = items[0].inputs
        else:
            inputs = {k: np.concatenate([it.inputs[k] for it in items]) for k in items[0].inputs}
        outputs = self.model.predict(inputs)
        seconds = time.perf_counter() - t0
        self._timed(seconds)
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
