"""Human-readable summaries of builds and pushes (stderr)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mldeploy import console

if TYPE_CHECKING:
    from mldeploy.image.api import BuiltImage


def mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.1f} MB"


def print_build(built: BuiltImage) -> None:
    cached = f", {built.cached_steps}/{built.steps} steps cached" if built.steps else ""
    console.success(f"built {built.ref} ({built.image_id.removeprefix('sha256:')[:12]}) in "
                    f"{built.build_seconds:.1f}s{cached}")
    console.info(f"  size {mb(built.size)}, added over the base image: {mb(built.added_size)}")
    console.info(f"  tags: {', '.join(built.tags)}")
