"""``mldeploy predict``: send the manifest's sample (or a JSON/.npy file, or stdin) to a server and show the answer."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import ConfigError, MldeployError, NotReadyError
from mldeploy.workspace import BUILD_RECORD, LOCAL_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project

NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str
    source: str


def default_url(project: Project) -> str:
    """The local run's URL (``mldeploy run``/``up --target local``), else localhost on the configured port."""
    local = Workspace.of(project).record(LOCAL_RECORD)
    return local["url"] if local and local.get("url") else f"http://127.0.0.1:{project.config.runtime.port}"


def sample_request(project: Project) -> Request:
    """The manifest's ``sample_input`` (from the last build's context, else a fresh package)."""
    from runtime.manifest import Manifest

    manifest = None
    build = Workspace.of(project).record(BUILD_RECORD)
    if build:
        try:
            manifest = Manifest.load(Path(build["context_dir"]) / "model")
        except (OSError, ValueError):
            manifest = None
    if manifest is None:
        from mldeploy.artifacts.packager import package  # the submodule shadows the re-export once imported

        manifest = package(project).manifest
    if not manifest.sample_input:
        raise ConfigError(
            f"the model's manifest has no sample input (model.sample_input in {project.path.name} is unset)",
            hint="pass --input FILE (.json or .npy), or set model.sample_input",
        )
    return Request(json.dumps({"inputs": manifest.sample_input}).encode(), "application/json", "manifest sample")


def file_request(path: str) -> Request:
    """A request from ``path`` (``-`` = stdin, or inline JSON text): ``.npy`` → ``application/x-npy``, else JSON."""
    if path.lstrip().startswith(("{", "[")):
        data, source = path.encode(), "inline JSON"
    elif path == "-":
        data, source = sys.stdin.buffer.read(), "stdin"
    else:
        p = Path(path)
        if not p.is_file():
            raise MldeployError(f"--input {path}: file not found")
        data, source = p.read_bytes(), str(p)
    if data.startswith(NPY_MAGIC):
        return Request(data, "application/x-npy", source)
    try:
        json.loads(data)
    except ValueError as e:
        raise MldeployError(f"--input {source}: neither a .npy array nor valid JSON ({e})") from e
    return Request(data, "application/json", source)


def send(url: str, request: Request, *, headers: dict[str, str] | None = None, timeout: float = 30.0
         ) -> tuple[int, Any, float]:
    """POST to ``{url}/predict``; returns (status, decoded body, seconds)."""
    import httpx

    endpoint = url.rstrip("/") + ("" if url.rstrip("/").endswith("/predict") else "/predict")
    try:
        resp = httpx.post(endpoint, content=request.body, timeout=timeout,
                          headers={"Content-Type": request.content_type, **(headers or {})})
    except httpx.HTTPError as e:
        raise NotReadyError(f"no answer from {endpoint}: {e}",
                            hint="start the server with `mldeploy run` (Docker) or `mldeploy serve`, or pass --url") \
            from e
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body, resp.elapsed.total_seconds()


def auth_headers(project: Project) -> dict[str, str]:
    """An ``X-API-Key``/``Authorization`` header from the environment when the server requires auth."""
    import os

    auth = project.config.runtime.auth
    if auth.mode == "api_key" and os.environ.get(auth.api_keys_env):
        return {"X-API-Key": os.environ[auth.api_keys_env].split(",")[0].strip()}
    if os.environ.get("MLDEPLOY_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLDEPLOY_TOKEN']}"}
    return {}
