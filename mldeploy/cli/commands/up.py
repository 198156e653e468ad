"""``up``: the one command — local (build + run in Docker) or AWS (build + push + plan + apply + wait)."""

from __future__ import annotations

from typing import Annotated

import typer

from mldeploy.cli.options import Target, UpForceUnlock, UpTarget
from mldeploy.cli.session import Session


def up(
    ctx: typer.Context,
    target: UpTarget = Target.aws,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the service to be stable.")] = False,
    port: Annotated[int | None, typer.Option("--port", help="Local port (--target local).")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Deploy this already-pushed image URI "
                                                              "(skips build and push; --target aws).")] = None,
    force_unlock: UpForceUnlock = False,
    ignore_budget: Annotated[bool, typer.Option("--ignore-budget", help="Deploy even when the estimate exceeds "
                                                "cost.budget_monthly (--target aws).")] = False,
) -> None:
    """Deploy: build the image and run it locally, or ship it to AWS Fargate behind an ALB."""
    from mldeploy import console

    session = Session.of(ctx)
    project = session.project
    if target is Target.local:
        from mldeploy.cli.render.build import local_run_json, print_build, print_local_run
        from mldeploy.local.container import up_local

        result, built = up_local(project, port=port, wait=not no_wait, ready_timeout=session.settings.ready_timeout_s,
                                 on_built=None if session.json else print_build, ui=session.ui)
        if session.json:
            console.emit_json(local_run_json(result, built))
        else:
            print_local_run(project, result)
        return
    from mldeploy.ci.outputs import up_report
    from mldeploy.workflows.up import up_aws

    deployed = up_aws(project, session.clients(), session.ui, wait=not no_wait, image=image,
                      force_unlock=force_unlock, ignore_budget=ignore_budget)
    if session.json:
        console.emit_json(deployed)
    up_report(project.names.base, project.config.model.version, deployed)  # outputs + step summary


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(up)
