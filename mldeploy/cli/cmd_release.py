"""``canary``, ``promote``, ``rollback``, ``history``: shipping a new model version safely."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext


class Target(StrEnum):
    aws = "aws"
    local = "local"


TargetOpt = Annotated[Target, typer.Option("--target", help="AWS (ECS services + ALB weights) or the local server "
                                                            "(routing.json).")]
ForceUnlock = Annotated[bool, typer.Option("--force-unlock", help="Break a stale deployment lock (a job that died "
                                                                  "holding it) before starting.")]


def _context() -> ReleaseContext:
    from mldeploy.cli import state
    from mldeploy.release.context import ReleaseContext

    return ReleaseContext(state.project())


def _locked(command: str, force_unlock: bool, action: Any) -> dict[str, Any]:
    """Run ``action(ctx, lock)`` holding the app/env deployment lock (SSM conditional write)."""
    from mldeploy import console
    from mldeploy.release.lock import DeployLock, sigterm_as_interrupt

    ctx = _context()
    ttl = ctx.config.release.stability_timeout_s + 600
    with sigterm_as_interrupt(), DeployLock(ctx, command, ttl_s=ttl, force_unlock=force_unlock) as lock:
        if lock.broken is not None:
            console.warn(f"--force-unlock: broke the deployment lock held by {lock.broken.describe()}")
        return action(ctx, lock)


def _report(result: dict[str, Any]) -> None:
    from mldeploy import console
    from mldeploy.cli import state

    canary = result.get("canary") or {}
    stable = result.get("stable") or {}
    console.set_outputs({"stable_revision": stable.get("revision"), "canary_revision": canary.get("revision"),
                         "canary_percent": canary.get("percent")})
    if state.options.json:
        console.emit_json(result)


def canary(
    percent: Annotated[int | None, typer.Option("--percent", "-p", help="Share of traffic for the canary (0–100). "
                                                "With --auto: the first step.")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Progressive delivery: release.steps with release.bake_time_s "
                                       "each, rolled back automatically when a canary alarm fires; promoted at the "
                                       "end.")] = False,
    image: Annotated[str | None, typer.Option("--image", help="Image to canary (default: build and push the "
                                              "current model).")] = None,
    target: TargetOpt = Target.aws,
    force_unlock: ForceUnlock = False,
) -> None:
    """Send N% of traffic to a new version; re-run with another N to move the weights."""
    from mldeploy.release.transitions import check_percent

    check_percent(percent, required=not auto)
    if target is Target.local:
        from mldeploy.cli import state
        from mldeploy.errors import ExitCode, MldeployError
        from mldeploy.release import local

        if auto:
            raise MldeployError("--auto needs --target aws (it watches CloudWatch alarms)", exit_code=ExitCode.USAGE)
        if image:
            raise MldeployError("--image applies to --target aws; locally the canary is the current model",
                                exit_code=ExitCode.USAGE)
        _report(local.canary(state.project(), percent or 0))
        return

    def run(ctx: ReleaseContext, lock: Any) -> dict[str, Any]:
        if auto:
            from mldeploy.release.progressive import progressive

            return progressive(ctx, image=image, first=percent, lock=lock)
        from mldeploy.release.canary import canary as start

        assert percent is not None
        return start(ctx, percent, image=image)

    label = "canary" + (f" --percent {percent}" if percent is not None else "") + (" --auto" if auto else "")
    _report(_locked(label, force_unlock, run))


def promote(target: TargetOpt = Target.aws, force_unlock: ForceUnlock = False) -> None:
    """Make the canary the stable version (weights 100/0, canary removed)."""
    if target is Target.local:
        from mldeploy.cli import state
        from mldeploy.release import local

        _report(local.promote(state.project()))
        return
    from mldeploy.release.promote import promote as run

    _report(_locked("promote", force_unlock, lambda ctx, lock: run(ctx)))


def rollback(
    to: Annotated[str | None, typer.Option("--to", help="Model version (1.2.0) or task-definition revision to "
                                           "return to (default: the previous one).")] = None,
    target: TargetOpt = Target.aws,
    force_unlock: ForceUnlock = False,
) -> None:
    """Remove the active canary, or return the stable service to the previous (or --to) version."""
    if target is Target.local:
        from mldeploy.cli import state
        from mldeploy.release import local

        _report(local.rollback(state.project(), to))
        return
    from mldeploy.release.rollback import rollback as run

    _report(_locked("rollback" + (f" --to {to}" if to else ""), force_unlock, lambda ctx, lock: run(ctx, to)))


def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show the newest N deployments.")] = 20,
    target: TargetOpt = Target.aws,
) -> None:
    """Every deployment: version, image digest, task-definition revision, commit, who/when, percent, outcome."""
    from mldeploy import console
    from mldeploy.cli import state

    if target is Target.local:
        from mldeploy.release import local

        records = local.history(state.project())
    else:
        from mldeploy.release.history import History

        records = [r.to_json() for r in History(_context()).list()]
    records = records[-limit:][::-1]
    if state.options.json:
        console.emit_json({"deployments": records})
        return
    if not records:
        console.info("no deployments recorded yet")
        return
    from rich.table import Table

    table = Table(title=f"deployments of {state.project().names.base} ({target.value})")
    for col in ("#", "started (UTC)", "action", "version", "rev", "image", "%", "outcome", "by", "commit"):
        table.add_column(col, justify="right" if col in ("#", "rev", "%") else "left")
    colours = {"succeeded": "green", "promoted": "green", "active": "cyan", "rolled_back": "yellow",
               "failed": "red", "in_progress": "blue"}
    for r in records:
        image = r.get("digest") or r.get("image") or ""
        image = image.split("sha256:", 1)[1][:12] if "sha256:" in image else image.rsplit("/", 1)[-1]
        outcome = r.get("outcome") or ""
        table.add_row(str(r.get("id", "")), (r.get("started_at") or "").replace("T", " ").rstrip("Z"),
                      r.get("action") or "", r.get("version") or "?", str(r.get("revision") or ""), image,
                      "" if r.get("percent") is None else str(r["percent"]),
                      f"[{colours.get(outcome, 'white')}]{outcome}[/]", (r.get("actor") or "")[-40:],
                      (r.get("git_commit") or "")[:8])
    console.out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(canary)
    app.command()(promote)
    app.command()(rollback)
    app.command()(history)
