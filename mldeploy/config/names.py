"""AWS resource names derived from the app name and environment (one place, so every module agrees)."""

from __future__ import annotations

from dataclasses import dataclass


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

    def alarm(self, kind: str) -> str:
        return f"mldeploy-{self.base}-{kind}"

    def tags(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The tags every resource carries (``mldeploy:app``, ``mldeploy:env``) plus the user's."""
        return {**(extra or {}), "mldeploy:app": self.app, "mldeploy:env": self.env}
