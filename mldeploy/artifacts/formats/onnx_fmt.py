"""ONNX: read the signature from the graph, run with onnxruntime, serve as is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mldeploy.artifacts.features import per_input_names
from mldeploy.artifacts.formats.base import Handler, Served, Signature, version_of
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(string)": "string",
}


def _shape(shape: list[object]) -> list[int | None]:
    dims: list[int | None] = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if dims:
        dims[0] = None  # batch axis is always dynamic for the server
    return dims


class OnnxRunner:
    """A thin onnxruntime session (also used to check converted models)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - a core dependency
            raise ArtifactError("onnxruntime is not installed", hint="pip install onnxruntime") from e
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for invalid graphs
            raise ArtifactError(f"{path} is not a valid ONNX model: {str(e).splitlines()[0][:300]}",
                                hint="re-export the model; check it with onnx.checker.check_model") from e

    def tensors(self) -> tuple[list[Tensor], list[Tensor]]:
        ins = [Tensor(name=i.name, dtype=_ORT_TYPES.get(i.type, "float32"), shape=_shape(i.shape))
               for i in self.session.get_inputs()]
        outs = [Tensor(name=o.name, dtype=_ORT_TYPES.get(o.type, "float32"), shape=_shape(o.shape))
                for o in self.session.get_outputs()]
        return ins, outs

    def run(self, inputs: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        n = min(len(v) for v in inputs.values())
        parts = [self.session.run(names, {k: v[i:i + batch] for k, v in inputs.items()}) for i in range(0, n, batch)]
        return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}


def infer_roles(outputs: list[Tensor], task: str, values: dict[str, np.ndarray] | None = None) -> str:
    """Give outputs roles (label/probabilities/logits/prediction) and return the task ('auto' resolved)."""
    for t in outputs:
        if t.role:
            continue
        v = values.get(t.name) if values else None
        if t.dtype in ("int64", "int32", "string") and len(t.shape) <= 2:
            t.role = "label"
        elif len(t.shape) == 2 and (t.shape[1] or (v.shape[1] if v is not None and v.ndim == 2 else 1)) > 1:
            if v is not None and v.size and np.all(v >= 0) and np.allclose(v.sum(axis=1), 1.0, atol=1e-3):
                t.role = "probabilities"
            else:
                t.role = "logits"
        else:
            t.role = "prediction"
    if task != "auto":
        return task
    if any(t.role in ("label", "probabilities", "logits") for t in outputs):
        return "classification"
    return "regression" if outputs else "other"


def metadata_names(value: str | None) -> list[str] | None:
    """``feature_names`` from ONNX metadata_props: a JSON list of strings, or names separated by commas."""
    if not value or not value.strip():
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        doc = [n.strip() for n in value.split(",")]
    if isinstance(doc, list) and doc and all(isinstance(n, str) and n for n in doc):
        return list(doc)
    return None


class OnnxHandler(Handler):
    format = "onnx"
    native_format = "onnx"

    def load(self) -> None:
        try:
            import onnx

            model = onnx.load(str(self.path), load_external_data=False)
            onnx.checker.check_model(model)
            self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
            self.metadata = {p.key: p.value for p in model.metadata_props}
        except ImportError:
            self.opset, self.metadata = None, {}
        except Exception as e:  # onnx raises DecodeError/ValidationError/… for corrupt files
            raise ArtifactError(f"{self.path} is not a valid ONNX model: {str(e).splitlines()[0][:300]}",
                                hint="re-export the model; the file may be truncated") from e
        self.runner = OnnxRunner(self.path)

    def signature(self) -> Signature:
        ins, outs = self.runner.tensors()
        if self.cfg.inputs:
            ins = [Tensor(**t.model_dump()) for t in self.cfg.inputs]
        return Signature(inputs=ins, outputs=outs, task=self.cfg.task, class_labels=self.cfg.class_labels,
                         feature_names=self.cfg.feature_names)

    def model_feature_names(self) -> list[str] | None:
        """The graph's input names when each input is one feature ([N] or [N, 1]); else the ``feature_names``
        metadata (a JSON list or comma-separated names) when it names every column of the one [N, k] input."""
        ins, _ = self.runner.tensors()
        if names := per_input_names(ins):
            return names
        names = metadata_names(self.metadata.get("feature_names"))
        if names and len(ins) == 1 and ins[0].shape[1:] == [len(names)]:
            return names
        if names:
            self.notes.append(f"the ONNX metadata feature_names lists {len(names)} names, which do not fit the "
                              f"graph's inputs ({', '.join(f'{t.name} {t.shape}' for t in ins)}): ignored")
        return None

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.run(inputs)

    def write_native(self, out_dir: Path) -> Served:
        shutil.copyfile(self.path, out_dir / "model.onnx")
        return Served(format="onnx", file="model.onnx")

    def framework_versions(self) -> dict[str, str]:
        out = {k: v for k in ("onnx", "onnxruntime") if (v := version_of(k))}
        if self.opset:
            out["opset"] = str(self.opset)
        return out


HANDLERS = {"onnx": OnnxHandler}
