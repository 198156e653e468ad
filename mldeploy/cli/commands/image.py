"""``build`` and ``push``: the serving image (heavy imports inside the functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mldeploy.cli.session import Session


def build(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the build context here "
                                                "(for inspection) instead of .mldeploy/<env>/context.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore Docker's layer cache.")] = False,
) -> None:
    """Package the model and build the serving image with Docker (tags: version, git sha, latest)."""
    from mldeploy import console
    from mldeploy.ci.outputs import build_report
    from mldeploy.cli.render.build import print_build
    from mldeploy.image.api import build_image

    session = Session.of(ctx)
    built = build_image(session.project, no_cache=no_cache, output=output, ui=session.ui)
    if session.json:
        console.emit_json(built.to_dict())
    else:
        print_build(built)
    build_report(built)  # $GITHUB_OUTPUT (image, image_id, image_size, version) + step summary


def push(
    ctx: typer.Context,
    registry: Annotated[str | None, typer.Option("--registry", help="Registry URL (overrides registry.url; "
                                                 "default: ECR in the configured region).")] = None,
) -> None:
    """Push the last built image (building it if needed) to ECR or registry.url; records the digest."""
    from mldeploy import console
    from mldeploy.ci.outputs import push_report
    from mldeploy.cli.render.build import pushed_json
    from mldeploy.image.api import build_image, last_build, push_image

    session = Session.of(ctx)
    project = session.project
    built = last_build(project) or build_image(project, ui=session.ui)
    to_ecr = not (registry or project.config.registry.url)
    pushed = push_image(project, built, registry=registry, aws=session.clients() if to_ecr else None, ui=session.ui)
    if session.json:
        console.emit_json(pushed_json(pushed))
    else:
        console.out.print(pushed.ref)
    push_report(pushed, project.config.model.version)  # image_uri, image_digest, image_ref, version + summary


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(build)
    app.command()(push)
