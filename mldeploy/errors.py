"""Error types and the documented process exit codes.

Every error the CLI expects carries an exit code and, where possible, a hint that tells the user what to do.
`mldeploy.cli.main` prints them without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes (README "Exit codes")."""

    OK = 0
    ERROR = 1  # unexpected / generic failure
    USAGE = 2  # bad command line (click's own code)
    CONFIG = 3  # mldeploy.yaml or model input invalid
    BUILD = 4  # packaging, conversion, parity or image build failed
    AWS = 5  # an AWS call failed (credentials, permissions, quota, emulator)
    ROLLED_BACK = 6  # a deployment was rolled back (circuit breaker or alarm)
    LOCKED = 7  # another deployment holds the app/env lock
    NOT_READY = 8  # a server/endpoint did not become ready in time
    OVER_BUDGET = 9  # the monthly estimate exceeds cost.budget_monthly (plan/up/canary; --ignore-budget overrides)
    NOT_APPLICABLE = 10  # a release command that does not apply to the current state (nothing changed)
    INTERRUPTED = 130  # Ctrl-C


class MldeployError(Exception):
    """Base class: an expected failure with a user-facing message."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


@dataclass(frozen=True)
class Location:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"


@dataclass(frozen=True)
class Problem:
    """One configuration problem: where, which field, and what is wrong."""

    location: Location
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.field}: {self.message}" if self.field else f"{self.location}: {self.message}"


class ConfigError(MldeployError):
    """The configuration file is invalid; carries one Problem per error."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[Problem] | str, *, hint: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(Location("mldeploy.yaml"), "", problems)]
        self.problems = problems
        text = "\n".join(f"  {p}" for p in problems)
        n = len(problems)
        super().__init__(f"invalid configuration ({n} problem{'s' if n != 1 else ''}):\n{text}", hint=hint)


class ArtifactError(MldeployError):
    """A model file is missing, corrupt, of the wrong format, or fails verification."""

    exit_code = ExitCode.BUILD


class BuildError(MldeployError):
    """Rendering or building the image failed."""

    exit_code = ExitCode.BUILD


class AwsError(MldeployError):
    """An AWS API call failed in a way the user must act on."""

    exit_code = ExitCode.AWS


class RolledBackError(MldeployError):
    """A deployment was rolled back (ECS circuit breaker or CloudWatch alarm)."""

    exit_code = ExitCode.ROLLED_BACK


class LockHeldError(MldeployError):
    """Another process holds the deployment lock for this app/env."""

    exit_code = ExitCode.LOCKED


class OverBudgetError(MldeployError):
    """The monthly estimate of what a command would deploy exceeds ``cost.budget_monthly``."""

    exit_code = ExitCode.OVER_BUDGET


class NotReadyError(MldeployError):
    """A server did not become ready in time."""

    exit_code = ExitCode.NOT_READY


class RolloutTimeoutError(NotReadyError):
    """An ECS rollout did not finish within ``aws.deploy_timeout_s``; it continues on AWS (exit 8, ``NOT_READY``)."""
