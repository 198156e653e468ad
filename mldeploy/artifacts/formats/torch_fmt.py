"""PyTorch: a TorchScript file, a full ``torch.save`` of an ``nn.Module``, or ``model.torch_class`` + state dict.

Served as ONNX (legacy TorchScript-based exporter, dynamic batch axis) or TorchScript (traced).
"""

from __future__ import annotations

import collections
import importlib
import pickle
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import missing_framework
from mldeploy.artifacts.formats.base import Handler, Served, Signature, on_path, pinned, version_of
from mldeploy.errors import ArtifactError, ExitCode
from runtime.manifest import Tensor

_BATCH = 16


# --------------------------------------------------------------------------- the first layer, without torch


@dataclass(frozen=True)
class FirstLayer:
    """The first module with a ``weight`` in a torch archive, in registration order (``named_modules``)."""

    name: str  # "0", "fc1", "encoder.0"
    kind: str  # the class name: Linear, Conv2d, … ("" for a bare state dict)
    weight: tuple[int, ...]

    @property
    def row_shape(self) -> list[int | None] | None:
        """The input per request row this layer implies: ``[in_features]`` for a Linear, ``[C, None, None]`` for a
        Conv2d, ``[C, None]`` for a Conv1d, ``[n]`` for a norm over ``n`` features; None when it cannot tell."""
        w, kind = self.weight, self.kind
        if len(w) == 2 and kind in ("Linear", ""):
            return [w[1]]
        if len(w) == 4 and kind in ("Conv2d", ""):
            return [w[1], None, None]
        if len(w) == 3 and kind in ("Conv1d", ""):
            return [w[1], None]
        if len(w) == 1 and kind in ("BatchNorm1d", "LayerNorm"):
            return [w[0]]
        return None

    @property
    def label(self) -> str:
        """``layer '0' (Linear 13 → 32)``."""
        return f"layer {self.name!r} ({self.io})"

    def describe(self) -> str:
        """``its first layer '0' (Linear 13 → 32) takes 13 features per row``."""
        label, shape = self.label, self.row_shape
        if shape is None:
            return f"its first {label} does not tell the input shape"
        if len(shape) == 1:
            return f"its first {label} takes {shape[0]} features per row"
        return f"its first {label} takes {shape[0]} channel{'s' if shape[0] != 1 else ''} per row"

    @property
    def io(self) -> str:
        """``Linear 13 → 32``, ``Conv2d 3 → 8 channels, kernel 3×3``, ``weight [32, 13]``."""
        w = self.weight
        if self.kind == "Linear" and len(w) == 2:
            return f"Linear {w[1]} → {w[0]}"
        if self.kind.startswith("Conv") and len(w) >= 3:
            return f"{self.kind} {w[1]} → {w[0]} channels, kernel {'×'.join(map(str, w[2:]))}"
        return f"{self.kind} weight {list(w)}".strip()


class _Tensor:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


class _Stub:
    """Stands in for every class an archive names (modules, storages): nothing of the file's code runs."""

    kind = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: Any, offset: Any, size: Any, *rest: Any) -> _Tensor:
    return _Tensor(tuple(int(d) for d in size))


def _first(value: Any, *rest: Any) -> Any:
    return value


_SAFE = {("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "set"): set,
         ("__builtin__", "set"): set, ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
         ("torch._utils", "_rebuild_tensor"): _rebuild_tensor, ("torch._utils", "_rebuild_parameter"): _first,
         ("torch._utils", "_rebuild_parameter_with_state"): _first}


class _ShapeUnpickler(pickle.Unpickler):
    """Reads ``data.pkl`` of a TorchScript / ``torch.save`` archive into stubs and tensor shapes."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        return type(name, (_Stub,), {"kind": name.rsplit(".", 1)[-1]})

    def persistent_load(self, pid: Any) -> None:
        return None


def _layers(obj: Any, prefix: str = "") -> Iterator[FirstLayer]:
    """Modules with a ``weight`` tensor, depth first in attribute order (TorchScript keeps ``__init__``'s order)."""
    if isinstance(obj, _Stub):
        state = obj.state if isinstance(obj.state, dict) else {}
        params = state.get("_parameters") if isinstance(state.get("_parameters"), dict) else state  # torch.save
        if isinstance(params.get("weight"), _Tensor):
            yield FirstLayer(prefix or "(root)", obj.kind, params["weight"].shape)
        children = state.get("_modules") if isinstance(state.get("_modules"), dict) else state
        for key, child in children.items():
            if isinstance(child, _Stub):
                yield from _layers(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, dict):  # a state dict: {"0.weight": tensor, …} (a Lightning checkpoint nests it)
        inner = obj.get("state_dict")
        for key, value in (inner if isinstance(inner, dict) else obj).items():
            if isinstance(key, str) and key.endswith("weight") and isinstance(value, _Tensor):
                yield FirstLayer(key.rsplit(".", 1)[0] if "." in key else "(root)", "", value.shape)


def first_layer(path: Path) -> FirstLayer | None:
    """The first weighted layer of a TorchScript or ``torch.save`` zip archive, read without importing torch or
    running the file's code (the archive's classes become stubs); None when the file does not tell."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") <= 1), None)
            if name is None:
                return None
            data = zf.read(name)
        import io

        root = _ShapeUnpickler(io.BytesIO(data)).load()
    except Exception:  # noqa: BLE001 - any unreadable archive: init asks or leaves model.inputs commented
        return None
    return next(_layers(root), None)


def _module_first_layer(module: Any) -> FirstLayer | None:
    """The same for a loaded module (``named_modules`` order; a ScriptModule's ``original_name`` is its class)."""
    try:
        for name, sub in module.named_modules():
            weight = dict(sub.named_parameters(recurse=False)).get("weight")
            if weight is not None:
                kind = getattr(sub, "original_name", None) or type(sub).__name__
                return FirstLayer(name or "(root)", str(kind), tuple(int(d) for d in weight.shape))
    except Exception:  # noqa: BLE001 - exotic modules: the message just says less
        return None
    return None


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
            layer = _module_first_layer(self.module)
            raise ArtifactError("model.inputs is not set, and a PyTorch model does not record its input shape"
                                + (f"; {layer.describe()}" if layer else ""), hint=inputs_hint(layer),
                                exit_code=ExitCode.CONFIG)
        for t in inputs:
            t.shape = [None, *t.shape[1:]]
        probe = self._run_checked({t.name: np.zeros([2] + [d or 8 for d in t.shape[1:]], dtype=t.dtype)
                                   for t in inputs})
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

    def _run_checked(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``_run``, with a model that refuses the configured input shape reported against ``model.inputs``."""
        try:
            return self._run(inputs)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:  # torch: shape/dtype mismatches
            raise self._shape_error(e, inputs) from e

    def _shape_error(self, e: Exception, inputs: dict[str, np.ndarray]) -> ArtifactError:
        source = "model.inputs" if self.cfg.inputs else "model.image" if self.cfg.image else "model.sample_input"
        given = ", ".join(f"{name!r} shaped N×{'×'.join(map(str, v.shape[1:]))} {v.dtype}"
                          for name, v in inputs.items())
        layer = _module_first_layer(self.module)
        return ArtifactError(f"model.inputs: the model cannot run on input {given} (from {source}): "
                             f"{_torch_reason(e)}" + (f"; {layer.describe()}" if layer else ""),
                             hint=inputs_hint(layer, drop_image=self.cfg.image is not None),
                             exit_code=ExitCode.CONFIG)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._run_checked(inputs), strict=True))

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


def _torch_reason(e: Exception) -> str:
    """The line that says what failed (TorchScript wraps it in an interpreter traceback)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    named = [line for line in lines if line.startswith(("RuntimeError:", "ValueError:", "TypeError:"))]
    return (named[-1].split(": ", 1)[1] if named else lines[-1] if lines else type(e).__name__)[:300]


def inputs_hint(layer: FirstLayer | None, *, drop_image: bool = False) -> str:
    """What to write in mldeploy.yaml, from the first layer when it tells."""
    shape = layer.row_shape if layer else None
    tail = " and remove model.image" if drop_image else ""
    if shape and None not in shape:
        dims = ", ".join(map(str, shape))
        return f"set model.inputs: [{{name: input, dtype: float32, shape: [null, {dims}]}}] in mldeploy.yaml{tail}"
    if shape and len(shape) == 3:
        return (f"an image model: set model.image: {{channels: {shape[0]}, width: W, height: H}} (the size it was "
                f"trained on), or model.inputs: [{{name: input, shape: [null, {shape[0]}, H, W]}}]")
    return ("set model.inputs in mldeploy.yaml to the input of one request row after the batch axis, e.g. "
            f"[{{name: input, dtype: float32, shape: [null, 13]}}] (tabular) or [null, 3, 224, 224] (images){tail}")


class TorchScriptHandler(TorchHandler):
    format = "torchscript"


HANDLERS = {"torch": TorchHandler, "torchscript": TorchScriptHandler}
