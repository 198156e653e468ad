"""Preflight checks for ``mldeploy plan``: account limits a deployment would hit, as plain notes.

``notes(spec, remote)`` compares the Fargate vCPU quotas (Service Quotas ``GetServiceQuota``, service code
``fargate``) with the peak a deployment of this config can reach: a rolling deployment runs up to
``maximumPercent`` (200 %) of the service's tasks, and a canary (``release.steps``) runs beside it, with ``promote``
rolling the stable service while the canary still serves. Fargate counts vCPUs of *running* tasks account-wide
per region ("AWS Fargate service quotas", ECS developer guide), so other workloads share the same quota. Reads
only; never fails a plan: an unreadable quota becomes a note saying how to check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import StackSpec

SERVICE_CODE = "fargate"
ON_DEMAND_VCPU = "L-3032A538"
"""Service Quotas: "Fargate On-Demand vCPU resource count"."""
SPOT_VCPU = "L-36FBB829"
"""Service Quotas: "Fargate Spot vCPU resource count"."""
MAX_PERCENT = 200
"""``service.DEPLOYMENT["maximumPercent"]``: old and new tasks side by side during a rolling deployment."""


@dataclass(frozen=True)
class Peak:
    """The most tasks (and vCPUs) one deployment of the config can run at once."""

    stable_tasks: int
    canary_tasks: int
    vcpu_per_task: float

    @property
    def tasks(self) -> int:
        return self.stable_tasks + self.canary_tasks

    @property
    def vcpu(self) -> float:
        return self.tasks * self.vcpu_per_task


def peak(spec: StackSpec) -> Peak:
    """Autoscaling's max tasks at ``MAX_PERCENT`` during a rolling deployment, plus a canary at its largest step
    (``ceil(max × step / 100)`` tasks, as ``Fleet.canary_count``)."""
    aws = spec.config.aws
    top = max(aws.autoscaling.max, aws.desired_count)
    steps = [s for s in spec.config.release.steps if s < 100] or [0]
    canary = max(1, math.ceil(top * max(steps) / 100)) if max(steps) else 0
    return Peak(stable_tasks=math.ceil(top * MAX_PERCENT / 100), canary_tasks=canary,
                vcpu_per_task=aws.cpu / 1024)


def split(spec: StackSpec, tasks: int) -> tuple[int, int]:
    """(on-demand, spot) tasks for ``tasks`` under the capacity-provider strategy (``base`` on FARGATE first)."""
    spot = spec.config.aws.spot
    if not spot.enabled:
        return tasks, 0
    base = min(tasks, spot.base)
    rest = tasks - base
    on_spot = math.floor(rest * spot.weight / 100)
    return tasks - on_spot, on_spot


def quota(remote: Remote, code: str) -> float:
    """The applied quota value (``GetServiceQuota``); raises AwsError where it cannot be read."""
    got = remote.get("service-quotas", "get_service_quota", ServiceCode=SERVICE_CODE, QuotaCode=code)
    value = ((got or {}).get("Quota") or {}).get("Value")
    if value is None:
        raise AwsError(f"Service Quotas returned no value for {SERVICE_CODE} {code}")
    return float(value)


def _fmt(v: float) -> str:
    return f"{v:g}"


def notes(spec: StackSpec, remote: Remote) -> list[str]:
    """Plan notes about the Fargate vCPU quotas (one per capacity kind the config uses)."""
    p = peak(spec)
    on_demand, on_spot = split(spec, p.tasks)
    what = (f"{p.stable_tasks} tasks while a rolling deployment runs at {MAX_PERCENT}% of autoscaling max "
            f"{max(spec.config.aws.autoscaling.max, spec.config.aws.desired_count)}"
            + (f" + {p.canary_tasks} canary" if p.canary_tasks else "")
            + f", {_fmt(p.vcpu_per_task)} vCPU each")
    out: list[str] = []
    for label, code, tasks in (("On-Demand", ON_DEMAND_VCPU, on_demand), ("Spot", SPOT_VCPU, on_spot)):
        if not tasks:
            continue
        need = tasks * p.vcpu_per_task
        try:
            limit = quota(remote, code)
        except AwsError as e:
            out.append(f"Fargate {label} vCPU quota: not readable here ({e.message}); a deployment may run up to "
                       f"{_fmt(need)} vCPU ({what}): check it with `aws service-quotas get-service-quota "
                       f"--service-code {SERVICE_CODE} --quota-code {code}`")
            continue
        if need > limit:
            out.append(f"Fargate {label} vCPU quota is {_fmt(limit)} in {spec.region} but a deployment may run "
                       f"{_fmt(need)} vCPU ({what}): tasks beyond it fail to start; request an increase (Service "
                       f"Quotas, {SERVICE_CODE} {code}) or lower aws.autoscaling.max / aws.cpu")
        else:
            out.append(f"Fargate {label} vCPU quota {_fmt(limit)} covers the peak of {_fmt(need)} vCPU ({what}); "
                       "it is shared with every other Fargate task in this account and region")
    return out


def as_json(spec: StackSpec) -> dict[str, Any]:
    """The peak as data (for ``plan --json`` consumers and tests)."""
    p = peak(spec)
    on_demand, on_spot = split(spec, p.tasks)
    return {"stable_tasks": p.stable_tasks, "canary_tasks": p.canary_tasks, "vcpu_per_task": p.vcpu_per_task,
            "on_demand_vcpu": on_demand * p.vcpu_per_task, "spot_vcpu": on_spot * p.vcpu_per_task}
