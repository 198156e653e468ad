"""Run the image locally in Docker (``run``, ``up --target local``) and wait until it is ready."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.errors import BuildError, NotReadyError
from mldeploy.image import records

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.image.api import BuiltImage

READY_TIMEOUT_S = float(os.environ.get("MLDEPLOY_READY_TIMEOUT", "120"))
LOG_TAIL = 30


@dataclass(frozen=True)
class LocalRun:
    container: str
    container_id: str
    image: str
    url: str
    port: int
    ready_seconds: float | None


def container_name(project: Project) -> str:
    return f"mldeploy-{project.names.base}"


def _secret_env(project: Project) -> dict[str, str]:
    """Pass the auth secrets the server needs from this shell's environment (never baked into the image)."""
    auth = project.config.runtime.auth
    names = {auth.api_keys_env, auth.jwt_secret_env} if auth.mode != "none" else set()
    return {n: os.environ[n] for n in sorted(names) if n in os.environ}


def start_container(project: Project, image: str, port: int | None = None) -> tuple[Any, int]:
    """(Re)start the app's container from ``image``, publishing the server port on 127.0.0.1:``port``."""
    from docker.errors import APIError, NotFound

    from mldeploy.image.docker_client import client

    docker = client()
    name = container_name(project)
    cport = project.config.runtime.port
    host_port = port or cport
    with contextlib.suppress(NotFound):
        docker.containers.get(name).remove(force=True)
    try:
        container = docker.containers.run(
            image, name=name, detach=True, environment=_secret_env(project),
            ports={f"{cport}/tcp": ("127.0.0.1", host_port)},
            labels={"dev.mldeploy.app": project.config.name, "dev.mldeploy.env": project.env},
            stop_signal="SIGTERM",
            # as on ECS (aws.read_only_root_filesystem): code and model read-only, a small writable /tmp
            read_only=project.config.aws.read_only_root_filesystem,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
        )
    except APIError as e:
        msg = str(e.explanation or e)
        hint = "choose another port with --port" if "port is already allocated" in msg or "address already in use" \
            in msg else None
        raise BuildError(f"could not start container {name} from {image}: {msg}", hint=hint) from e
    return container, host_port


def container_logs(container: Any, lines: int = LOG_TAIL) -> str:
    try:
        return container.logs(tail=lines).decode("utf-8", "replace").rstrip()
    except Exception:  # noqa: BLE001 - best effort while reporting another error
        return "(no logs)"


def wait_ready(url: str, container: Any | None = None, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll ``{url}/ready`` until 200; raise NotReadyError with the container's last log lines."""
    import httpx

    start = time.monotonic()
    deadline = start + timeout
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/ready").status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            if container is not None:
                container.reload()
                if container.status in ("exited", "dead"):
                    code = container.attrs.get("State", {}).get("ExitCode")
                    raise NotReadyError(
                        f"container {container.name} exited (code {code}) before it was ready; last log lines:\n"
                        + _indent(container_logs(container)),
                        hint=f"inspect with `docker logs {container.name}`",
                    )
            time.sleep(0.05)
    logs = _indent(container_logs(container)) if container is not None else ""
    raise NotReadyError(
        f"{url}/ready did not answer 200 within {timeout:.0f}s" + (f"; last log lines:\n{logs}" if logs else ""),
        hint="raise MLDEPLOY_READY_TIMEOUT for slow models",
    )


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.splitlines())


def sample_curl(project: Project, url: str) -> str:
    """A copy-paste curl for the README/console, using the manifest's sample input when there is one."""
    sample = _sample_body(project)
    body = shlex.quote(json.dumps(sample, separators=(",", ":"))) if sample else "@input.json"
    return f"curl -s -X POST {url}/predict -H 'Content-Type: application/json' -d {body}"


def _sample_body(project: Project) -> dict | None:
    from runtime.manifest import Manifest

    build = records.read(project, records.BUILD)
    if not build:
        return None
    try:
        manifest = Manifest.load(f"{build['context_dir']}/model")
    except (OSError, ValueError):
        return None
    if not manifest.sample_input:
        return None
    sample = {k: _round(v[:2] if isinstance(v, list) else v) for k, v in manifest.sample_input.items()}
    return {"inputs": sample}


def _round(value: Any) -> Any:
    """float32 samples print as 5.099999904632568; six significant digits read better in a curl line."""
    if isinstance(value, list):
        return [_round(v) for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value


def run(project: Project, image: str, port: int | None = None, wait: bool = True) -> LocalRun:
    """Start ``image`` as the app's local container and (optionally) wait for readiness."""
    container, host_port = start_container(project, image, port)
    url = f"http://127.0.0.1:{host_port}"
    ready = wait_ready(url, container) if wait else None
    result = LocalRun(container=container.name, container_id=container.id, image=image, url=url, port=host_port,
                      ready_seconds=None if ready is None else round(ready, 3))
    records.write(project, records.LOCAL, asdict(result))
    return result


def report(project: Project, result: LocalRun, built: BuiltImage | None = None) -> None:
    """Human summary on stderr, or a JSON document on stdout with ``--json``."""
    from mldeploy.cli import state

    if state.options.json:
        console.emit_json({"local": asdict(result), "image": built.to_dict() if built else None})
        return
    if result.ready_seconds is not None:
        console.success(f"{project.config.name} is ready at [bold]{result.url}[/] "
                        f"(container {result.container}, ready in {result.ready_seconds:.1f}s)")
    else:
        console.info(f"{project.config.name} is starting at {result.url} (container {result.container})")
    for line in (f"  try:   {sample_curl(project, result.url)}",
                 f"  or:    mldeploy predict    docs: {result.url}/docs    stop: docker rm -f {result.container}"):
        console.console.print(line, markup=False, soft_wrap=True, highlight=False)


def run_last_build(project: Project, port: int | None = None, wait: bool = True) -> LocalRun:
    """``mldeploy run``: the last built image, or a fresh build when there is none."""
    from mldeploy.image.docker_client import client, image_size

    build = records.read(project, records.BUILD)
    built = None
    if not build or image_size(build["image_id"]) is None:
        from mldeploy.image.api import build_image

        built = build_image(project)
        image = built.image_id
    else:
        client()
        image = build["image_id"]
    result = run(project, image, port, wait)
    report(project, result, built)
    return result


def up_local(project: Project, port: int | None = None, wait: bool = True) -> LocalRun:
    """``mldeploy up --target local``: build (cached layers make this fast) + run + wait for ``/ready``."""
    from mldeploy.image.api import build_image
    from mldeploy.image.summary import print_build

    built = build_image(project)
    from mldeploy.cli import state

    if not state.options.json:
        print_build(built)
    result = run(project, built.image_id, port, wait)
    report(project, result, built)
    return result
