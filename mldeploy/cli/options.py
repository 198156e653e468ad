"""Options several commands share: the deploy/release ``--target`` and ``--force-unlock``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Target(StrEnum):
    """Where ``up`` deploys and where release commands act."""

    aws = "aws"
    local = "local"


UpTarget = Annotated[Target, typer.Option("--target", help="Where to deploy.")]
ReleaseTarget = Annotated[Target, typer.Option("--target", help="AWS (ECS services + ALB weights) or the local "
                                                                "server (routing.json).")]
UpForceUnlock = Annotated[bool, typer.Option("--force-unlock", help="Break a stale deployment lock "
                                                                    "(only when the job holding it died).")]
ReleaseForceUnlock = Annotated[bool, typer.Option("--force-unlock", help="Break a stale deployment lock (a job that "
                                                                         "died holding it) before starting.")]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="MLDEPLOY_API_KEY", show_default=False,
                                           help="API key sent as X-API-Key (runtime.auth.mode api_key); never "
                                                "printed.")]
