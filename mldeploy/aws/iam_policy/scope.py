"""The policy's vocabulary: the :class:`Scope` (one app/env, or every app), ARN placeholders, tag conditions
and the :class:`Grant` (actions on ARN patterns under a condition)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config import Project


ANY = "*"


@dataclass(frozen=True)
class Scope:
    """Where the policy applies: one app/env in one region/account (``*`` for what is unknown).

    ``project`` None (``iam-policy`` outside a project) covers every mldeploy app: names become ``*``.
    """

    project: Project | None
    region: str = ANY
    account: str = ANY
    partition: str = "aws"

    def values(self) -> dict[str, Any]:
        """Placeholders of the ARN patterns and conditions (a list value makes one ARN per item)."""
        base: dict[str, Any] = {"partition": self.partition, "region": self.region, "account": self.account}
        if self.project is None:
            return {**base, "app": ANY, "env": ANY, "base": ANY, "repo": ANY, "cluster": ANY, "service": ANY,
                    "canary_service": ANY, "family": ANY, "lb": ANY, "tg": ANY, "tgc": ANY, "exec_role": "*-exec",
                    "task_role": "*-task", "log_group": "/mldeploy/*", "dashboard": "mldeploy-*",
                    "alarm": ["mldeploy-*"], "topic": "mldeploy-*-alarms", "ssm_env": "mldeploy/*",
                    "ssm_app": "mldeploy/*", "zone": ANY, "vpc": ANY}
        n, cfg = self.project.names, self.project.config
        return {**base, "app": n.app, "env": n.env, "base": n.base, "repo": cfg.registry.repository or cfg.name,
                "cluster": n.cluster, "service": n.service, "canary_service": n.canary_service,
                "family": n.task_family, "lb": n.load_balancer, "tg": n.target_group, "tgc": n.canary_target_group,
                "exec_role": n.execution_role, "task_role": n.task_role, "log_group": n.log_group,
                "dashboard": n.dashboard, "alarm": alarm_names(self.project), "topic": f"mldeploy-{n.base}-alarms",
                "ssm_env": n.ssm_prefix.strip("/"), "ssm_app": f"mldeploy/{n.app}",
                "zone": (cfg.aws.hosted_zone_id or ANY).removeprefix("/hostedzone/"), "vpc": cfg.aws.vpc_id or ANY}

    def tag_keys(self) -> list[str] | None:
        """Every tag key mldeploy sends on a create call (``spec.tags`` of both roles, plus ``Name`` on security
        groups); None outside a project (the user's ``aws.tags`` are unknown)."""
        if self.project is None:
            return None
        return sorted({*self.project.names.tags(self.project.config.aws.tags), "mldeploy:role", "mldeploy:version",
                       "Name"})

    @property
    def boundary(self) -> str | None:
        return self.project.config.aws.permissions_boundary if self.project is not None else None

    @property
    def uses_ecr(self) -> bool:
        return self.project is None or not self.project.config.registry.url

    @property
    def domain(self) -> str | None:
        return self.project.config.aws.domain if self.project is not None else None

    @property
    def uses_ec2(self) -> bool:
        """``aws.compute: ec2`` (outside a project: no, to keep the default policy under IAM's size quota)."""
        return self.project is not None and self.project.config.aws.compute == "ec2"

    @property
    def uses_s3(self) -> bool:
        """``model.store: s3`` (outside a project: no)."""
        return self.project is not None and self.project.config.model.store == "s3"


def alarm_names(project: Project) -> list[str]:
    """Every alarm name mldeploy gives the app/env (both roles: resources/alarms.py)."""
    from mldeploy.aws.resources import alarms

    return [project.names.alarm(kind) for kind in (*alarms.STABLE_KINDS, *alarms.CANARY_KINDS)]


def expand(pattern: str, values: dict[str, Any]) -> list[str]:
    """``pattern`` with its placeholders filled: one string per item of a list-valued placeholder."""
    for key in re.findall(r"\{(\w+)\}", pattern):
        if isinstance(values[key], list):
            return [s for item in values[key] for s in expand(pattern.replace("{" + key + "}", item), values)]
    return [re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], pattern)]


def fill(value: Any, values: dict[str, Any]) -> Any:
    """``value`` (str/list/dict) with ``{placeholder}`` replaced from ``values``."""
    if isinstance(value, str):
        (out,) = expand(value, values)
        return out
    if isinstance(value, list):
        return [s for v in value for s in (expand(v, values) if isinstance(v, str) else [fill(v, values)])]
    if isinstance(value, dict):
        return {fill(k, values): fill(v, values) for k, v in value.items()}
    return value


def owned(prefix: str = "aws") -> dict[str, Any]:
    """An existing resource carries our tags (``aws:ResourceTag``; EC2 also answers it as ``ec2:ResourceTag``)."""
    return {"StringLike": {f"{prefix}:ResourceTag/mldeploy:app": "{app}", f"{prefix}:ResourceTag/mldeploy:env":
                           "{env}"}}


def tagged_on_create(scope: Scope) -> dict[str, Any]:
    """The create call sends our tags (``aws:RequestTag``) and no other keys than mldeploy sends
    (``aws:TagKeys``, when the project's keys are known)."""
    cond: dict[str, Any] = {"StringLike": {"aws:RequestTag/mldeploy:app": "{app}",
                                           "aws:RequestTag/mldeploy:env": "{env}"}}
    keys = scope.tag_keys()
    if keys is not None:
        cond["ForAllValues:StringEquals"] = {"aws:TagKeys": keys}
    return cond


Condition = Callable[[Scope], dict[str, Any] | None]


@dataclass(frozen=True)
class Grant:
    """Allow ``actions`` (``service:Action``) on the ARN patterns ``resources`` under ``condition``.

    Grants with the same ``merge`` key and condition become one statement (IAM's policy size limits: 10,240
    characters for a role's inline policies, 6,144 for a managed policy). Only merge grants whose actions each
    authorize on a resource type of their own, so that the cross product allows nothing more.
    """

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition | None = None
    when: Callable[[Scope], bool] = field(default=lambda scope: True)
    merge: str | None = None

    def statement(self, scope: Scope) -> dict[str, Any] | None:
        if not self.when(scope):
            return None
        values = scope.values()
        stmt: dict[str, Any] = {"Sid": self.sid, "Effect": "Allow", "Action": sorted(self.actions),
                                "Resource": sorted(set(fill(list(self.resources), values)))}
        cond = self.condition(scope) if self.condition else None
        if cond:
            stmt["Condition"] = fill(cond, values)
        return stmt


def _a(service: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{service}:{n}" for n in names)
