"""Build-area commands: ``build``, ``push``, ``run``, ``serve``, ``predict`` (heavy imports inside functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def build(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the build context here "
                                                "(for inspection) instead of .mldeploy/<env>/context.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore Docker's layer cache.")] = False,
) -> None:
    """Package the model and build the serving image with Docker (tags: version, git sha, latest)."""
    from mldeploy import console
    from mldeploy.cli import state
    from mldeploy.image.api import build_image
    from mldeploy.image.summary import print_build

    built = build_image(state.project(), no_cache=no_cache, output=output)
    if state.options.json:
        console.emit_json(built.to_dict())
    else:
        print_build(built)
    from mldeploy.ci.outputs import build_report

    build_report(built)  # $GITHUB_OUTPUT (image, image_id, image_size, version) + step summary


def push(
    registry: Annotated[str | None, typer.Option("--registry", help="Registry URL (overrides registry.url; "
                                                 "default: ECR in the configured region).")] = None,
) -> None:
    """Push the last built image (building it if needed) to ECR or registry.url; records the digest."""
    from mldeploy import console
    from mldeploy.cli import state
    from mldeploy.image.api import BuiltImage, build_image, last_build, push_image
    from mldeploy.image.docker_client import image_size

    project = state.project()
    record = last_build(project)
    if record and image_size(record["image_id"]) is not None:
        fields = set(BuiltImage.__dataclass_fields__)
        built = BuiltImage(**{k: v for k, v in record.items() if k in fields})
    else:
        built = build_image(project)
    pushed = push_image(project, built, registry=registry)
    if state.options.json:
        console.emit_json({"uri": pushed.uri, "digest": pushed.digest, "tag": pushed.tag, "ref": pushed.ref,
                           "tags": pushed.tags})
    else:
        console.out.print(pushed.ref)
    from mldeploy.ci.outputs import push_report

    push_report(pushed, project.config.model.version)  # image_uri, image_digest, image_ref, version + summary


def run(
    port: Annotated[int | None, typer.Option("--port", "-p", help="Host port (default: runtime.port).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for /ready.")] = False,
) -> None:
    """Run the last built image in Docker (building it if needed), wait for /ready, print the URL and a curl."""
    from mldeploy.cli import state
    from mldeploy.local.container import run_last_build

    run_last_build(state.project(), port=port, wait=not no_wait)


def serve(
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port (default: runtime.port).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Serve the model in this process (no Docker): the fallback when no Docker daemon is available."""
    from mldeploy.cli import state
    from mldeploy.local.inprocess import serve as serve_model

    serve_model(state.project(), port=port, host=host)


def predict(
    url: Annotated[str | None, typer.Option("--url", help="Server URL (default: the local run's).")] = None,
    input_file: Annotated[str | None, typer.Option("--input", "-i", help="A .json or .npy file, - for stdin, "
                                                   "or inline JSON (default: the manifest's sample input).")] = None,
) -> None:
    """Send a prediction request and pretty-print the answer (--json prints it raw)."""
    from mldeploy import console
    from mldeploy.cli import state
    from mldeploy.errors import MldeployError
    from mldeploy.local import client as p

    project = None
    if url is None or input_file is None:
        project = state.project()
    target = url or p.default_url(project)
    request = p.file_request(input_file) if input_file else p.sample_request(project)
    headers = p.auth_headers(project) if project else {}
    status, body, seconds = p.send(target, request, headers=headers)
    if state.options.json:
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
        raise MldeployError(f"the server answered {status}", exit_code=1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(build)
    app.command()(push)
    app.command()(run)
    app.command()(serve)
    app.command()(predict)
