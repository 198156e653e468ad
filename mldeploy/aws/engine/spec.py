"""``StackSpec``: what one plan is about (project, account, region, role) — the one context for deploy and release.

``role`` is ``stable`` (what ``up`` manages) or ``canary`` (the second service, target group, task-definition
revision and alarms that ``canary`` adds beside it). ``Known`` carries the values planners learn or promise
(``vpc_id``, ``tg_arn``…): concrete when the resource exists, a ``Ref`` to an earlier instruction's output when the
plan creates it. ``key()`` namespaces the role's values (``tg_arn`` vs ``canary.tg_arn``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.config.names import ResourceNames
    from mldeploy.config.schema import Config

CONTAINER_NAME = "model"

Role = Literal["stable", "canary"]
Known = dict[str, Any]


@dataclass(frozen=True)
class StackSpec:
    project: Project
    region: str
    account: str
    partition: str = "aws"
    role: Role = "stable"
    image: Any = None
    """The image to deploy (a URI, or ``Ref("image")`` when ``up`` builds it after planning); None keeps what runs."""
    version: str | None = None
    """The model version a canary carries (``mldeploy:version`` tag, ``MLDEPLOY_MODEL_VERSION``)."""
    desired_count: int | None = None
    """Tasks for the canary service (the stable service's count comes from config/autoscaling)."""

    @classmethod
    def of(cls, project: Project, remote: Any, **kwargs: Any) -> StackSpec:
        """A spec for ``project`` in the remote's account and region."""
        return cls(project=project, region=remote.region, account=remote.account, partition=remote.partition,
                   **kwargs)

    def as_role(self, role: Role, **kwargs: Any) -> StackSpec:
        return replace(self, role=role, **kwargs)

    @property
    def config(self) -> Config:
        return self.project.config

    @property
    def names(self) -> ResourceNames:
        return self.project.names

    @property
    def canary(self) -> bool:
        return self.role == "canary"

    def key(self, name: str) -> str:
        """``name`` for the stable role, ``canary.name`` for the canary's values in ``Known``."""
        return f"canary.{name}" if self.canary else name

    # ------------------------------------------------------------------------------------------ names by role

    @property
    def service_name(self) -> str:
        return self.names.canary_service if self.canary else self.names.service

    @property
    def target_group_name(self) -> str:
        return self.names.canary_target_group if self.canary else self.names.target_group

    # ------------------------------------------------------------------------------------------------ tags, ARNs

    @property
    def tags(self) -> dict[str, str]:
        tags = self.names.tags(self.config.aws.tags)
        return {**tags, "mldeploy:role": "canary"} if self.canary else tags

    def tag_list(self, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
        """Tags as AWS's list of pairs (``key="key", value="value"`` for ECS)."""
        return [{key: k, value: v} for k, v in sorted(self.tags.items())]

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account}:{resource}"

    @property
    def https(self) -> bool:
        """The endpoint serves HTTPS: a certificate is given, or ``aws.domain`` gets one from ACM."""
        return bool(self.config.aws.certificate_arn or self.config.aws.domain)

    @property
    def ecr_repository(self) -> str:
        return self.config.registry.repository or self.config.name

    @property
    def uses_ecr(self) -> bool:
        return not self.config.registry.url

    def owns(self, tags: dict[str, str]) -> bool:
        return tags.get("mldeploy:app") == self.names.app and tags.get("mldeploy:env") == self.names.env

    def check_owned(self, kind: str, name: str, tags: dict[str, str]) -> None:
        """Refuse to touch a resource with our name that is not tagged as ours (someone else's)."""
        if self.owns(tags):
            return
        app, env = tags.get("mldeploy:app"), tags.get("mldeploy:env")
        owner = f"mldeploy app {app!r} env {env!r}" if app else "something not managed by mldeploy"
        raise AwsError(
            f"{kind} {name!r} already exists and belongs to {owner}, not to app {self.names.app!r} "
            f"env {self.names.env!r}",
            hint="rename the app (name: in mldeploy.yaml), pick another --env, or delete/rename that resource",
        )


def tag_dict(tags: list[dict[str, str]] | dict[str, str] | None) -> dict[str, str]:
    """AWS tag lists (``Key``/``Value`` or ``key``/``value``) → dict."""
    if isinstance(tags, dict):
        return dict(tags)
    out: dict[str, str] = {}
    for t in tags or []:
        k = t.get("Key", t.get("key"))
        v = t.get("Value", t.get("value", ""))
        if k is not None:
            out[k] = v
    return out
