"""``up``: the one command — local (build + run in Docker) or AWS (build + push + plan + apply + wait)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Target(StrEnum):
    aws = "aws"
    local = "local"


def up(
    target: Annotated[Target, typer.Option("--target", help="Where to deploy.")] = Target.aws,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the service to be stable.")] = False,
    port: Annotated[int | None, typer.Option("--port", help="Local port (--target local).")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Deploy this already-pushed image URI "
                                                              "(skips build and push; --target aws).")] = None,
    force_unlock: Annotated[bool, typer.Option("--force-unlock", help="Break a stale deployment lock "
                                                                      "(only when the job holding it died).")] = False,
) -> None:
    """Deploy: build the image and run it locally, or ship it to AWS Fargate behind an ALB."""
    from mldeploy.cli import state

    project = state.project()
    if target is Target.local:
        from mldeploy.local.container import up_local

        up_local(project, port=port, wait=not no_wait)
    else:
        from mldeploy import console
        from mldeploy.aws.clients import clients
        from mldeploy.ui import Ui
        from mldeploy.workflows.up import up_aws

        aws = clients(project, region=state.options.region, profile=state.options.profile)
        result = up_aws(project, aws, Ui(), wait=not no_wait, image=image, force_unlock=force_unlock)
        console.add_summary(f"### mldeploy up `{project.names.base}`\n\n- URL: {result['url']}\n"
                            f"- image: `{result['image']}`\n- changes applied: {len(result['applied'])}")
        if state.options.json:
            console.emit_json(result)
        from mldeploy.ci.outputs import up_report

        up_report(project.names.base, project.config.model.version, result)  # task_definition_arn, version…


def register(app: typer.Typer) -> None:
    app.command()(up)
