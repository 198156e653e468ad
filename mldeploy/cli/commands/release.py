"""``canary``, ``promote``, ``rollback``, ``history``: shipping a new model version safely."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mldeploy.cli.options import ReleaseForceUnlock, ReleaseTarget, Target
from mldeploy.cli.session import Session

NoWait = Annotated[bool, typer.Option("--no-wait", help="Apply the change and return without waiting for the ECS "
                                      "rollout (--target aws); the history notes it as not verified. Follow it "
                                      "with `mldeploy status`.")]


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


def _follow_locally(session: Session, target: Target) -> None:
    """``--target local``: make the ``up --target local`` container serve the new routing.

    The runtime re-reads routing.json by itself, but loads version folders only at start: when the routing names
    a version the container has not loaded, the container is restarted (same image, port and mount) and we say so.
    """
    if target is not Target.local:
        return
    from mldeploy.local.container import restart_for_new_versions

    restarted = restart_for_new_versions(session.project, ready_timeout=session.settings.ready_timeout_s)
    if restarted is None:
        return
    run, versions = restarted
    session.ui.info(f"restarted container {run.container} at {run.url} to load {', '.join(versions)} (the runtime "
                    "loads version folders only at start; weights follow routing.json without a restart)")


def _no_earlier(session: Session, target: Target, error: Exception) -> Exception:
    """``rollback`` with nothing below the current stable version (locally): name the versions the history holds,
    instead of "the history has only X", and how to return to one of them (``--to``)."""
    from mldeploy.release.state import TransitionError
    from mldeploy.workflows import release

    message = getattr(error, "message", "")
    if target is not Target.local or not message.startswith("no earlier"):
        return error
    records = release.history(session.project, None, target="local")
    stable = next((r["version"] for r in reversed(records)
                   if r.get("outcome") == "succeeded" and r.get("action") in ("up", "promote", "rollback")), None)
    others = list(dict.fromkeys(r["version"] for r in records if r.get("version") and r["version"] != stable))
    if stable is None or not others:
        return error
    return TransitionError(
        f"no earlier local version to roll back to: {stable} runs, and rollback only steps back through the "
        f"versions deployed before it (a rolled-back version is not rolled back to); the history also holds "
        f"{', '.join(others)}", hint=f"`mldeploy rollback --to {others[-1]} --target local` returns to it; "
        "`mldeploy history --target local` lists every deployment")


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
    ignore_budget: Annotated[bool, typer.Option("--ignore-budget", help="Start the canary even when the estimate "
                                                "exceeds cost.budget_monthly.")] = False,
    no_wait: NoWait = False,
    shadow: Annotated[bool, typer.Option("--shadow", help="Shadow evaluation: the candidate also answers a sample of "
                                         "the stable requests after their answer is sent (0% of traffic unless "
                                         "--percent); see `canary --report`.")] = False,
    sample: Annotated[float | None, typer.Option("--sample", min=0.001, max=1.0, help="With --shadow: share of the "
                                                 "stable requests shadowed (default release.gates.sample, else "
                                                 "0.1).")] = None,
    report: Annotated[bool, typer.Option("--report", help="Print the shadow measures (agreement, score shift, "
                                         "candidate latency) and the release.gates verdicts; changes nothing.")
                      ] = False,
    allow_breaking: Annotated[bool, typer.Option("--allow-breaking", help="Start the canary even when the model "
                                                 "contract (inputs, dtypes, response fields, labels) breaks "
                                                 "clients.")] = False,
    metrics_url: Annotated[str | None, typer.Option("--metrics-url", help="--target local: the runtime's metrics "
                                                    "port (default http://127.0.0.1:runtime.metrics_port).")
                           ] = None,
) -> None:
    """Send N% of traffic to a new version; re-run with another N to move the weights."""
    from mldeploy.release.state import check_percent
    from mldeploy.workflows import release

    if report:
        _shadow_report(Session.of(cli), target, metrics_url)
        return
    if sample is not None and not shadow:
        from mldeploy.errors import ExitCode, MldeployError

        raise MldeployError("--sample applies with --shadow", exit_code=ExitCode.USAGE)
    check_percent(percent, required=not (auto or shadow))  # a usage error before any config or AWS lookup
    session = Session.of(cli)
    result = release.canary(session.project, _clients(session, target), session.ui, percent=percent, image=image,
                            auto=auto, target=target.value, force_unlock=force_unlock, ignore_budget=ignore_budget,
                            wait=not no_wait, shadow=shadow, sample=sample, allow_breaking=allow_breaking,
                            metrics_url=metrics_url)
    _follow_locally(session, target)
    _report(session, "canary", result, target)


def _shadow_report(session: Session, target: Target, metrics_url: str | None) -> None:
    """``canary --report``: the measures and gate verdicts; exit 0 whatever they say (``--auto`` enforces)."""
    from mldeploy import console
    from mldeploy.cli.render.shadow import queue_line, report_doc
    from mldeploy.release.gates import lines
    from mldeploy.workflows import release

    doc = report_doc(release.shadow_report(session.project, _clients(session, target), target=target.value,
                                           metrics_url=metrics_url))
    if session.json:
        console.emit_json(doc)
        return
    ui = session.ui
    ui.info(f"shadow evaluation of {doc['candidate']} ({target.value})")
    for line in lines(doc["measures"]):
        ui.info(f"  {line}")
    if doc["queue"]:
        ui.info(f"  {queue_line(doc['queue'])}")
    for g in doc["gates"]:
        (ui.info if g["ok"] else ui.warn)(f"  {'pass' if g['ok'] else 'FAIL'} release.gates.{g['gate']}: "
                                          f"{g['detail']}")


def promote(cli: typer.Context, target: ReleaseTarget = Target.aws, force_unlock: ReleaseForceUnlock = False,
            no_wait: NoWait = False) -> None:
    """Make the canary the stable version (weights 100/0, canary removed)."""
    from mldeploy.workflows import release

    session = Session.of(cli)
    if target is Target.aws:
        session.confirm(f"Promote the canary of {session.project.names.base} to all traffic?")
    result = release.promote(session.project, _clients(session, target), session.ui, target=target.value,
                             force_unlock=force_unlock, wait=not no_wait)
    _follow_locally(session, target)
    _report(session, "promote", result, target)


def rollback(
    cli: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="Model version (1.2.0) or task-definition revision to "
                                           "return to (default: the previous one).")] = None,
    target: ReleaseTarget = Target.aws,
    force_unlock: ReleaseForceUnlock = False,
    no_wait: NoWait = False,
) -> None:
    """Remove the active canary, or return the stable service to the previous (or --to) version."""
    from mldeploy.release.state import TransitionError
    from mldeploy.workflows import release

    session = Session.of(cli)
    if target is Target.aws:
        session.confirm(f"Roll back {session.project.names.base} (the active canary, else the stable service to "
                        f"{to or 'the previous version'})?")
    try:
        result = release.rollback(session.project, _clients(session, target), session.ui, to=to,
                                  target=target.value, force_unlock=force_unlock, wait=not no_wait)
    except TransitionError as e:
        raise _no_earlier(session, target, e) if to is None else e from None
    _follow_locally(session, target)
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
