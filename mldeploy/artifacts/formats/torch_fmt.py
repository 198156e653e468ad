"""PyTorch: a TorchScript file, a full ``torch.save`` of an ``nn.Module``, or ``model.torch_class`` + state dict.

Served as ONNX (legacy TorchScript-based exporter, dynamic batch axis) or TorchScript (traced).
"""

from __future__ import annotations

import importlib
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import missing_framework
from mldeploy.artifacts.formats.base import Handler, Served, Signature, on_path, pinned, version_of
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor

_BATCH = 16


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise missing_framework("PyTorch", "torch", "torch") from e
    return torch


class TorchHandler(Handler):
    format = "torch"
    native_format = "torchscript"
    can_convert_to = ("onnx", "torchscript")

    # -- loading ------------------------------------------------------------------------------------------
    def load(self) -> None:
        torch = _torch()
        self.torch = torch
        try:
            self.module = self._load_module(torch)
        except ArtifactError:
            raise
        except Exception as e:  # torch raises RuntimeError/UnpicklingError/… for corrupt archives
            raise ArtifactError(f"{self.path} is a {self.format} file but cannot be loaded: {type(e).__name__}: "
                                f"{str(e).splitlines()[0][:300]}", hint="re-save the model; the file may be "
                                "truncated or from an incompatible torch version") from e
        self.module.eval()

    def _load_module(self, torch: Any) -> Any:
        if self.format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
                return torch.jit.load(str(self.path), map_location="cpu")
        with on_path(self.root):
            try:  # state dicts load safely; a full nn.Module needs the pickle path
                obj = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - weights_only refuses arbitrary classes
                obj = torch.load(self.path, map_location="cpu", weights_only=False)
            if isinstance(obj, torch.nn.Module):
                return obj
            if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
                obj = obj["state_dict"]  # Lightning-style checkpoint
            if not isinstance(obj, dict):
                raise ArtifactError(f"{self.path} holds a {type(obj).__name__}, not an nn.Module or a state dict")
            if not self.cfg.torch_class:
                raise ArtifactError(f"{self.path} is a state dict (weights only); mldeploy needs the model class",
                                    hint="set model.torch_class: 'module:ClassName' (importable from the folder "
                                    "of mldeploy.yaml) and model.torch_class_kwargs")
            return self._from_class(obj)

    def _from_class(self, state: dict[str, Any]) -> Any:
        mod_name, cls_name = self.cfg.torch_class.split(":")  # type: ignore[union-attr]
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as e:
            raise ArtifactError(f"model.torch_class: cannot import {self.cfg.torch_class} ({e})",
                                hint=f"the module must be importable from {self.root}") from e
        try:
            module = cls(**self.cfg.torch_class_kwargs)
        except TypeError as e:
            raise ArtifactError(f"model.torch_class_kwargs: {cls_name}(**{self.cfg.torch_class_kwargs}) "
                                f"failed: {e}") from e
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise ArtifactError(f"the state dict in {self.path.name} does not fit {self.cfg.torch_class}: "
                                f"{str(e).splitlines()[0][:300]}…", hint="check model.torch_class_kwargs") from e
        return module

    # -- description --------------------------------------------------------------------------------------
    def signature(self) -> Signature:
        cfg = self.cfg
        if cfg.inputs:
            inputs = [Tensor(**t.model_dump()) for t in cfg.inputs]
        elif cfg.image:
            im = cfg.image
            dims = [im.channels, im.height, im.width] if im.layout == "NCHW" else [im.height, im.width, im.channels]
            inputs = [Tensor(name="input", dtype="float32", shape=[None, *dims])]
        else:
            raise ArtifactError("a PyTorch model does not record its input shape",
                                hint="set model.image (image models) or model.inputs, e.g. "
                                "[{name: input, shape: [null, 3, 224, 224]}]")
        for t in inputs:
            t.shape = [None, *t.shape[1:]]
        probe = self._run({t.name: np.zeros([2] + [d or 8 for d in t.shape[1:]], dtype=t.dtype) for t in inputs})
        if cfg.outputs:
            if len(cfg.outputs) != len(probe):
                raise ArtifactError(f"model.outputs lists {len(cfg.outputs)} outputs but the model returns "
                                    f"{len(probe)}")
            outputs = [Tensor(**t.model_dump()) for t in cfg.outputs]
        else:
            outputs = [Tensor(name="output" if len(probe) == 1 else f"output_{i}") for i in range(len(probe))]
        for t, v in zip(outputs, probe, strict=True):
            t.dtype, t.shape = str(v.dtype), [None, *v.shape[1:]]
        self.output_names = [t.name for t in outputs]
        return Signature(inputs, outputs, cfg.task, cfg.class_labels, cfg.feature_names)

    def _run(self, inputs: dict[str, np.ndarray], module: Any = None) -> list[np.ndarray]:
        torch = self.torch
        module = module or self.module
        n = min(len(v) for v in inputs.values())
        parts: list[list[np.ndarray]] = []
        with torch.inference_mode():
            for i in range(0, n, _BATCH):
                args = [torch.from_numpy(np.ascontiguousarray(v[i:i + _BATCH])) for v in inputs.values()]
                y = module(*args)
                ys = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, tuple | list) else [y]
                parts.append([t.detach().cpu().numpy() for t in ys])
        return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._run(inputs), strict=True))

    # -- serving ------------------------------------------------------------------------------------------
    def _example(self, sig: Signature) -> tuple[Any, ...]:
        return tuple(self.torch.zeros([2] + [d or 8 for d in t.shape[1:]], dtype=getattr(self.torch, t.dtype))
                     for t in sig.inputs)

    def write_native(self, out_dir: Path) -> Served:
        if self.format == "torchscript":
            shutil.copyfile(self.path, out_dir / "model.pt")
            return Served(format="torchscript", file="model.pt")
        return self.convert("torchscript", out_dir, self.signature())

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        torch = self.torch
        example = self._example(sig)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning/deprecation chatter
            if target == "torchscript":
                traced = self.module if self.format == "torchscript" else torch.jit.trace(self.module, example)
                torch.jit.save(traced, str(out_dir / "model.pt"))
                return Served(format="torchscript", file="model.pt")
            if target != "onnx":
                return super().convert(target, out_dir, sig)
            names_in, names_out = [t.name for t in sig.inputs], [t.name for t in sig.outputs]
            axes = {n: {0: "batch"} for n in names_in + names_out}
            # dynamo=False: the TorchScript-based exporter needs no onnxscript and handles ScriptModules
            torch.onnx.export(self.module, example, str(out_dir / "model.onnx"), dynamo=False, input_names=names_in,
                              output_names=names_out, dynamic_axes=axes, opset_version=17)
        return Served(format="onnx", file="model.onnx")

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if served.format != "torchscript":
            return super().run_served(served, folder, inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = self.torch.jit.load(str(folder / served.file), map_location="cpu")
        return dict(zip(self.output_names, self._run(inputs, loaded), strict=True))

    def framework_versions(self) -> dict[str, str]:
        return {k: v for k in ("torch", "numpy", "onnx") if (v := version_of(k))}

    def requirements(self, served_format: str) -> list[str]:
        return pinned("torch") if served_format == "torchscript" else super().requirements(served_format)


class TorchScriptHandler(TorchHandler):
    format = "torchscript"


HANDLERS = {"torch": TorchHandler, "torchscript": TorchScriptHandler}
