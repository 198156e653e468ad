"""``mldeploy package``: turn the configured model into a verified artifact folder (model.json + model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mldeploy.cli import state


def package(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact folder (default: "
                                                 ".mldeploy/<env>/artifact next to mldeploy.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-package even if the model is unchanged.")] = False,
) -> None:
    """Detect, convert (ONNX by default), parity-check and describe the model in model.json."""
    from mldeploy import console
    from mldeploy.artifacts import package as build_artifact
    from mldeploy.artifacts.summary import as_dict, render

    project = state.project()
    with console.console.status("packaging the model…") if console.interactive() else _null():
        result = build_artifact(project, output, force=force)
    m = result.manifest
    console.set_outputs({"artifact_dir": str(result.dir), "model_format": m.format, "model_sha256": m.sha256})
    if state.options.json:
        console.emit_json(as_dict(result))
    else:
        render(result)


def _null():  # noqa: ANN202 - a no-op context manager
    import contextlib

    return contextlib.nullcontext()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(package)
