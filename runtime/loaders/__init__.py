"""Model loaders, one module per served format; each imports only its own framework, lazily."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from runtime.loaders.base import LoadedModel, ModelLoadError
from runtime.manifest import Manifest

_MODULES = {
    "onnx": "runtime.loaders.onnx",
    "torchscript": "runtime.loaders.torchscript",
    "pickle": "runtime.loaders.sklearn",
    "joblib": "runtime.loaders.sklearn",
    "skops": "runtime.loaders.sklearn",
    "savedmodel": "runtime.loaders.savedmodel",
    "xgboost": "runtime.loaders.boosted",  # native gradient-boosted trees (no pickle)
    "lightgbm": "runtime.loaders.boosted",
    "catboost": "runtime.loaders.boosted",
    "transformers-onnx": "runtime.loaders.transformers_onnx",  # ONNX + tokenizer.json (text in)
}

__all__ = ["LoadedModel", "ModelLoadError", "load_model"]


def _verify(path: Path, expected: str) -> None:
    if not path.is_file():
        return  # folders (SavedModel) are hashed by `mldeploy package`; the file list is checked by the loader
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise ModelLoadError(f"{path}: sha256 {h.hexdigest()[:12]}… does not match model.json ({expected[:12]}…)")


def load_model(manifest: Manifest, folder: Path, threads: int) -> LoadedModel:
    """Load the model file named by ``manifest`` from ``folder`` with ``threads`` inference threads."""
    path = folder / manifest.file
    if not path.exists():
        raise ModelLoadError(f"{path}: model file named in model.json 'file' does not exist")
    _verify(path, manifest.sha256)
    try:
        module = importlib.import_module("runtime.loaders.records_onnx" if manifest.format == "onnx" and
                                         manifest.dataframe else _MODULES[manifest.format])  # fields → graph inputs
    except ImportError as e:
        raise ModelLoadError(
            f"format {manifest.format!r} needs {e.name!r}, which is not installed in this image "
            f"(model.json requirements: {', '.join(manifest.requirements) or 'none'})"
        ) from None
    return module.load(manifest, path, threads)
