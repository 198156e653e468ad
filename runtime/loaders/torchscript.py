"""TorchScript models (``torch.jit.load``), inference-mode, threads from the CPU quota; on the GPU when CUDA is
available (the CUDA torch build, ``aws.gpus > 0``, and a visible GPU: ``torch.cuda.is_available()``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Before torch loads its OpenMP runtime (libgomp reads this once): inference threads sleep between parallel
# regions instead of spinning, as onnxruntime's do here (session.intra_op.allow_spinning 0). A spinning thread
# burns the CPU the event loop and the batcher need, and when the machine is busy a spinner whose partner was
# descheduled waits out whole time slices: measured in the image on a loaded 2-core machine, the warm-up
# inference took 0.135 s of CPU instead of 0.042 s, and a 1-row CNN inference 5–31 ms instead of 1–1.7 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest


class TorchScriptModel:
    def __init__(self, module: torch.jit.ScriptModule, manifest: Manifest, on: str = "cpu") -> None:
        self.module = module
        self.device = torch.device(on)
        self.provider = f"cuda:{self.device.index or 0} ({torch.cuda.get_device_name(self.device)})" \
            if self.device.type == "cuda" else "cpu"
        """Where the model runs (reported by /ready and the startup log)."""
        self.input_names = [t.name for t in manifest.inputs]
        self.output_names = [t.name for t in manifest.outputs]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        if isinstance(out, dict):
            out = [out[n] for n in self.output_names]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return {n: t.detach().cpu().numpy() for n, t in zip(self.output_names, out, strict=False)}


def device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(manifest: Manifest, path: Path, threads: int) -> TorchScriptModel:
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process (several versions loaded)
        torch.set_num_interop_threads(1)
    try:
        on = device()
        module = torch.jit.load(str(path), map_location=on)
    except Exception as e:  # torch raises RuntimeError/ValueError variants
        raise ModelLoadError(f"{path}: torch.jit.load failed: {e}") from None
    module.eval()
    return TorchScriptModel(module, manifest, on)
