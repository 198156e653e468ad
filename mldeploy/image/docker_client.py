"""The Docker SDK client, with "no daemon" and API errors mapped to actionable BuildErrors."""

from __future__ import annotations

import os
from typing import Any

from mldeploy.errors import BuildError

_client: Any = None


def client() -> Any:
    """A ``docker.DockerClient`` (API version negotiated), created once per process."""
    global _client
    if _client is not None:
        return _client
    import docker
    from docker.errors import DockerException

    try:
        c = docker.from_env(timeout=900)
        c.ping()
    except DockerException as e:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise BuildError(
            f"no Docker daemon answers at {host} ({_short(e)})",
            hint="start Docker (or point DOCKER_HOST at a running daemon); without Docker, "
            "`mldeploy serve` runs the model in-process",
        ) from e
    _client = c
    return c


def reset() -> None:
    """Forget the cached client (tests switch DOCKER_HOST)."""
    global _client
    _client = None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def image_size(image: str) -> int | None:
    """Size in bytes of a local image, or None if it does not exist."""
    from docker.errors import ImageNotFound

    try:
        return int(client().api.inspect_image(image)["Size"])
    except ImageNotFound:
        return None


def native_platform() -> str:
    """The daemon's own platform, e.g. ``linux/amd64``."""
    info = client().info()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(info.get("Architecture", ""), info.get("Architecture", ""))
    return f"{info.get('OSType', 'linux')}/{arch}"


def build_platform(wanted: str) -> str | None:
    """The ``platform`` to pass to the build: None for native builds.

    The classic builder behind the SDK's build API re-resolves (pulls) the base image when a platform is given,
    even if it is present locally; only cross-builds need it (and then need QEMU/binfmt on the daemon).
    """
    return None if wanted == native_platform() else wanted
