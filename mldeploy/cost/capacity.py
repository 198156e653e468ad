"""Which per-task capacity ``mldeploy cost`` uses, and at which request rates it estimates.

Precedence: ``--capacity`` → ``cost.capacity_rps_per_task`` → the last ``mldeploy bench`` measurement
(``.mldeploy/<env>/capacity.json``) → an *estimate* from the inference time ``mldeploy package`` recorded in the
artifact's ``model.json`` (``parity.single_row_ms``). Without any, only the cost before traffic can be estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldeploy.config import Project

DEFAULT_LEVELS = (100.0, 1000.0, 10000.0)
HTTP_OVERHEAD_S = 0.002
"""CPU seconds per request outside the model on one core (uvicorn + FastAPI routing, JSON decode/encode, the
access-log decision): an estimate, which is why a package-derived capacity tells the user to run ``bench``."""


@dataclass(frozen=True)
class Capacity:
    """Requests/s one task sustains (None: unknown) and where that number came from."""

    rps_per_task: float | None
    source: str | None
    measured_size: tuple[int | None, int | None] | None = None
    """The bench's (cpu, memory) when it measured a task size other than aws.cpu/aws.memory."""
    estimated: bool = False
    """True when derived from the packaged model's inference time, not measured under HTTP load."""


def single_row_ms(manifest: dict | None) -> float | None:
    """The served model's time for one single-row prediction (ms) that ``package`` recorded, if any."""
    if not isinstance(manifest, dict):
        return None
    for holder in (manifest.get("parity"), manifest.get("inference"), manifest):
        value = holder.get("single_row_ms") if isinstance(holder, dict) else None
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def from_inference_time(ms: float, cpu_units: int) -> float:
    """Requests/s a task of ``cpu_units`` sustains at 100 % CPU: vCPU ÷ (model time + HTTP overhead)."""
    return (cpu_units / 1024) / (ms / 1000 + HTTP_OVERHEAD_S)


def from_package(project: Project) -> Capacity:
    """The estimate from ``.mldeploy/<env>/artifact/model.json`` (``Capacity(None, None)`` without a timing)."""
    from mldeploy.workspace import Workspace, read_json

    path = Workspace.of(project).artifact_dir / "model.json"
    try:
        ms = single_row_ms(read_json(path))
    except (ValueError, OSError):
        ms = None
    if ms is None:
        return Capacity(None, None)
    value = round(from_inference_time(ms, project.config.aws.cpu), 1)
    return Capacity(value, f"estimate from package: {ms:g} ms per row + {HTTP_OVERHEAD_S * 1000:g} ms HTTP on "
                           f"{project.config.aws.cpu / 1024:g} vCPU", estimated=True)


def resolve(project: Project, override: float | None = None) -> Capacity:
    """The capacity by the precedence above."""
    from mldeploy.cost.bench import capacity_path, load_capacity

    config = project.config
    if override is not None:
        return Capacity(override, "--capacity")
    if config.cost.capacity_rps_per_task is not None:
        return Capacity(config.cost.capacity_rps_per_task, "cost.capacity_rps_per_task")
    measured = load_capacity(project)
    if not measured:
        return from_package(project)
    value = float(measured["capacity_rps_per_task"])
    source = f"bench {measured.get('measured_at', '')} ({capacity_path(project).relative_to(project.root)})"
    size = measured.get("task_size") or {}
    measured_size = (size.get("cpu"), size.get("memory"))
    other = measured_size if measured_size != (config.aws.cpu, config.aws.memory) else None
    return Capacity(value, source, other)


def levels(requested: list[float] | None, capacity: Capacity) -> list[float | None]:
    """The request rates to estimate: the requested ones, else the defaults when a capacity is known, else
    ``[None]`` (before traffic only)."""
    if requested is not None:
        return list(requested)
    if capacity.rps_per_task is not None:
        return list(DEFAULT_LEVELS)
    return [None]
