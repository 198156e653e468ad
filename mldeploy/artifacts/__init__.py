"""Model artifacts: detect, load, convert, verify parity and describe a model in ``model.json``.

Import is cheap; the heavy work happens in :func:`package` (which imports numpy and the frameworks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mldeploy.artifacts.package import PackageResult
    from mldeploy.config import Project


def package(project: Project, output_dir: Path | None = None, **kwargs: Any) -> PackageResult:
    """Build or reuse ``<project.root>/.mldeploy/<env>/artifact`` (see :mod:`mldeploy.artifacts.package`)."""
    from mldeploy.artifacts.package import package as _package

    return _package(project, output_dir, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "PackageResult":
        from mldeploy.artifacts.package import PackageResult

        return PackageResult
    raise AttributeError(name)


__all__ = ["PackageResult", "package"]
