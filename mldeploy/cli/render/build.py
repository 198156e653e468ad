"""Summaries of builds, pushes and local runs (stderr)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mldeploy import console

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.image.api import BuiltImage, PushedImage
    from mldeploy.local.container import LocalRun


def mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def print_build(built: BuiltImage) -> None:
    cached = f", {built.cached_steps}/{built.steps} steps cached" if built.steps else ""
    console.success(f"built {built.ref} ({built.image_id.removeprefix('sha256:')[:12]}) in "
                    f"{built.build_seconds:.1f}s{cached}")
    console.info(f"  size {mb(built.size)}, added over the base image: {mb(built.added_size)}")
    console.info(f"  tags: {', '.join(built.tags)}")


def pushed_json(pushed: PushedImage) -> dict[str, Any]:
    return {"uri": pushed.uri, "digest": pushed.digest, "tag": pushed.tag, "ref": pushed.ref, "tags": pushed.tags}


def local_run_json(result: LocalRun, built: BuiltImage | None) -> dict[str, Any]:
    return {"local": asdict(result), "image": built.to_dict() if built else None}


def print_local_run(project: Project, result: LocalRun) -> None:
    """Where the container listens, a copy-paste curl and how to stop it."""
    from mldeploy.local.container import sample_curl

    if result.ready_seconds is not None:
        console.success(f"{project.config.name} is ready at [bold]{result.url}[/] "
                        f"(container {result.container}, ready in {result.ready_seconds:.1f}s)")
    else:
        console.info(f"{project.config.name} is starting at {result.url} (container {result.container})")
    for line in (f"  try:   {sample_curl(project, result.url)}",
                 f"  or:    mldeploy predict    docs: {result.url}/docs    stop: docker rm -f {result.container}"):
        console.console.print(line, markup=False, soft_wrap=True, highlight=False)
