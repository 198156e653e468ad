"""``canary``, ``promote``, ``rollback``, ``history``: shipping a new model version safely."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mldeploy.cli.options import ReleaseForceUnlock, ReleaseTarget, Target
from mldeploy.cli.session import Session


def _clients(session: Session, target: Target) -> Any:
    """The session's AWS clients for ``--target aws`` (so --region/--profile apply), None locally."""
    return session.clients() if target is Target.aws else None


def _url(session: Session, target: Target) -> str | None:
    """The endpoint URL ``up`` stored in SSM (None when unknown, or locally)."""
    if target is not Target.aws:
        return None
    try:
        ssm = session.clients().ssm
        return ssm.get_parameter(Name=f"{session.project.names.ssm_prefix}/url")["Parameter"]["Value"]
    except Exception:  # only decoration for the report
        return None


def _report(session: Session, command: str, result: dict[str, Any], target: Target) -> None:
    """``--json`` on stdout; GitHub step outputs and summary (``mldeploy.ci.outputs.release_report``)."""
    from mldeploy import console
    from mldeploy.ci.outputs import release_report

    project = session.project
    release_report(command, project.names.base, project.config.model.version, result,
                   url=_url(session, target) if console.in_github_actions() else None)
    if session.json:
        console.emit_json(result)


def canary(
    cli: typer.Context,
    percent: Annotated[int | None, typer.Option("--percent", "-p", help="Share of traffic for the canary (0–100). "
                                                "With --auto: the first step.")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Progressive delivery: release.steps with release.bake_time_s "
                                       "each, rolled back automatically when a canary alarm fires; promoted at the "
                                       "end.")] = False,
    image: Annotated[str | None, typer.Option("--image", help="Image to canary (default: build and push the "
                                              "current model).")] = None,
    target: ReleaseTarget = Target.aws,
    force_unlock: ReleaseForceUnlock = False,
) -> None:
    """Send N% of traffic to a new version; re-run with another N to move the weights."""
    from mldeploy.release.state import check_percent
    from mldeploy.workflows import release

    check_percent(percent, required=not auto)  # a usage error before any config or AWS lookup
    session = Session.of(cli)
    result = release.canary(session.project, _clients(session, target), session.ui, percent=percent, image=image,
                            auto=auto, target=target.value, force_unlock=force_unlock)
    _report(session, "canary", result, target)


def promote(cli: typer.Context, target: ReleaseTarget = Target.aws, force_unlock: ReleaseForceUnlock = False) -> None:
    """Make the canary the stable version (weights 100/0, canary removed)."""
    from mldeploy.workflows import release

    session = Session.of(cli)
    if target is Target.aws:
        session.confirm(f"Promote the canary of {session.project.names.base} to all traffic?")
    result = release.promote(session.project, _clients(session, target), session.ui, target=target.value,
                             force_unlock=force_unlock)
    _report(session, "promote", result, target)


def rollback(
    cli: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="Model version (1.2.0) or task-definition revision to "
                                           "return to (default: the previous one).")] = None,
    target: ReleaseTarget = Target.aws,
    force_unlock: ReleaseForceUnlock = False,
) -> None:
    """Remove the active canary, or return the stable service to the previous (or --to) version."""
    from mldeploy.workflows import release

    session = Session.of(cli)
    if target is Target.aws:
        session.confirm(f"Roll back {session.project.names.base} (the active canary, else the stable service to "
                        f"{to or 'the previous version'})?")
    result = release.rollback(session.project, _clients(session, target), session.ui, to=to, target=target.value,
                              force_unlock=force_unlock)
    _report(session, "rollback", result, target)


def history(
    cli: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show the newest N deployments.")] = 20,
    target: ReleaseTarget = Target.aws,
) -> None:
    """Every deployment: version, image digest, task-definition revision, commit, who/when, percent, outcome."""
    from mldeploy import console
    from mldeploy.cli.render.history import print_history
    from mldeploy.workflows import release

    session = Session.of(cli)
    # on AWS, first records a stable version that `up` deployed since the last release command
    records = release.history(session.project, _clients(session, target), target=target.value)
    records = records[-limit:][::-1]
    if session.json:
        console.emit_json({"deployments": records})
        return
    print_history(f"deployments of {session.project.names.base} ({target.value})", records)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(canary)
    app.command()(promote)
    app.command()(rollback)
    app.command()(history)
