"""TorchScript models (``torch.jit.load``), inference-mode, threads from the CPU quota."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest


class TorchScriptModel:
    def __init__(self, module: torch.jit.ScriptModule, manifest: Manifest) -> None:
        self.module = module
        self.input_names = [t.name for t in manifest.inputs]
        self.output_names = [t.name for t in manifest.outputs]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        if isinstance(out, dict):
            out = [out[n] for n in self.output_names]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return {n: t.detach().cpu().numpy() for n, t in zip(self.output_names, out, strict=False)}


def load(manifest: Manifest, path: Path, threads: int) -> TorchScriptModel:
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (several versions loaded)
        torch.set_num_interop_threads(1)
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError/ValueError variants
        raise ModelLoadError(f"{path}: torch.jit.load failed: {e}") from None
    module.eval()
    return TorchScriptModel(module, manifest)
