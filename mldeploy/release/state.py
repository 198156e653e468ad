"""The release state machine, shared by the AWS and local targets (pure: no I/O).

States: *stable only* and *stable + canary at N %*. Valid moves:

=====================  ============================================  ==========================================
command                stable only                                   stable + canary
=====================  ============================================  ==========================================
``canary --percent N`` start a canary with the new image at N %      move the weights (same or no ``--image``)
``promote``            error: nothing to promote                     stable takes the canary's version
``rollback``           stable returns to the previous version        canary removed, weights back to 100/0
``rollback --to V``    stable returns to V (from history)            error: roll the canary back first
=====================  ============================================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mldeploy.errors import ExitCode, MldeployError


class TransitionError(MldeployError):
    """A release command that does not apply to the current state (nothing was changed)."""

    exit_code = ExitCode.NOT_APPLICABLE


class CanaryMove(StrEnum):
    start = "start"  # create the canary, then weight it
    shift = "shift"  # only move the weights


@dataclass(frozen=True)
class ReleaseState:
    """What runs now: the stable version and, when one is active, the canary and its traffic share."""

    target: str  # human name: "app/env on AWS" or "local models dir …"
    stable: str | None  # image (AWS) or version (local) serving the stable share
    canary: str | None = None
    canary_percent: int | None = None

    @property
    def canary_active(self) -> bool:
        return self.canary is not None


def check_percent(percent: int | None, *, required: bool = True) -> None:
    if percent is None:
        if required:
            raise TransitionError("--percent is required", hint="e.g. mldeploy canary --percent 10 (0–100)",
                                  exit_code=ExitCode.USAGE)
        return
    if not 0 <= percent <= 100:
        raise TransitionError(f"--percent {percent} is outside 0–100",
                              hint="give the share of traffic for the canary, e.g. --percent 10",
                              exit_code=ExitCode.USAGE)


def plan_canary(state: ReleaseState, new: str | None, percent: int) -> CanaryMove:
    """Decide what ``canary --percent N [--image new]`` does; raise for invalid moves."""
    check_percent(percent)
    if state.stable is None:
        raise TransitionError(f"nothing is deployed for {state.target}: there is no stable version to canary "
                              "against", hint="deploy first with `mldeploy up`")
    if state.canary_active:
        if new is not None and new != state.canary:
            raise TransitionError(
                f"a canary is already active for {state.target} with {state.canary} "
                f"({state.canary_percent}% of traffic); refusing to start another one with {new}",
                hint="finish it first: `mldeploy promote` or `mldeploy rollback`, then start the new canary")
        return CanaryMove.shift
    if new is not None and new == state.stable:
        raise TransitionError(f"{new} is already the stable version of {state.target}: nothing to canary",
                              hint="bump model.version in mldeploy.yaml for a new model (on AWS: or pass another "
                                   "--image)")
    return CanaryMove.start


def check_promote(state: ReleaseState) -> None:
    if not state.canary_active:
        raise TransitionError(f"no canary is active for {state.target}: nothing to promote",
                              hint="start one with `mldeploy canary --percent 10`")


def check_rollback_to(state: ReleaseState, to: str | None) -> None:
    if to is not None and state.canary_active:
        raise TransitionError(
            f"a canary ({state.canary}, {state.canary_percent}%) is active for {state.target}; "
            f"roll it back before returning the stable service to {to}",
            hint="run `mldeploy rollback` (removes the canary), then `mldeploy rollback --to " + to + "`")
