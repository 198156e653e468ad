"""Run the image locally in Docker (``run``, ``up --target local``) and wait until it is ready."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.errors import BuildError, NotReadyError
from mldeploy.polling import PollTimeout, poll_until
from mldeploy.workspace import BUILD_RECORD, LOCAL_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.image.api import BuiltImage
    from mldeploy.ui import Ui

READY_TIMEOUT_S = 120.0
"""Default wait for ``/ready``; the CLI passes ``$MLDEPLOY_READY_TIMEOUT`` (cli.session.Settings)."""
READY_POLL_S = 0.05
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
    with httpx.Client(timeout=2.0) as http:

        def ready() -> bool:
            try:
                if http.get(f"{url}/ready").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if container is not None:
                _raise_if_exited(container)
            return False

        try:
            poll_until(ready, timeout=timeout, interval=READY_POLL_S, what=f"{url}/ready")
        except PollTimeout:
            logs = _indent(container_logs(container)) if container is not None else ""
            raise NotReadyError(
                f"{url}/ready did not answer 200 within {timeout:.0f}s"
                + (f"; last log lines:\n{logs}" if logs else ""),
                hint="raise MLDEPLOY_READY_TIMEOUT for slow models",
            ) from None
    return time.monotonic() - start


def _raise_if_exited(container: Any) -> None:
    container.reload()
    if container.status in ("exited", "dead"):
        code = container.attrs.get("State", {}).get("ExitCode")
        raise NotReadyError(
            f"container {container.name} exited (code {code}) before it was ready; last log lines:\n"
            + _indent(container_logs(container)),
            hint=f"inspect with `docker logs {container.name}`",
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

    build = Workspace.of(project).record(BUILD_RECORD)
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


def run(project: Project, image: str, port: int | None = None, wait: bool = True,
        ready_timeout: float = READY_TIMEOUT_S) -> LocalRun:
    """Start ``image`` as the app's local container and (optionally) wait for readiness."""
    container, host_port = start_container(project, image, port)
    url = f"http://127.0.0.1:{host_port}"
    ready = wait_ready(url, container, timeout=ready_timeout) if wait else None
    result = LocalRun(container=container.name, container_id=container.id, image=image, url=url, port=host_port,
                      ready_seconds=None if ready is None else round(ready, 3))
    Workspace.of(project).write_json(LOCAL_RECORD, asdict(result))
    return result


def run_last_build(project: Project, port: int | None = None, wait: bool = True,
                   ready_timeout: float = READY_TIMEOUT_S, ui: Ui | None = None) -> tuple[LocalRun, BuiltImage | None]:
    """``mldeploy run``: the last built image, or a fresh build when there is none (returned second)."""
    from mldeploy.image.api import build_image, last_build
    from mldeploy.image.docker_client import client

    client()
    built = None
    previous = last_build(project)
    if previous is not None:
        image = previous.image_id
    else:
        built = build_image(project, ui=ui)
        image = built.image_id
    return run(project, image, port, wait, ready_timeout), built


def up_local(project: Project, port: int | None = None, wait: bool = True, ready_timeout: float = READY_TIMEOUT_S,
             on_built: Callable[[BuiltImage], None] | None = None, ui: Ui | None = None) -> tuple[LocalRun, BuiltImage]:
    """``mldeploy up --target local``: build (cached layers make this fast) + run + wait for ``/ready``.

    ``on_built(built)`` runs between the build and the start (the CLI prints the build summary there).
    """
    from mldeploy.image.api import build_image

    built = build_image(project, ui=ui)
    if on_built is not None:
        on_built(built)
    return run(project, built.image_id, port, wait, ready_timeout), built
