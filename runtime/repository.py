"""The model repository: discover the served versions, load each one, warm it up, start and stop its batcher."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from runtime.batching import Batcher, Inputs
from runtime.formatting import OutputFormatter
from runtime.inputs import InputError, InputSpec
from runtime.lifecycle import process_age_s, resume_gc, server_process
from runtime.limits import default_max_rows, input_row_bytes, memory_limit_bytes
from runtime.loaders import load_model
from runtime.manifest import MANIFEST_FILE, Manifest
from runtime.metrics import DriftTracker, Metrics
from runtime.routing import Router
from runtime.settings import ROUTING_FILE, Settings

log = logging.getLogger("mldeploy.server")


class StartupError(Exception):
    """The server cannot start (missing/invalid model folder); the message names the path."""


@dataclass
class ModelVersion:
    """One served version: its manifest and folder, request decoding/formatting, and (once loaded) its batcher."""

    manifest: Manifest
    folder: Path
    spec: InputSpec
    formatter: OutputFormatter
    batcher: Batcher | None = None
    drift: DriftTracker | None = None
    load_seconds: float = 0.0
    provider: str = "cpu"
    """Where inference runs: the loader's ``provider`` (onnxruntime's execution provider, torch's device)."""


def discover(settings: Settings) -> tuple[dict[str, ModelVersion], Path | None]:
    """Artifact folders → versions (manifests only; weights load at startup) and the routing file, if any."""
    if settings.models_dir:
        root = Path(settings.models_dir)
        if not root.is_dir():
            raise StartupError(f"MLDEPLOY_MODELS_DIR {root} is not a directory")
        folders = sorted(p for p in root.iterdir() if (p / MANIFEST_FILE).is_file())
        if not folders:
            raise StartupError(f"{root}: no sub-folder contains a {MANIFEST_FILE} (one folder per model version)")
        routing = root / ROUTING_FILE
    else:
        folders, routing = [Path(settings.model_dir or "")], None
    versions: dict[str, ModelVersion] = {}
    names = set()
    for folder in folders:
        try:
            m = Manifest.load(folder)
        except FileNotFoundError:
            raise StartupError(f"{folder}: no {MANIFEST_FILE}; point MLDEPLOY_MODEL_DIR at a `mldeploy package` "
                               "output folder") from None
        except ValueError as e:
            raise StartupError(f"{folder / MANIFEST_FILE}: invalid manifest: {e}") from None
        if m.version in versions:
            raise StartupError(f"{folder}: version {m.version} is also in {versions[m.version].folder}")
        names.add(m.name)
        versions[m.version] = ModelVersion(m, folder, limited_spec(m, settings), OutputFormatter(m, settings.top_k))
    if len(names) > 1:
        raise StartupError(f"versions in {settings.models_dir} belong to different models: {sorted(names)}")
    return versions, routing


def limited_spec(m: Manifest, settings: Settings) -> InputSpec:
    """The manifest's InputSpec with this server's per-request limits (rows derived from memory when unset)."""
    spec = InputSpec(m)
    memory = memory_limit_bytes(settings.memory_mib) // settings.workers
    spec.max_rows = settings.max_rows_per_request or default_max_rows(memory, input_row_bytes(m))
    spec.max_image_pixels = settings.max_image_pixels
    spec.max_request_pixels = max(settings.max_request_pixels, settings.max_image_pixels)
    return spec


def response_row_bytes(mv: ModelVersion, outputs: Inputs) -> int:
    """JSON bytes of one formatted answer row (from the warm-up), top-k at its maximum, +25 % for longer labels."""
    fields, _ = mv.formatter.format(outputs, 100)
    rows = max(1, len(next(iter(outputs.values()))) if outputs else 1)
    return max(16, int(len(orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)) / rows * 1.25))


def warmup_inputs(mv: ModelVersion) -> Inputs:
    """The first ``sample_input`` row when it fits the signature, else zeros of the input shapes."""
    m = mv.manifest
    if m.sample_input and all(t.name in m.sample_input for t in m.inputs):
        with contextlib.suppress(InputError, ValueError, TypeError):
            return {t.name: mv.spec.check(t.name, np.asarray(m.sample_input[t.name]), ["sample_input"])[:1]
                    for t in m.inputs}
    return {t.name: np.zeros([1] + [d if d not in (None, -1) else 1 for d in t.shape[1:]], mv.spec.dtypes[t.name])
            for t in m.inputs}


class ModelRepository:
    """The versions of one model, the router between them, and their load/start/stop."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.versions, routing_file = discover(settings)
        self.name = next(iter(self.versions.values())).manifest.name
        self.router = Router(list(self.versions), routing_file)
        self.ready = False

    @property
    def providers(self) -> dict[str, str]:
        """Each version's execution provider / device (``/ready``)."""
        return {v: mv.provider for v, mv in self.versions.items()}

    @property
    def latest(self) -> Manifest:
        """The highest version's manifest (documents the API)."""
        return self.versions[self.router.versions[-1]].manifest

    def load(self, mv: ModelVersion, threads: int) -> None:
        """Load the weights, build the batcher and run one warm-up inference (in a worker thread)."""
        t0 = time.perf_counter()
        model = load_model(mv.manifest, mv.folder, threads)
        loaded = time.perf_counter()
        mv.provider = str(getattr(model, "provider", "cpu"))
        s, m = self.settings, mv.manifest
        if m.baseline and len(m.inputs) == 1 and len(m.inputs[0].shape) == 2:
            names = m.feature_names or [f"f{i}" for i in range(len(m.baseline.mean))]
            mv.drift = DriftTracker(self.metrics, m.version, names, m.baseline.mean, m.baseline.std,
                                    min_count=s.drift_min_count)
        elif len(m.inputs) == 1 and len(m.inputs[0].shape) == 2 and m.feature_names:
            mv.drift = DriftTracker(self.metrics, m.version, m.feature_names, None, None,
                                    min_count=s.drift_min_count)
        mv.batcher = Batcher(
            model,
            max_batch_size=s.batching.max_batch_size if s.batching.enabled else 1,
            max_wait_ms=s.batching.max_wait_ms if s.batching.enabled else 0.0,
            max_queue=s.max_queue,
            after_batch=self._after_batch(mv),
            name=m.version,
        )
        warm = mv.batcher.predict_sync(warmup_inputs(mv))  # warm-up: one inference before reporting ready
        with contextlib.suppress(Exception):  # a model whose outputs cannot be estimated keeps the row limit
            by_response = s.max_response_bytes // response_row_bytes(mv, warm)
            mv.spec.max_rows = max(1, min(mv.spec.max_rows, by_response))
        done = time.perf_counter()
        mv.load_seconds = done - t0
        self.metrics.load_seconds.labels(m.version).set(mv.load_seconds)
        log.info("loaded %s %s (%s) in %.3fs on %s (framework import + load %.3fs, warm-up %.3fs)", m.name,
                 m.version, m.format, mv.load_seconds, mv.provider, loaded - t0, done - loaded,
                 extra={"version": m.version, "threads": threads, "max_rows_per_request": mv.spec.max_rows,
                        "provider": mv.provider, "load_s": round(loaded - t0, 4),
                        "warmup_s": round(done - loaded, 4)})

    def _after_batch(self, mv: ModelVersion) -> Callable[[Inputs, Inputs, int, float], None]:
        batch_hist = self.metrics.histogram(self.metrics.batch_size.labels(mv.manifest.version))
        infer_hist = self.metrics.histogram(self.metrics.inference.labels(mv.manifest.version))
        input_name = mv.manifest.inputs[0].name

        def after(inputs: Inputs, outputs: Inputs, rows: int, seconds: float) -> None:  # where the batch ran
            batch_hist.observe(rows)
            infer_hist.observe(seconds)
            if mv.drift is not None:
                mv.drift.update(inputs[input_name])

        return after

    async def start(self, threads: int) -> None:
        """Load every version off the event loop, then start the batchers; ``ready`` turns true (and the garbage
        collector, off since the process started, comes back: ``runtime.lifecycle.resume_gc``)."""
        began = process_age_s() if server_process() else None
        for mv in self.versions.values():
            await asyncio.to_thread(self.load, mv, threads)
            mv.batcher.start()
        resume_gc()
        self.ready = True
        age = process_age_s()
        if began is not None and age is not None:  # the start-up phases: imports + app, then the models
            cpu = time.process_time()  # every thread's: far steadier than wall time on a busy machine
            log.info("models ready %.2fs after the process started (%.2fs before loading them; CPU %.2fs)", age,
                     began, cpu, extra={"process_age_s": round(age, 3), "before_models_s": round(began, 3),
                                        "cpu_s": round(cpu, 3), "gc_frozen": gc.get_freeze_count()})

    async def stop(self, timeout: float) -> None:
        """Finish queued work (within ``timeout`` per version) and stop the batchers."""
        self.ready = False
        for mv in self.versions.values():
            if mv.batcher:
                await mv.batcher.stop(timeout=timeout)

    def publish_drift(self) -> None:
        for mv in self.versions.values():
            if mv.drift:
                mv.drift.publish()

    def sync_queue_depths(self) -> None:
        """Refresh the queue-depth gauges (before /metrics renders)."""
        for mv in self.versions.values():
            if mv.batcher:
                self.metrics.queue_depth.labels(mv.manifest.version).set(mv.batcher.depth)

    def describe(self) -> dict[str, Any]:
        """``GET /v1/models``: manifests (without sample inputs), routing weights, load times and drift."""
        weights = self.router.weights
        out = []
        for v, mv in self.versions.items():
            doc = mv.manifest.model_dump(mode="json", exclude={"sample_input"})
            doc.update(weight=weights.get(v, 0), load_seconds=round(mv.load_seconds, 4),
                       drift=mv.drift.stats() if mv.drift else None)
            out.append(doc)
        return {"name": self.name, "models": out, "sticky_header": self.router.sticky_header}
