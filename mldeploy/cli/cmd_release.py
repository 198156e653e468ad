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


def _locked(command: str, force_unlock: bool, action: Any) -> None:
    """Run ``action(ctx, lock)`` holding the app/env deployment lock (SSM conditional write), then report."""
    from mldeploy import console
    from mldeploy.release.lock import DeployLock, sigterm_as_interrupt

    ctx = _context()
    result: dict[str, Any]
    ttl = ctx.config.release.stability_timeout_s + 600
    with sigterm_as_interrupt(), DeployLock(ctx, command, ttl_s=ttl, force_unlock=force_unlock) as lock:
        if lock.broken is not None:
            console.warn(f"--force-unlock: broke the deployment lock held by {lock.broken.describe()}")
        result = action(ctx, lock)
    _report(command.split()[0], result, ctx)


def _url(ctx: ReleaseContext | None) -> str | None:
    """The endpoint URL ``up`` stored in SSM (None when unknown)."""
    if ctx is None:
        return None
    try:
        return ctx.client("ssm").get_parameter(Name=f"{ctx.names.ssm_prefix}/url")["Parameter"]["Value"]
    except Exception:  # only decoration for the report
        return None


def _report(command: str, result: dict[str, Any], ctx: ReleaseContext | None = None) -> None:
    """``--json`` on stdout; GitHub step outputs and summary (``mldeploy.ci.outputs.release_report``)."""
    from mldeploy import console
    from mldeploy.ci.outputs import release_report
    from mldeploy.cli import state

    project = state.project()
    release_report(command, project.names.base, project.config.model.version, result,
                   url=_url(ctx) if console.in_github_actions() else None)
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
        _report("canary", local.canary(state.project(), percent or 0))
        return

    def run(ctx: ReleaseContext, lock: Any) -> dict[str, Any]:
        if auto:
            from mldeploy.release.progressive import progressive

            return progressive(ctx, image=image, first=percent, lock=lock)
        from mldeploy.release.canary import canary as start

        assert percent is not None
        return start(ctx, percent, image=image)

    label = "canary" + (f" --percent {percent}" if percent is not None else "") + (" --auto" if auto else "")
    _locked(label, force_unlock, run)


def promote(target: TargetOpt = Target.aws, force_unlock: ForceUnlock = False) -> None:
    """Make the canary the stable version (weights 100/0, canary removed)."""
    from mldeploy.cli import state

    if target is Target.local:
        from mldeploy.release import local

        _report("promote", local.promote(state.project()))
        return
    from mldeploy.release.promote import promote as run

    state.confirm(f"Promote the canary of {state.project().names.base} to all traffic?")
    _locked("promote", force_unlock, lambda ctx, lock: run(ctx))


def rollback(
    to: Annotated[str | None, typer.Option("--to", help="Model version (1.2.0) or task-definition revision to "
                                           "return to (default: the previous one).")] = None,
    target: TargetOpt = Target.aws,
    force_unlock: ForceUnlock = False,
) -> None:
    """Remove the active canary, or return the stable service to the previous (or --to) version."""
    from mldeploy.cli import state

    if target is Target.local:
        from mldeploy.release import local

        _report("rollback", local.rollback(state.project(), to))
        return
    from mldeploy.release.rollback import rollback as run

    state.confirm(f"Roll back {state.project().names.base} (the active canary, else the stable service to "
                  f"{to or 'the previous version'})?")
    _locked("rollback" + (f" --to {to}" if to else ""), force_unlock, lambda ctx, lock: run(ctx, to))


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
        from mldeploy.release.current import load_unlocked

        # first records a stable version that `up` deployed since the last release command
        records = [r.to_json() for r in load_unlocked(_context()).records]
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
