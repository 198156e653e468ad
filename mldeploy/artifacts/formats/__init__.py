"""One module per source format; ``handler_for(format)`` picks it (imports lazily)."""

from __future__ import annotations

from importlib import import_module

from mldeploy.artifacts.formats.base import Handler

_MODULES = {
    "pickle": "sklearn_family", "joblib": "sklearn_family", "skops": "sklearn_family",
    "onnx": "onnx_fmt", "torchscript": "torch_fmt", "torch": "torch_fmt", "savedmodel": "tensorflow_fmt",
    "xgboost": "boosted", "lightgbm": "boosted", "catboost": "boosted", "mlflow": "mlflow_fmt",
    "transformers": "transformers_fmt",
}


def handler_for(fmt: str) -> type[Handler]:
    module = import_module(f"mldeploy.artifacts.formats.{_MODULES[fmt]}")
    return module.HANDLERS[fmt]


__all__ = ["Handler", "handler_for"]
