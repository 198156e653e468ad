"""Which per-task capacity ``mldeploy cost`` uses, and at which request rates it estimates.

Precedence: ``--capacity`` → ``cost.capacity_rps_per_task`` → the last ``mldeploy bench`` measurement
(``.mldeploy/<env>/capacity.json``). Without any, only the cost before traffic can be estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldeploy.config import Project

DEFAULT_LEVELS = (100.0, 1000.0, 10000.0)


@dataclass(frozen=True)
class Capacity:
    """Requests/s one task sustains (None: unknown) and where that number came from."""

    rps_per_task: float | None
    source: str | None
    measured_size: tuple[int | None, int | None] | None = None
    """The bench's (cpu, memory) when it measured a task size other than aws.cpu/aws.memory."""


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
        return Capacity(None, None)
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
