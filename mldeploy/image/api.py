"""Public image API for other areas: ``build_image``, ``push_image``, ``build_and_push``, ``last_build``.

This module is the orchestration (package → context → ``builder.docker_build`` → tags → record); the Docker
build stream itself lives in :mod:`mldeploy.image.builder`, the push in :mod:`mldeploy.image.registry`.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.ui import Ui
from mldeploy.workspace import BUILD_RECORD, PUSH_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from runtime.manifest import Manifest


@dataclass(frozen=True)
class BuiltImage:
    """A locally built image: ``tags`` are full references (``mldeploy/app:1.0.0`` …)."""

    repository: str
    tags: list[str]
    image_id: str
    size: int
    base_size: int | None
    build_seconds: float
    cached_steps: int
    steps: int
    context_dir: str
    model_version: str
    model_sha256: str
    git_commit: str | None = None
    tag_names: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The primary reference (the model version tag)."""
        return self.tags[0]

    @property
    def added_size(self) -> int | None:
        return None if self.base_size is None else self.size - self.base_size

    def to_dict(self) -> dict:
        return {**asdict(self), "added_size": self.added_size}


@dataclass(frozen=True)
class PushedImage:
    uri: str  # repository:tag
    digest: str  # sha256:… manifest digest in the registry
    tag: str
    tags: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """Immutable reference ``repository@sha256:…`` (what ECS task definitions should use)."""
        return f"{self.uri.rsplit(':', 1)[0]}@{self.digest}"


def local_repository(project: Project) -> str:
    return f"mldeploy/{project.names.base}"


def docker_tag(text: str) -> str:
    """A valid Docker tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`` (``+`` in semver becomes ``_``)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:128]
    return tag if re.match(r"[A-Za-z0-9_]", tag) else f"v{tag}"[:128]


def tag_names(version: str, commit: str | None) -> list[str]:
    """The moving tags: ``<version>``, ``<commit[:12]>``, ``latest`` (a rebuild moves them to the new image)."""
    names = [docker_tag(version)]
    if commit:
        names.append(commit[:12])
    names.append("latest")
    return list(dict.fromkeys(names))


def build_tag(version: str, image_id: str, now: datetime | None = None) -> str:
    """This build's own tag, ``<version>-<UTC yyyymmddHHMMSS>-<image id[:8]>``: never reused, never moved, so a
    rebuild of the same version (which moves the version/commit/latest tags) leaves the earlier image tagged (an
    untagged image is what ECR lifecycle rules expire first)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    short = image_id.removeprefix("sha256:")[:8] or "local"
    return docker_tag(f"{docker_tag(version)[:104]}-{stamp}-{short}")


def with_build_tag(names: list[str], version: str, image_id: str, now: datetime | None = None) -> list[str]:
    """``names`` with ``build_tag`` before ``latest`` (``names[0]``, the version tag, stays the primary)."""
    unique = build_tag(version, image_id, now)
    return [*names[:-1], unique, names[-1]] if names and names[-1] == "latest" else [*names, unique]


def build_from_artifact(project: Project, artifact_dir: Path, manifest: Manifest, *, no_cache: bool = False,
                        output: Path | None = None, ui: Ui | None = None) -> BuiltImage:
    """Assemble the context for an already packaged artifact and build it with Docker (progress on ``ui``)."""
    from mldeploy.image.builder import docker_build
    from mldeploy.image.context import assemble
    from mldeploy.image.docker_client import build_platform, client, image_size

    ui = ui or Ui()
    cfg = project.config
    client()  # fail fast (and clearly) when no daemon answers, before downloading wheels
    ctx = assemble(project, artifact_dir, manifest, output, status=ui.info, warn=ui.warn)
    repo = local_repository(project)
    commit = ctx.spec.git_commit if ctx.spec.git_commit != "unknown" else None
    names = tag_names(manifest.version, commit)
    outcome = docker_build(ctx.dir, f"{repo}:{names[0]}", platform=build_platform(cfg.image.platform),
                           no_cache=no_cache, ui=ui)
    names = with_build_tag(names, manifest.version, outcome.image_id)
    api = client().api
    for name in names[1:]:
        api.tag(outcome.image_id, repository=repo, tag=name, force=True)
    built = BuiltImage(
        repository=repo,
        tags=[f"{repo}:{n}" for n in names],
        image_id=outcome.image_id,
        size=image_size(outcome.image_id) or 0,
        base_size=image_size(cfg.image.base),
        build_seconds=round(outcome.seconds, 2),
        cached_steps=outcome.cached_steps,
        steps=outcome.steps,
        context_dir=str(ctx.dir),
        model_version=manifest.version,
        model_sha256=manifest.sha256,
        git_commit=commit,
        tag_names=names,
    )
    Workspace.of(project).write_json(BUILD_RECORD, {**built.to_dict(), "built_at": time.time()})
    return built


def build_image(project: Project, *, no_cache: bool = False, output: Path | None = None,
                ui: Ui | None = None) -> BuiltImage:
    """Package the model (cached when unchanged), render the context and build the image."""
    from mldeploy.artifacts.packager import package  # the submodule shadows the re-export once imported
    from mldeploy.image.docker_client import client

    client()  # no daemon → a clear error before minutes of packaging
    result = package(project)
    return build_from_artifact(project, Path(result.dir), result.manifest, no_cache=no_cache, output=output, ui=ui)


def push_image(project: Project, built: BuiltImage, *, registry: str | None = None, aws: Clients | None = None,
               ui: Ui | None = None) -> PushedImage:
    """Push ``built`` to ``registry`` (a URL), else ``registry.url``, else ECR (through ``aws``, default: the
    project's region/profile); records the digest."""
    from mldeploy.image.registry import push

    pushed = push(project, built, registry=registry, aws=aws, ui=ui or Ui())
    Workspace.of(project).write_json(PUSH_RECORD, {**asdict(pushed), "ref": pushed.ref, "image_id": built.image_id,
                                                   "pushed_at": time.time()})
    return pushed


def build_and_push(project: Project, *, registry: str | None = None, aws: Clients | None = None,
                   ui: Ui | None = None) -> PushedImage:
    """Build (cached when unchanged) and push; ``aws`` for ECR, ``ui`` for progress."""
    return push_image(project, build_image(project, ui=ui), registry=registry, aws=aws, ui=ui)


def last_build(project: Project) -> BuiltImage | None:
    """The last recorded build whose image still exists in the Docker daemon (None otherwise)."""
    from mldeploy.image.docker_client import image_size

    record = Workspace.of(project).record(BUILD_RECORD)
    if not record or image_size(record.get("image_id", "")) is None:
        return None
    fields = set(BuiltImage.__dataclass_fields__)
    return BuiltImage(**{k: v for k, v in record.items() if k in fields})
