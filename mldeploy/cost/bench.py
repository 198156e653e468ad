"""``mldeploy bench``: a bounded load test (duration, concurrency, warm-up) and the per-task capacity it implies.

The server for ``bench --local`` is :class:`mldeploy.local.runtime_proc.LocalRuntime`.

A closed-loop generator: ``concurrency`` workers each send one request, wait for the answer, send the next, until
the duration (or ``max_requests``) is spent. Requests started during the warm-up are not measured. Percentiles are
exact (nearest rank over the sorted latencies of the successful requests).
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mldeploy.errors import MldeployError
from mldeploy.workspace import CAPACITY_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project

CAPACITY_FILE = CAPACITY_RECORD
MAX_DURATION_S = 600.0
MAX_CONCURRENCY = 1024


@dataclass
class BenchResult:
    url: str
    concurrency: int
    duration_s: float
    warmup_s: float
    requests: int
    ok: int
    errors: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    status: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": round(self.error_rate, 5)}


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def endpoint(url: str) -> str:
    """``{url}/predict`` unless the URL already names a path (same rule as ``mldeploy predict``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MldeployError(f"--url {url!r} is not an http(s) URL", hint="e.g. --url https://my-app.example.com")
    return url if parts.path not in ("", "/") else url.rstrip("/") + "/predict"


def _loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


async def _load(url: str, body: bytes, headers: dict[str, str], method: str, duration: float, concurrency: int,
                warmup: float, max_requests: int | None, timeout: float) -> BenchResult:
    import httpx

    latencies: list[float] = []
    status: Counter[str] = Counter()
    samples: list[str] = []
    sent = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, stop_at = start + warmup, start + warmup + duration
    last_done = measure_from

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, last_done
        while loop.time() < stop_at and (max_requests is None or sent < max_requests):
            sent += 1
            t0 = loop.time()
            try:
                resp = await client.request(method, url, content=body, headers=headers)
                code: str = str(resp.status_code)
                detail = f"{code} {resp.text[:200]}" if resp.status_code >= 400 else ""
            except httpx.HTTPError as e:
                code, detail = type(e).__name__, f"{type(e).__name__}: {e}"
            t1 = loop.time()
            if t0 < measure_from:
                continue
            last_done = max(last_done, t1)
            status[code] += 1
            if code.startswith(("2", "3")):
                latencies.append((t1 - t0) * 1000)
            elif len(samples) < 5:
                samples.append(detail)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # loopback: no proxy from the environment between the generator and the server
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=not _loopback(url)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    window = max(last_done - measure_from, 1e-9)
    latencies.sort()
    total = sum(status.values())
    return BenchResult(
        url=url, concurrency=concurrency, duration_s=round(window, 3), warmup_s=warmup, requests=total,
        ok=len(latencies), errors=total - len(latencies), rps=len(latencies) / window,
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95), p99_ms=percentile(latencies, 99),
        mean_ms=sum(latencies) / len(latencies) if latencies else None, max_ms=latencies[-1] if latencies else None,
        status=dict(status), error_samples=samples,
    )


def run(url: str, *, body: bytes = b"", content_type: str = "application/json", headers: dict[str, str] | None = None,
        method: str = "POST", duration: float = 10.0, concurrency: int = 8, warmup: float = 2.0,
        max_requests: int | None = None, timeout: float = 10.0) -> BenchResult:
    """Load ``url`` for ``warmup + duration`` seconds with ``concurrency`` requests in flight."""
    if not 0 < duration <= MAX_DURATION_S:
        raise MldeployError(f"--duration {duration:g}: give 0 < seconds ≤ {MAX_DURATION_S:g}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise MldeployError(f"--concurrency {concurrency}: give 1 … {MAX_CONCURRENCY}")
    if warmup < 0:
        raise MldeployError(f"--warmup {warmup:g}: must be ≥ 0")
    hdrs = {"Content-Type": content_type, **(headers or {})}
    return asyncio.run(_load(url, body, hdrs, method, duration, concurrency, warmup, max_requests, timeout))


# --------------------------------------------------------------------------- capacity file


def capacity_path(project: Project) -> Path:
    return Workspace.of(project).path(CAPACITY_RECORD)


def save_capacity(project: Project, result: BenchResult, tasks: int, source: str, scale: float = 1.0,
                  note: str | None = None) -> dict[str, Any]:
    """Store ``rps / tasks × scale`` as the per-task capacity ``cost`` uses (``.mldeploy/<env>/capacity.json``)."""
    aws = project.config.aws
    record = {
        "capacity_rps_per_task": round(result.rps / tasks * scale, 3),
        "tasks": tasks,
        "scale": scale,
        "note": note,
        "source": source,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task_size": {"cpu": aws.cpu, "memory": aws.memory},
        "client": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "bench": result.to_dict(),
    }
    Workspace.of(project).write_json(CAPACITY_RECORD, record)
    return record


def load_capacity(project: Project) -> dict[str, Any] | None:
    """The stored measurement, or None (a broken file counts as none)."""
    record = Workspace.of(project).record(CAPACITY_RECORD)
    if record is None:
        return None
    try:
        float(record["capacity_rps_per_task"])
        return record
    except (ValueError, KeyError, TypeError):
        return None
