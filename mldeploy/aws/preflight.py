"""Preflight checks for ``mldeploy plan``: account limits a deployment would hit, as plain notes.

``notes(spec, remote)`` compares the Fargate vCPU quotas (Service Quotas ``GetServiceQuota``, service code
``fargate``) with the peak a deployment of this config can reach: a rolling deployment runs up to
``maximumPercent`` (200 %) of the service's tasks, and a canary (``release.steps``) runs beside it, with ``promote``
rolling the stable service while the canary still serves. Fargate counts vCPUs of *running* tasks account-wide
per region ("AWS Fargate service quotas", ECS developer guide), so other workloads share the same quota. With
``aws.compute: ec2`` the tasks run on the Auto Scaling group's instances instead: ``ec2_notes`` checks the instance
family's EC2 On-Demand / Spot vCPU quota (service code ``ec2``) against the group's maximum, and
``capacity.refresh_notes`` says when an instance refresh of the group is unfinished (none is planned then). Reads
only; never fails a plan: an unreadable quota becomes a note saying how to check it.
"""

from __future__ import annotations

import math
import re
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


def quota(remote: Remote, code: str, service_code: str = SERVICE_CODE) -> float:
    """The applied quota value (``GetServiceQuota``); raises AwsError where it cannot be read."""
    got = remote.get("service-quotas", "get_service_quota", ServiceCode=service_code, QuotaCode=code)
    value = ((got or {}).get("Quota") or {}).get("Value")
    if value is None:
        raise AwsError(f"Service Quotas returned no value for {service_code} {code}")
    return float(value)


def _fmt(v: float) -> str:
    return f"{v:g}"


def notes(spec: StackSpec, remote: Remote) -> list[str]:
    """Plan notes about the vCPU quotas the config's capacity counts against: Fargate's, or with ``aws.compute:
    ec2`` the EC2 instance family's (``ec2_notes``), one per capacity kind (On-Demand, Spot) the config uses."""
    if spec.config.aws.compute == "ec2":
        from mldeploy.aws.resources.capacity import refresh_notes

        return ec2_notes(spec, remote) + refresh_notes(spec, remote)
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


# ------------------------------------------------------------------------------------------ compute: ec2

EC2_SERVICE_CODE = "ec2"


@dataclass(frozen=True)
class Ec2Quota:
    """One EC2 vCPU quota class: Service Quotas codes (service ``ec2``) for On-Demand and Spot."""

    label: str
    on_demand: str
    spot: str


# EC2 counts "the number of vCPUs" of running instances per instance class, account-wide per region (EC2 user
# guide, "On-Demand Instance quotas" and "Spot Instance quotas"); the quota names and codes as Service Quotas lists
# them (service code ec2).
STANDARD = Ec2Quota("Standard (A, C, D, H, I, M, R, T, Z)", "L-1216C47A", "L-34B43A08")
"""Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances / All Standard (…) Spot Instance Requests."""
G_VT = Ec2Quota("G and VT", "L-DB2E81BA", "L-3819A6DF")
"""Running On-Demand G and VT instances / All G and VT Spot Instance Requests."""
P = Ec2Quota("P", "L-417A185B", "L-7212CCBC")
"""Running On-Demand P instances / All P Spot Instance Requests."""
OWN_QUOTA_PREFIXES = ("inf", "trn", "dl", "hpc", "mac", "u", "x", "f")
"""Families with quotas of their own (Inf, Trn, DL, HPC, Mac, High Memory, X, F): not checked here. ``inf``/
``trn``/``dl`` would otherwise read as the standard I, T and D families."""


def ec2_quota_class(instance_type: str) -> Ec2Quota | None:
    """The quota class of ``instance_type`` by its family's letters (``g5.xlarge`` → G and VT), None when it has
    a quota of its own this module does not check."""
    letters = re.match(r"[a-z]+", instance_type.split(".", 1)[0].lower())
    prefix = letters.group(0) if letters else ""
    if prefix.startswith(("g", "vt")):
        return G_VT
    if prefix.startswith("p"):
        return P
    if not prefix or prefix.startswith(OWN_QUOTA_PREFIXES):
        return None
    return STANDARD if prefix[0] in "acdhimrtz" else None


def ec2_split(spec: StackSpec, instances: int) -> tuple[int, int]:
    """At most how many of ``instances`` are On-Demand / Spot under the group's mixed instances policy:
    ``spot.base`` On-Demand first, then ``100 − spot.weight`` percent On-Demand above it
    (``capacity._distribution``); each side rounded up, so each quota is checked against its worst case."""
    spot = spec.config.aws.spot
    if not spot.enabled:
        return instances, 0
    base = min(instances, spot.base)
    rest = instances - base
    return base + math.ceil(rest * (100 - spot.weight) / 100), math.ceil(rest * spot.weight / 100)


def ec2_notes(spec: StackSpec, remote: Remote) -> list[str]:
    """The instance family's EC2 vCPU quotas against the Auto Scaling group's maximum (``capacity.max_instances``
    × the type's vCPUs): ECS managed scaling may grow the group to it during a deployment with a canary."""
    from mldeploy.aws.resources.capacity import max_instances
    from mldeploy.cost.instances import get

    aws = spec.config.aws
    it = get(aws.instance_type)
    if it is None:
        return [f"EC2 vCPU quota: not checked ({aws.instance_type} is not in the bundled instance table)"]
    cls = ec2_quota_class(it.name)
    top = max_instances(spec)
    if cls is None:
        return [f"EC2 vCPU quota: not checked for {it.name} (its family has a quota of its own); the Auto Scaling "
                f"group may run {top} × {it.vcpus} vCPU"]
    on_demand, on_spot = ec2_split(spec, top)
    from mldeploy.aws.resources.capacity import density

    what = (f"the Auto Scaling group's max {top} × {it.name}, {it.vcpus} vCPU each, room for 2 × autoscaling "
            f"max {aws.autoscaling.max} tasks at {density(spec)}")
    out: list[str] = []
    for kind, code, n in (("On-Demand", cls.on_demand, on_demand), ("Spot", cls.spot, on_spot)):
        if not n:
            continue
        need = n * it.vcpus
        label = f"EC2 {kind} {cls.label} vCPU quota"
        count = f"{n} {kind} instance" + ("s" if n != 1 else "")
        try:
            limit = quota(remote, code, EC2_SERVICE_CODE)
        except AwsError as e:
            out.append(f"{label}: not readable here ({e.message}); {count} may run {need} vCPU "
                       f"({what}): check it with `aws service-quotas get-service-quota --service-code "
                       f"{EC2_SERVICE_CODE} --quota-code {code}`")
            continue
        if need > limit:
            out.append(f"{label} is {_fmt(limit)} in {spec.region} but {count} may run {need} vCPU "
                       f"({what}): instances beyond it fail to launch and tasks wait for capacity; request an "
                       f"increase (Service Quotas, {EC2_SERVICE_CODE} {code}) or lower aws.autoscaling.max")
        else:
            out.append(f"{label} {_fmt(limit)} covers {count}, {need} vCPU ({what}); it is shared "
                       "with every other instance of the class in this account and region")
    return out
