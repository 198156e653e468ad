"""Render the Dockerfile and .dockerignore of the build context from ``templates/``."""

from __future__ import annotations

from dataclasses import dataclass, field

from mldeploy.templating import render

APP_UID = 10001


@dataclass(frozen=True)
class DockerfileSpec:
    """Everything the Dockerfile template needs (no secrets: it is visible in the image history)."""

    app: str
    env: str
    base: str
    port: int
    model_version: str
    model_sha256: str
    model_format: str
    git_commit: str = "unknown"
    uninstall: list[str] = field(default_factory=lambda: ["pip", "setuptools"])
    system_packages: list[str] = field(default_factory=list)
    uid: int = APP_UID


def render_dockerfile(spec: DockerfileSpec) -> str:
    from mldeploy import __version__

    return render("Dockerfile.j2", mldeploy_version=__version__, **spec.__dict__)


def render_dockerignore() -> str:
    return render("dockerignore.j2")
