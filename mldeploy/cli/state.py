"""Global CLI options (``-f``, ``--env``, ``--json`` …) and helpers every command shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.errors import ExitCode, MldeployError

if TYPE_CHECKING:
    from mldeploy.config import Project


@dataclass
class Options:
    config: Path | None = None
    env: str | None = None
    region: str | None = None
    profile: str | None = None
    json: bool = False
    yes: bool = False
    debug: bool = False


options = Options()
_project: Project | None = None


def project() -> Project:
    """The validated project for ``-f``/``--env`` (loaded once per process)."""
    global _project
    if _project is None:
        from mldeploy.config import load_project

        _project = load_project(options.config, options.env)
    return _project


def reset() -> None:
    """Forget the loaded project and options (tests call the CLI in-process)."""
    global _project, options
    _project = None
    options = Options()


def region() -> str | None:
    """``--region`` beats ``aws.region`` in the config; None lets boto3's chain decide."""
    if options.region:
        return options.region
    try:
        return project().config.aws.region
    except MldeployError:
        return None


def profile() -> str | None:
    if options.profile:
        return options.profile
    try:
        return project().config.aws.profile
    except MldeployError:
        return None


def confirm(question: str) -> None:
    """Ask before a destructive step; ``--yes`` answers for the user; CI and pipes must pass ``--yes``."""
    if options.yes:
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
