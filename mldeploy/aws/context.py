"""Everything a resource module needs while planning and applying: config, names, clients, outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.config.schema import Config


CONTAINER_NAME = "model"


@dataclass
class DeployContext:
    project: Project
    aws: Clients
    image: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    """Ids/ARNs discovered while planning or produced while applying (``Pending`` until created)."""

    @property
    def config(self) -> Config:
        return self.project.config

    @property
    def names(self):  # -> ResourceNames
        return self.project.names

    @property
    def tags(self) -> dict[str, str]:
        return self.names.tags(self.config.aws.tags)

    def tag_list(self, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
        """Tags as AWS's list-of-pairs (``key="key", value="value"`` for ECS)."""
        return [{key: k, value: v} for k, v in sorted(self.tags.items())]

    @property
    def ecr_repository(self) -> str:
        return self.config.registry.repository or self.config.name

    @property
    def uses_ecr(self) -> bool:
        return not self.config.registry.url

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        reg = self.aws.region if region else ""
        return f"arn:{self.aws.partition}:{service}:{reg}:{self.aws.account}:{resource}"

    def check_owned(self, kind: str, name: str, tags: dict[str, str]) -> None:
        """Refuse to touch a resource with our name that is not tagged as ours (someone else's)."""
        app, env = tags.get("mldeploy:app"), tags.get("mldeploy:env")
        if app == self.names.app and env == self.names.env:
            return
        owner = f"mldeploy app {app!r} env {env!r}" if app else "something not managed by mldeploy"
        raise AwsError(
            f"{kind} {name!r} already exists and belongs to {owner}, not to app {self.names.app!r} "
            f"env {self.names.env!r}",
            hint="rename the app (name: in mldeploy.yaml), pick another --env, or delete/rename that resource",
        )


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """AWS tag lists (``Key``/``Value`` or ``key``/``value``) → dict."""
    out: dict[str, str] = {}
    for t in tags or []:
        k = t.get("Key", t.get("key"))
        v = t.get("Value", t.get("value", ""))
        if k is not None:
            out[k] = v
    return out
