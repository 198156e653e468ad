"""The one context every command gets: global options, environment settings and cached project/clients/ui.

Built once in the Typer callback (:mod:`mldeploy.cli.app`) and stored in ``typer.Context.obj`` — the shape of
AWS Chalice's ``CLIFactory`` and SAM CLI's ``Context``. Commands ask it for what they need and pass those objects
down explicitly; nothing below ``cli/`` reads the options. Only ``cli/`` prompts (:meth:`Session.confirm`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.errors import ExitCode, MldeployError

if TYPE_CHECKING:
    import typer

    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui
    from mldeploy.workspace import Workspace


@dataclass(frozen=True)
class Options:
    """The global options (``-f``, ``--env``, ``--region``, ``--profile``, ``--json``, ``--yes``, ``--debug``)."""

    config: Path | None = None
    env: str | None = None
    region: str | None = None
    profile: str | None = None
    json: bool = False
    yes: bool = False
    debug: bool = False


READY_TIMEOUT_ENV = "MLDEPLOY_READY_TIMEOUT"
POLL_ENV = "MLDEPLOY_POLL_S"


@dataclass(frozen=True)
class Settings:
    """Environment knobs the CLI passes down, read once when the session is built."""

    ready_timeout_s: float = 120.0
    """How long ``run``/``up --target local`` wait for ``/ready`` (``$MLDEPLOY_READY_TIMEOUT``)."""
    poll_s: float | None = None
    """Seconds between AWS polls (``$MLDEPLOY_POLL_S``; None: each wait's own default)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(ready_timeout_s=float(env.get(READY_TIMEOUT_ENV) or 120.0),
                   poll_s=float(env[POLL_ENV]) if env.get(POLL_ENV) else None)


@dataclass
class Session:
    """Options + settings, and the project, AWS clients, reporter and workspace, each created on first use."""

    options: Options = field(default_factory=Options)
    settings: Settings = field(default_factory=Settings.from_env)
    _project: Project | None = field(default=None, init=False, repr=False)
    _clients: Clients | None = field(default=None, init=False, repr=False)
    _ui: Ui | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, ctx: typer.Context) -> Session:
        """The session the callback stored on ``ctx`` (a default one for apps without the callback)."""
        found = ctx.find_object(Session)
        return found if found is not None else cls()

    @property
    def json(self) -> bool:
        return self.options.json

    @property
    def project(self) -> Project:
        """The validated project for ``-f``/``--env`` (loaded once)."""
        if self._project is None:
            from mldeploy.config import load_project

            self._project = load_project(self.options.config, self.options.env)
        return self._project

    def project_or_none(self) -> Project | None:
        """The project, or None when no valid config is found (commands usable without one)."""
        try:
            return self.project
        except MldeployError:
            return None

    @property
    def region(self) -> str | None:
        """``--region`` beats ``aws.region``; None lets boto3's chain decide."""
        if self.options.region:
            return self.options.region
        project = self.project_or_none()
        return project.config.aws.region if project else None

    @property
    def profile(self) -> str | None:
        """``--profile`` beats ``aws.profile``; None lets boto3's chain decide."""
        if self.options.profile:
            return self.options.profile
        project = self.project_or_none()
        return project.config.aws.profile if project else None

    def clients(self) -> Clients:
        """AWS clients for this project with the region/profile precedence above (created once)."""
        if self._clients is None:
            from mldeploy.aws.clients import clients
            from mldeploy.testing import hooks_from_env

            self._clients = clients(self.project, region=self.region, profile=self.profile, hooks=hooks_from_env())
        return self._clients

    def account_id(self) -> str | None:
        """The caller's AWS account, or None when no credentials (or no config) answer."""
        from mldeploy.aws.clients import clients

        try:
            aws = self.clients() if self.project_or_none() else clients(None, region=self.options.region,
                                                                        profile=self.options.profile)
            return aws.account
        except MldeployError:
            return None

    @property
    def ui(self) -> Ui:
        if self._ui is None:
            from mldeploy.ui import Ui

            self._ui = Ui()
        return self._ui

    @property
    def workspace(self) -> Workspace:
        """``.mldeploy/<env>/`` of the project."""
        from mldeploy.workspace import Workspace

        return Workspace.of(self.project)

    def confirm(self, question: str) -> None:
        """Ask before a destructive step; ``--yes`` answers for the user; CI and pipes must pass ``--yes``."""
        if self.options.yes:
            return
        from mldeploy import console

        if not console.interactive():
            raise MldeployError(
                f"{question} — confirmation needed but no terminal is attached",
                hint="pass --yes to confirm non-interactively (CI)",
                exit_code=ExitCode.USAGE,
            )
        from rich.prompt import Confirm

        if not Confirm.ask(question, console=console.console, default=False):
            raise MldeployError("aborted by user", exit_code=ExitCode.ERROR)


@dataclass
class Slot:
    """Handed to the app by ``main()`` as ``obj``; the callback puts the session in it (for ``--debug``)."""

    session: Session | None = None
