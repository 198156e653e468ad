"""The bundled EC2 instance types (``instance_types.json``) and how many tasks of a config fit on one.

Used by ``validate`` and the EC2 capacity planners (a task that fits no instance would never be placed: the
service waits forever for capacity) and by ``cost`` (instances = ceil(tasks / tasks per instance)).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config.schema import AwsSection, Config

ECS_RESERVED_MEMORY_MIB = 256
"""``ECS_RESERVED_MEMORY`` the launch template's user data sets: "the agent registers the total memory minus 256
MiB for that instance" (ECS developer guide, "Reserving Amazon ECS Linux container instance memory")."""
OS_VISIBLE_MEMORY = 0.975
"""Share of the advertised memory the agent sees: the same guide's m4.large "has 8 GiB of installed memory" and
registers "7985 MiB available for tasks" (7985 / 8192 = 0.975): "platform memory overhead and memory occupied by
the system kernel"."""
ARCH = {"linux/amd64": "x86_64", "linux/arm64": "arm64"}
ROOT_VOLUME_GB = 30
"""The container instances' root volume (gp3, encrypted; the launch template's and the ECS-optimized AL2023 AMI's
default size): it holds the images."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    arch: str
    max_enis: int
    gpu_model: str | None
    source: str

    @property
    def task_memory_mib(self) -> int:
        """Memory the ECS agent registers for tasks (OS overhead and ``ECS_RESERVED_MEMORY`` removed)."""
        return math.floor(self.memory_mib * OS_VISIBLE_MEMORY) - ECS_RESERVED_MEMORY_MIB

    @property
    def awsvpc_tasks(self) -> int:
        """Tasks in ``awsvpc`` mode one instance can hold: one network interface each, and the instance's own
        primary interface uses one ("Each task that uses the awsvpc network mode receives its own elastic network
        interface", ECS developer guide, "Amazon ECS task networking for tasks hosted on EC2 instances"; without
        ENI trunking, which mldeploy does not turn on)."""
        return max(0, self.max_enis - 1)


@cache
def _data() -> dict[str, Any]:
    text = resources.files("mldeploy.cost").joinpath("instance_types.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def table() -> dict[str, InstanceType]:
    data = _data()
    out = {}
    for name, (vcpus, mem, gpus, arch, enis) in data["types"].items():
        fam = data["families"][name.split(".", 1)[0]]
        out[name] = InstanceType(name, vcpus, mem, gpus, arch, enis, fam["gpu"], fam["source"])
    return out


def read_date() -> str:
    return str(_data()["read"])


def get(name: str | None) -> InstanceType | None:
    return table().get(name or "")


TRUNKING_DOC = ("ENI trunking (ECS account setting awsvpcTrunking; ECS developer guide, \"Elastic network "
                "interface trunking\")")
"""Where AWS documents the way past the network-interface bound."""


LABEL = {"cpu": "CPU", "memory": "memory", "gpus": "GPUs", "enis": "network interfaces"}


@dataclass(frozen=True)
class Fit:
    """How many tasks of a config one instance holds, and by which resource: ``by`` maps ``cpu``, ``memory``,
    ``gpus`` (GPU tasks only) and ``enis`` to the tasks each alone would allow; ``tasks`` is their minimum."""

    instance: InstanceType
    by: dict[str, int]

    @property
    def tasks(self) -> int:
        return max(0, min(self.by.values()))

    @property
    def bounds(self) -> list[str]:
        """The resources that hold ``tasks`` down (several when they tie)."""
        return [k for k, v in self.by.items() if v == self.tasks]

    @property
    def eni_bound(self) -> bool:
        """True when only the network interfaces stop more tasks fitting (CPU, memory and GPUs allow more)."""
        return self.bounds == ["enis"]

    def reason(self) -> str:
        """``"bound by CPU, memory"`` or, for the ENI bound, what each other resource would allow."""
        if not self.eni_bound:
            return f"bound by {', '.join(LABEL[b] for b in self.bounds)}"
        others = ", ".join(f"{LABEL[k]} {v}" for k, v in self.by.items() if k != "enis")
        return (f"bound by network interfaces: {self.instance.max_enis} ENIs − 1 primary; {others} would fit")


def fit(aws: AwsSection) -> Fit | None:
    """The one count of tasks per ``aws.instance_type`` (validate, plan, cost, the Auto Scaling group's maximum):
    min(by CPU units, by the memory the agent registers, by whole GPUs, by network interfaces − 1). None when the
    type is not in the bundled table."""
    it = get(aws.instance_type)
    if it is None:
        return None
    by = {"cpu": it.vcpus * 1024 // aws.cpu, "memory": it.task_memory_mib // aws.memory}
    if aws.gpus:
        by["gpus"] = it.gpus // aws.gpus  # ECS assigns whole GPUs to one container each
    by["enis"] = it.awsvpc_tasks
    return Fit(it, by)


def tasks_per_instance(aws: AwsSection) -> int:
    """Tasks of ``aws``'s size one ``aws.instance_type`` holds (0: none fits, or the type is unknown)."""
    got = fit(aws)
    return got.tasks if got else 0


def fit_warnings(config: Config) -> list[str]:
    """``validate``'s explanation when the network interfaces, not CPU/memory/GPUs, bound the tasks per
    instance: the service then needs more instances than its size suggests (compute ec2 only)."""
    aws = config.aws
    got = fit(aws) if aws.compute == "ec2" else None
    if got is None or not got.eni_bound or got.tasks < 1:
        return []
    it, top = got.instance, aws.autoscaling.max
    without = min(v for k, v in got.by.items() if k != "enis")
    return [f"aws.instance_type {it.name}: {got.tasks} task{'s' if got.tasks != 1 else ''} per instance, "
            f"{got.reason()}. Each awsvpc task takes a network interface of its own and the instance's primary "
            f"interface counts, so autoscaling max {top} needs up to {math.ceil(top / got.tasks)} instances "
            f"({math.ceil(top / without)} by CPU/memory alone). To pack more tasks per instance turn on "
            f"{TRUNKING_DOC} on a supported type (`aws ecs put-account-setting-default --name awsvpcTrunking "
            f"--value enabled`: instances launched afterwards get a trunk interface), or pick a type with more "
            f"interfaces"]


def fit_problems(config: Config) -> list[tuple[str, str]]:
    """``(field, message)`` for each reason the task cannot run on ``aws.instance_type`` (compute ec2 only)."""
    aws = config.aws
    if aws.compute != "ec2":
        return []
    it = get(aws.instance_type)
    if it is None:
        known = ", ".join(sorted(table()))
        return [("aws.instance_type", f"{aws.instance_type} is not in the bundled instance table "
                                      f"(mldeploy/cost/instance_types.json): one of {known}")]
    problems: list[tuple[str, str]] = []
    want_arch = ARCH[config.image.platform]
    if it.arch != want_arch:
        problems.append(("aws.instance_type", f"{it.name} is {it.arch} but image.platform is "
                                              f"{config.image.platform}: the image would not run on it"))
    if aws.gpus and not it.gpus:
        problems.append(("aws.gpus", f"aws.gpus {aws.gpus} but {it.name} has no GPU (GPU types: "
                                     f"{', '.join(sorted(n for n, t in table().items() if t.gpus))})"))
    elif aws.gpus > it.gpus:
        problems.append(("aws.gpus", f"aws.gpus {aws.gpus} but {it.name} has {it.gpus} GPU(s)"))
    if aws.cpu > it.vcpus * 1024:
        problems.append(("aws.cpu", f"aws.cpu {aws.cpu} CPU units is more than {it.name}'s {it.vcpus} vCPUs "
                                    f"({it.vcpus * 1024} units)"))
    if aws.memory > it.task_memory_mib:
        problems.append(("aws.memory", f"aws.memory {aws.memory} MiB is more than the {it.task_memory_mib} MiB "
                                       f"the ECS agent registers on {it.name} ({it.memory_mib} MiB installed, minus "
                                       f"kernel overhead and ECS_RESERVED_MEMORY {ECS_RESERVED_MEMORY_MIB} MiB)"))
    return problems
