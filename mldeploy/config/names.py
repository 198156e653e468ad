"""AWS resource names derived from the app name and environment (one place, so every module agrees)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ELB_NAME_MAX = 32
_ELB_NAME = re.compile(r"[A-Za-z0-9-]+")


def elb_name_problem(name: str, *, load_balancer: bool = False) -> str | None:
    """Why AWS would reject ``name`` as a load balancer / target group name (None when it is valid).

    botocore elbv2 ``CreateLoadBalancerInput.Name``: "can have a maximum of 32 characters, must contain only
    alphanumeric characters or hyphens, must not begin or end with a hyphen, and must not begin with "internal-"";
    ``CreateTargetGroupInput.Name``: the same without the "internal-" rule.
    """
    if len(name) > ELB_NAME_MAX:
        return f"is {len(name)} characters; AWS allows at most {ELB_NAME_MAX}"
    if not _ELB_NAME.fullmatch(name):
        bad = "".join(sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))}))
        return f"may contain only letters, digits and hyphens (not {bad!r})"
    if name.startswith("-") or name.endswith("-"):
        return "must not begin or end with a hyphen"
    if load_balancer and name.startswith("internal-"):
        return "must not begin with 'internal-' (AWS reserves it for internal load balancers' DNS names)"
    return None


@dataclass(frozen=True)
class ResourceNames:
    app: str
    env: str

    @property
    def base(self) -> str:
        """``app`` for the default environment, ``app-env`` otherwise (≤ 28 chars, checked in config)."""
        return self.app if self.env in ("", "default") else f"{self.app}-{self.env}"

    @property
    def cluster(self) -> str:
        return self.base

    @property
    def service(self) -> str:
        return self.base

    @property
    def canary_service(self) -> str:
        return f"{self.base}-canary"

    @property
    def task_family(self) -> str:
        return self.base

    @property
    def load_balancer(self) -> str:
        return self.base

    @property
    def target_group(self) -> str:
        return f"{self.base}-tg"

    @property
    def canary_target_group(self) -> str:
        return f"{self.base}-tgc"

    @property
    def execution_role(self) -> str:
        return f"{self.base}-exec"

    @property
    def task_role(self) -> str:
        return f"{self.base}-task"

    @property
    def alb_security_group(self) -> str:
        return f"{self.base}-alb"

    @property
    def task_security_group(self) -> str:
        return f"{self.base}-tasks"

    @property
    def log_group(self) -> str:
        return f"/mldeploy/{self.app}/{self.env}"

    @property
    def dashboard(self) -> str:
        return f"mldeploy-{self.base}"

    @property
    def ssm_prefix(self) -> str:
        return f"/mldeploy/{self.app}/{self.env}"

    def elb_names(self) -> dict[str, str]:
        """The Elastic Load Balancing names derived from app and env: {what: name}."""
        return {"load balancer": self.load_balancer, "target group": self.target_group,
                "canary target group": self.canary_target_group}

    def elb_problems(self) -> list[tuple[str, str, str]]:
        """``(what, name, why)`` for each derived name AWS would reject (``elb_name_problem``)."""
        out = []
        for what, name in self.elb_names().items():
            problem = elb_name_problem(name, load_balancer=what == "load balancer")
            if problem:
                out.append((what, name, problem))
        return out

    def alarm(self, kind: str) -> str:
        return f"mldeploy-{self.base}-{kind}"

    def tags(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The tags every resource carries (``mldeploy:app``, ``mldeploy:env``) plus the user's."""
        return {**(extra or {}), "mldeploy:app": self.app, "mldeploy:env": self.env}
