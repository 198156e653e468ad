"""``run``, ``serve`` and ``predict``: the model on this machine (heavy imports inside the functions)."""

from __future__ import annotations

from typing import Annotated

import typer

from mldeploy.cli.options import ApiKey
from mldeploy.cli.session import Session


def run(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Host port (default: runtime.port).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for /ready.")] = False,
) -> None:
    """Run the last built image in Docker (building it if needed), wait for /ready, print the URL and a curl."""
    from mldeploy import console
    from mldeploy.cli.render.build import local_run_json, print_local_run
    from mldeploy.local.container import run_last_build

    session = Session.of(ctx)
    result, built = run_last_build(session.project, port=port, wait=not no_wait,
                                   ready_timeout=session.settings.ready_timeout_s, ui=session.ui)
    if session.json:
        console.emit_json(local_run_json(result, built))
    else:
        print_local_run(session.project, result)


def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port (default: runtime.port).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the model in this process (no Docker): the fallback when no Docker daemon is available."""
    from mldeploy.local.inprocess import prepare
    from mldeploy.local.inprocess import serve as serve_model

    session = Session.of(ctx)
    serving = prepare(session.project, port=port, host=host)
    session.ui.info(f"serving {session.project.config.name} {serving.version} on {serving.url} "
                    f"(no Docker; Ctrl-C stops)")
    serve_model(serving)


def predict(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", help="Server URL (default: the local run's).")] = None,
    input_file: Annotated[str | None, typer.Option("--input", "-i", help="A .json or .npy file, - for stdin, "
                                                   "or inline JSON (default: the manifest's sample input, else "
                                                   "rows generated from its signature).")] = None,
    api_key: ApiKey = None,
) -> None:
    """Send a prediction request and pretty-print the answer (--json prints it raw)."""
    from mldeploy import console
    from mldeploy.errors import MldeployError
    from mldeploy.local import client as p

    session = Session.of(ctx)
    project = None
    if url is None or input_file is None:
        project = session.project
    target = url or p.default_url(project)
    request = p.file_request(input_file) if input_file else p.sample_request(project)
    headers = p.auth_headers(project, api_key)
    status, body, seconds = p.send(target, request, headers=headers)
    if session.json:
        console.emit_json(body)
    else:
        from rich.json import JSON

        console.info(f"POST {target.rstrip('/')}/predict ({request.source}) → {status} in {seconds * 1000:.0f} ms")
        if isinstance(body, (dict, list)):
            import json

            console.out.print(JSON(json.dumps(body)))
        else:
            console.out.print(body)
    if status >= 400:
        hint = ("pass --api-key KEY (or set $MLDEPLOY_API_KEY)" if status == 401 and "X-API-Key" not in headers
                else "the key was refused: check --api-key / $MLDEPLOY_API_KEY" if status in (401, 403) else None)
        raise MldeployError(f"the server answered {status}", hint=hint, exit_code=1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(run)
    app.command()(serve)
    app.command()(predict)
