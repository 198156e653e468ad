"""Run the image locally in Docker (``run``, ``up --target local``) and wait until it is ready."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import BuildError, MldeployError, NotReadyError
from mldeploy.polling import PollTimeout, poll_until
from mldeploy.workspace import LOCAL_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.image.api import BuiltImage
    from mldeploy.ui import Ui

READY_TIMEOUT_S = 120.0
"""Default wait for ``/ready``; the CLI passes ``$MLDEPLOY_READY_TIMEOUT`` (cli.session.Settings)."""
READY_POLL_S = 0.02  # a refused local connection costs ~0.1 ms: polling often adds little CPU and up to 20 ms wait
EXIT_CHECK_S = 0.5  # a Docker API inspect (container.reload) per poll costs 10–40 ms: ask whether it exited less often
LOG_TAIL = 30
SAMPLE_BODY = "sample-request.json"
"""The sample request body the printed curl sends (``-d @.mldeploy/<env>/sample-request.json``)."""
MODELS_MOUNT = "/app/models"
"""Where ``up --target local`` mounts the workspace's models folder (read-only; ``MLDEPLOY_MODELS_DIR``)."""


@dataclass(frozen=True)
class LocalRun:
    container: str
    container_id: str
    image: str
    url: str
    port: int
    ready_seconds: float | None
    models_dir: str | None = None
    """The host models folder mounted at MODELS_MOUNT (None: the image's own model only)."""
    versions: list[str] | None = None
    """The version folders present when the container started (the runtime loads them at start only)."""


def container_name(project: Project) -> str:
    return f"mldeploy-{project.names.base}"


def _secret_env(project: Project) -> dict[str, str]:
    """Pass the auth secrets the server needs from this shell's environment (never baked into the image)."""
    auth = project.config.runtime.auth
    names = {auth.api_keys_env, auth.jwt_secret_env} if auth.mode != "none" else set()
    return {n: os.environ[n] for n in sorted(names) if n in os.environ}


def start_container(project: Project, image: str, port: int | None = None,
                    models_dir: Path | None = None) -> tuple[Any, int]:
    """(Re)start the app's container from ``image``, publishing the server port on 127.0.0.1:``port``.

    ``models_dir``: mounted read-only at MODELS_MOUNT with ``MLDEPLOY_MODELS_DIR`` set, so the runtime serves
    every version folder there and follows ``routing.json`` (the local release target writes it).
    """
    from docker.errors import APIError, NotFound

    from mldeploy.image.docker_client import client

    docker = client()
    name = container_name(project)
    cport = project.config.runtime.port
    host_port = port or cport
    with contextlib.suppress(NotFound):
        docker.containers.get(name).remove(force=True)
    environment = _secret_env(project)
    volumes: dict[str, dict[str, str]] = {}
    if models_dir is not None:
        environment["MLDEPLOY_MODELS_DIR"] = MODELS_MOUNT
        volumes[str(models_dir.resolve())] = {"bind": MODELS_MOUNT, "mode": "ro"}
    elif project.config.model.store == "s3":  # the image holds no model: the packaged artifact, read-only
        from mldeploy.workspace import Workspace

        environment["MLDEPLOY_MODEL_ARTIFACT_DIR"] = "/mnt/mldeploy-artifact"  # runtime.model_fetch.ENV_LOCAL
        volumes[str(Workspace.of(project).artifact_dir.resolve())] = {"bind": "/mnt/mldeploy-artifact", "mode": "ro"}
    try:
        container = docker.containers.run(
            image, name=name, detach=True, environment=environment, volumes=volumes,
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
    checked = start
    with httpx.Client(timeout=2.0) as http:

        def ready() -> bool:
            nonlocal checked
            try:
                if http.get(f"{url}/ready").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if container is not None and time.monotonic() - checked >= EXIT_CHECK_S:
                checked = time.monotonic()
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
    """A copy-paste curl for the console: the sample body is written to ``.mldeploy/<env>/sample-request.json``
    (the manifest's sample input, else rows generated from its signature) and sent with ``-d @FILE``."""
    path = write_sample_body(project)
    body = f"@{shlex.quote(str(path))}" if path else "'{\"inputs\": [[...]]}'"
    return f"curl -s -X POST {url}/predict -H 'Content-Type: application/json' -d {body}"


def write_sample_body(project: Project) -> Path | None:
    """The request body ``predict`` would send, as a file in the workspace (None when there is none)."""
    from mldeploy.local.client import sample_request

    try:
        request = sample_request(project, package_if_needed=False)
    except MldeployError:
        return None
    if request.content_type != "application/json":
        return None
    path = Workspace.of(project).path(SAMPLE_BODY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_round(json.loads(request.body)), separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def _round(value: Any) -> Any:
    """float32 samples print as 5.099999904632568; six significant digits read better in a curl line."""
    if isinstance(value, list):
        return [_round(v) for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value


def run(project: Project, image: str, port: int | None = None, wait: bool = True,
        ready_timeout: float = READY_TIMEOUT_S, models_dir: Path | None = None) -> LocalRun:
    """Start ``image`` as the app's local container (``models_dir`` mounted) and (optionally) wait for readiness."""
    versions = _versions(models_dir) if models_dir is not None else None
    container, host_port = start_container(project, image, port, models_dir)
    url = f"http://127.0.0.1:{host_port}"
    ready = wait_ready(url, container, timeout=ready_timeout) if wait else None
    result = LocalRun(container=container.name, container_id=container.id, image=image, url=url, port=host_port,
                      ready_seconds=None if ready is None else round(ready, 3),
                      models_dir=str(models_dir) if models_dir is not None else None, versions=versions)
    Workspace.of(project).write_json(LOCAL_RECORD, asdict(result))
    return result


def _versions(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if (p / "model.json").is_file()) if models_dir.is_dir() \
        else []


def restart_for_new_versions(project: Project, ready_timeout: float = READY_TIMEOUT_S
                             ) -> tuple[LocalRun, list[str]] | None:
    """Restart the ``up --target local`` container when ``routing.json`` routes to a version folder it did not
    load; returns the new run and those versions (None when nothing had to change or no such container runs).

    The runtime discovers version folders only at start (``runtime.repository.discover``); weights naming an
    unknown version are ignored until then. The container keeps its image, port and mount.
    """
    from mldeploy.release.targets.local import LocalTarget
    from mldeploy.ui import NULL_UI

    record = Workspace.of(project).record(LOCAL_RECORD)
    if not record or not record.get("models_dir") or not record.get("container"):
        return None
    models_dir = Path(record["models_dir"])
    target = LocalTarget(project, NULL_UI)
    if target.models_dir.resolve() != models_dir.resolve():
        return None
    missing = [v for v in target.served_versions() if v not in (record.get("versions") or [])]  # + the shadow
    if not missing or not _running(record["container"]):
        return None
    run_ = run(project, record["image"], record["port"], True, ready_timeout, models_dir)
    return run_, missing


def _running(name: str) -> bool:
    from docker.errors import DockerException

    from mldeploy.image.docker_client import client

    try:
        return client().containers.get(name).status == "running"
    except DockerException:
        return False
    except BuildError:  # no Docker daemon
        return False


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
    """``mldeploy up --target local``: build (cached layers make this fast), register the built model in the
    workspace's models folder, give it 100 % through the local release target (an active canary is closed and the
    move recorded in the local history), then run the container with that folder mounted and wait for ``/ready``.

    ``on_built(built)`` runs between the build and the start (the CLI prints the build summary there).
    """
    from mldeploy.image.api import build_image
    from mldeploy.release.stores import LocalHistory
    from mldeploy.release.targets.local import LocalTarget
    from mldeploy.ui import NULL_UI

    built = build_image(project, ui=ui)
    if on_built is not None:
        on_built(built)
    target = LocalTarget(project, ui or NULL_UI)
    target.deploy(LocalHistory(target.state_path, git_commit=built.git_commit), Path(built.context_dir) / "model")
    return run(project, built.image_id, port, wait, ready_timeout, target.models_dir), built
