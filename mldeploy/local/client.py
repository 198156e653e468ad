"""``mldeploy predict``: send the manifest's sample (or a JSON/.npy file, or stdin) to a server and show the answer."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import MldeployError, NotReadyError
from mldeploy.workspace import BUILD_RECORD, LOCAL_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project

NPY_MAGIC = b"\x93NUMPY"
SAMPLE_ROWS = 2
"""Rows generated from the signature when the manifest has no sample input."""
MAX_JSON_VALUES = 4096
"""Above this many values per request, generated rows go as ``application/x-npy`` rather than JSON."""
API_KEY_ENV = "MLDEPLOY_API_KEY"
"""The API key ``predict``/``bench`` send (``--api-key``); never printed."""


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str
    source: str


def default_url(project: Project) -> str:
    """The local run's URL (``mldeploy run``/``up --target local``), else localhost on the configured port."""
    local = Workspace.of(project).record(LOCAL_RECORD)
    return local["url"] if local and local.get("url") else f"http://127.0.0.1:{project.config.runtime.port}"


def _manifest(project: Project, package_if_needed: bool) -> Any | None:
    """The served model's manifest: the last build's context, else the packaged artifact, else a fresh package."""
    from runtime.manifest import Manifest

    build = Workspace.of(project).record(BUILD_RECORD)
    folders = [Path(build["context_dir"]) / "model"] if build and build.get("context_dir") else []
    for folder in [*folders, Workspace.of(project).artifact_dir]:
        try:
            return Manifest.load(folder)
        except (OSError, ValueError):
            continue
    if not package_if_needed:
        return None
    from mldeploy.artifacts.packager import package  # the submodule shadows the re-export once imported

    return package(project).manifest


def sample_request(project: Project, *, package_if_needed: bool = True) -> Request:
    """The manifest's ``sample_input``, else rows generated from its signature with the seed the parity check
    used (``mldeploy.artifacts.sample.generate``), so ``predict``/``bench`` work on a fresh project."""
    manifest = _manifest(project, package_if_needed)
    if manifest is None:
        raise MldeployError("no packaged model yet", hint="run `mldeploy package`, or pass --input FILE")
    if manifest.sample_input:
        return Request(json.dumps({"inputs": manifest.sample_input}).encode(), "application/json",
                       "manifest sample")
    import numpy as np

    from mldeploy.artifacts.sample import generate
    from mldeploy.errors import ArtifactError, ExitCode

    try:
        rows = generate(manifest.inputs, SAMPLE_ROWS)
    except ArtifactError as e:
        raise MldeployError(f"no sample input to send: {e.message}", hint="pass --input FILE (.json or .npy), or "
                            f"set model.sample_input in {project.path.name}", exit_code=ExitCode.USAGE) from e
    shapes = ", ".join(f"{t.dtype}[{'×'.join('N' if d in (None, -1) else str(d) for d in t.shape)}]"
                       for t in manifest.inputs)
    source = f"{SAMPLE_ROWS} rows generated from the signature {shapes}; set model.sample_input for real rows"
    if len(rows) == 1 and next(iter(rows.values())).size > MAX_JSON_VALUES:  # images: a binary tensor
        import io

        buf = io.BytesIO()
        np.save(buf, next(iter(rows.values())))
        return Request(buf.getvalue(), "application/x-npy", source)
    body = {k: np.round(v.astype(np.float64), 4).tolist() if v.dtype.kind == "f" else v.tolist()
            for k, v in rows.items()}
    return Request(json.dumps({"inputs": body}).encode(), "application/json", source)


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


def auth_headers(project: Project | None, api_key: str | None = None) -> dict[str, str]:
    """The credentials to send: ``api_key`` (``--api-key`` / ``$MLDEPLOY_API_KEY``) as ``X-API-Key``, else the first
    of the server's own keys from this shell's environment, else ``$MLDEPLOY_TOKEN`` as a bearer token."""
    import os

    key = api_key or os.environ.get(API_KEY_ENV)
    if key:
        return {"X-API-Key": key.strip()}
    auth = project.config.runtime.auth if project is not None else None
    if auth is not None and auth.mode == "api_key" and os.environ.get(auth.api_keys_env):
        return {"X-API-Key": os.environ[auth.api_keys_env].split(",")[0].strip()}
    if os.environ.get("MLDEPLOY_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLDEPLOY_TOKEN']}"}
    return {}
