"""What every release operation needs: the project, AWS clients, who is deploying and from which commit."""

from __future__ import annotations

import contextlib
import getpass
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mldeploy.gitinfo import git_commit

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project

SKIP_WAIT_ENV = "MLDEPLOY_SKIP_HEALTH_WAIT"
"""``1`` skips waiting for healthy targets / service stability. For emulators (moto runs no tasks, so
runningCount stays 0 and targets never register); never set it against real AWS."""


def skip_health_wait() -> bool:
    return os.environ.get(SKIP_WAIT_ENV, "").lower() in ("1", "true", "yes")


@dataclass
class ReleaseContext:
    """A project plus lazily created AWS clients (``mldeploy.aws.clients``: retries, error translation)."""

    project: Project
    _clients: Clients | None = field(default=None, repr=False)

    @property
    def names(self):  # -> ResourceNames
        return self.project.names

    @property
    def config(self):  # -> Config
        return self.project.config

    @property
    def aws(self) -> Clients:
        if self._clients is None:
            from mldeploy.aws.clients import clients

            self._clients = clients(self.project)
        return self._clients

    def client(self, service: str) -> Any:
        return self.aws.get(service)

    @cached_property
    def actor(self) -> str:
        """Who deploys: ``$GITHUB_ACTOR`` in Actions, else the STS caller identity, else the OS user."""
        if os.environ.get("GITHUB_ACTOR"):
            return f"{os.environ['GITHUB_ACTOR']} (github)"
        with contextlib.suppress(Exception):
            arn = self.client("sts").get_caller_identity()["Arn"]
            return str(arn)
        return local_user()

    @cached_property
    def git_commit(self) -> str | None:
        return git_commit(str(self.project.root))

    @property
    def tags(self) -> dict[str, str]:
        return self.names.tags(self.config.aws.tags)


def local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER") or "unknown"

