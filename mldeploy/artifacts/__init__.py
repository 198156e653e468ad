"""Model artifacts: detect, load, convert, verify parity and describe a model in ``model.json``.

``package`` is imported eagerly (numpy + pydantic, no ML framework): a lazy wrapper would be replaced by the
``mldeploy.artifacts.packager`` submodule as soon as that is imported, so ``mldeploy.artifacts.packager`` would
sometimes be a module. Framework imports (sklearn, torch, tensorflow) stay inside the format handlers.
"""

from __future__ import annotations

from mldeploy.artifacts.packager import PackageResult, package

__all__ = ["PackageResult", "package"]
