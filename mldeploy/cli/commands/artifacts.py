"""``mldeploy package``: turn the configured model into a verified artifact folder (model.json + model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mldeploy.cli.session import Session


def package(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact folder (default: "
                                                 ".mldeploy/<env>/artifact next to mldeploy.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-package even if the model is unchanged.")] = False,
) -> None:
    """Detect, convert (ONNX by default), parity-check and describe the model in model.json."""
    from mldeploy import console
    from mldeploy.artifacts import package as build_artifact
    from mldeploy.artifacts.summary import as_dict
    from mldeploy.ci.outputs import package_report
    from mldeploy.cli.render.package import render

    session = Session.of(ctx)
    with session.ui.status("packaging the model…"):
        result = build_artifact(session.project, output, force=force)
    package_report(result)
    if session.json:
        console.emit_json(as_dict(result))
    else:
        render(result)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(package)
