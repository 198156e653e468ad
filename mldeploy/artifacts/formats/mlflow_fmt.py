"""MLflow model folders (an ``MLmodel`` file): package the model inside, without importing mlflow.

``MLmodel`` is YAML. Its flavor configuration names the model file (``sklearn.pickled_model``, ``onnx.data``,
``xgboost.data``, ``lightgbm.data``, ``catboost.data``, ``pytorch.model_data``), which is then handled like the
same file given directly (format told by content). The ``signature.inputs`` (a JSON list of ``{name, type}``
columns or one ``tensor-spec``) becomes the input schema (unless ``model.inputs`` is set) and its column names
the model's feature names (after the inner model's own, e.g. ``feature_names_in_``; ``model.feature_names``
overrides both, see ``mldeploy.artifacts.features``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import detect_format
from mldeploy.artifacts.formats.base import Handler, Served, Signature
from mldeploy.errors import ArtifactError

# flavors we package, by preference when a folder has several (all have python_function too)
SUPPORTED = ("onnx", "xgboost", "lightgbm", "catboost", "sklearn", "pytorch")
NOT_YET = {"transformers": "Hugging Face transformers", "tensorflow": "TensorFlow", "keras": "Keras",
           "pyfunc": "custom pyfunc"}
_COLUMN_TYPES = {"double", "float", "long", "integer", "boolean"}
_TENSOR_DTYPES = {"float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"}


@dataclass
class MLmodel:
    """The parts of an ``MLmodel`` file that mldeploy uses."""

    folder: Path
    flavor: str
    config: dict[str, Any]
    inputs: list[dict[str, Any]] | None = None
    mlflow_version: str | None = None
    flavors: list[str] = field(default_factory=list)

    @property
    def model_file(self) -> Path:
        """The file (or folder) holding the model, as the flavor configuration names it."""
        key = {"sklearn": "pickled_model", "pytorch": "model_data"}.get(self.flavor, "data")
        name = self.config.get(key)
        if not isinstance(name, str) or not name:
            raise ArtifactError(f"{self.folder / 'MLmodel'}: flavor {self.flavor!r} has no {key!r} entry naming "
                                "the model file", hint="re-save the model with mlflow.<flavor>.save_model")
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise ArtifactError(f"{self.folder / 'MLmodel'}: {self.flavor}.{key} points outside the folder ({name})")
        if self.flavor == "pytorch" and path.is_dir():  # model_data: data → data/model.pth
            candidates = sorted(p for p in path.iterdir() if p.suffix in (".pth", ".pt"))
            if not candidates:
                raise ArtifactError(f"{path} holds no model.pth", hint="save with mlflow.pytorch.save_model")
            path = candidates[0]
        if not path.exists():
            raise ArtifactError(f"{path} (named by {self.flavor}.{key} in MLmodel) does not exist",
                                hint="copy the whole MLflow model folder")
        return path


def read_mlmodel(folder: Path) -> MLmodel:
    """Parse ``folder/MLmodel`` (YAML) and pick the flavor mldeploy packages."""
    import yaml

    path = folder / "MLmodel"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ArtifactError(f"{path} cannot be read as YAML: {e}", hint="re-save the model with MLflow") from e
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        raise ArtifactError(f"{path} lists no flavors", hint="re-save the model with mlflow.<flavor>.save_model")
    names = [f for f in flavors if f != "python_function"]
    flavor = next((f for f in SUPPORTED if f in flavors), None)
    if flavor is None:
        known = next((NOT_YET[f] for f in names if f in NOT_YET), None)
        if known or not names:
            what = known or f"a custom pyfunc ({flavors.get('python_function', {}).get('loader_module')})"
            raise ArtifactError(f"{folder} is an MLflow {what} model; mldeploy does not package that flavor yet",
                                hint=f"supported flavors: {', '.join(SUPPORTED)}; export the model to ONNX and "
                                "point model.path at the .onnx file (or log it with mlflow.onnx)")
        raise ArtifactError(f"{folder}: MLflow flavor {', '.join(names)} is not supported",
                            hint=f"supported flavors: {', '.join(SUPPORTED)}")
    inputs = None
    sig = doc.get("signature")
    if isinstance(sig, dict) and sig.get("inputs"):
        try:
            inputs = json.loads(sig["inputs"]) if isinstance(sig["inputs"], str) else sig["inputs"]
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{path}: signature.inputs is not JSON: {e}") from e
    return MLmodel(folder=folder, flavor=flavor, config=dict(flavors[flavor] or {}), inputs=inputs,
                   mlflow_version=doc.get("mlflow_version"), flavors=names)


def signature_inputs(spec: list[dict[str, Any]] | None, where: str) -> tuple[list[dict[str, Any]], list[str] | None]:
    """MLmodel ``signature.inputs`` → (``model.inputs`` entries, feature names) — columns become one float32
    ``input`` of width ``len(columns)``; a tensor spec keeps its dtype and shape (``-1`` → dynamic)."""
    if not spec:
        return [], None
    if all(s.get("type") == "tensor" for s in spec):
        out = []
        for i, s in enumerate(spec):
            ts = s.get("tensor-spec") or {}
            dtype = str(ts.get("dtype", "float32"))
            if dtype not in _TENSOR_DTYPES:
                raise ArtifactError(f"{where}: signature input dtype {dtype!r} is not supported yet")
            shape = [None if d in (-1, None) else int(d) for d in ts.get("shape", [-1])]
            out.append({"name": s.get("name") or ("input" if len(spec) == 1 else f"input_{i}"), "dtype": dtype,
                        "shape": [None, *shape[1:]]})
        return out, None
    bad = [f"{s.get('name')} ({s.get('type')})" for s in spec if s.get("type") not in _COLUMN_TYPES]
    if bad:
        raise ArtifactError(f"{where}: signature columns {', '.join(bad)} are not numeric; text and other column "
                            "types are not supported yet", hint="log the model with numeric inputs only")
    names = [str(s.get("name", f"f{i}")) for i, s in enumerate(spec)]
    return [{"name": "input", "dtype": "float32", "shape": [None, len(spec)]}], names


class MlflowHandler(Handler):
    """Delegates to the handler of the model file inside the folder (sklearn, ONNX, XGBoost, … PyTorch)."""

    format = "mlflow"
    native_format = "mlflow"

    def load(self) -> None:
        from mldeploy.artifacts.formats import handler_for
        from mldeploy.config.schema import TensorSpec

        self.mlmodel = mlm = read_mlmodel(self.path)
        inner_path = mlm.model_file
        inner_fmt = detect_format(inner_path)
        if inner_fmt in ("mlflow", "keras"):
            raise ArtifactError(f"{inner_path}: unexpected {inner_fmt} content inside an MLflow folder")
        inputs, self.signature_names = signature_inputs(mlm.inputs, str(self.path / "MLmodel"))
        updates: dict[str, Any] = {}
        if inputs and not self.cfg.inputs and inner_fmt != "onnx":  # an ONNX graph names its own inputs
            updates["inputs"] = [TensorSpec(**t) for t in inputs]
        cfg = self.cfg.model_copy(update=updates) if updates else self.cfg
        inner = handler_for(inner_fmt)(inner_path, cfg, self.root)
        inner.load()
        self.inner = inner.specialized()
        self.native_format = self.inner.native_format
        self.can_convert_to = self.inner.can_convert_to
        self.trusted_types = self.inner.trusted_types
        self.notes = self.inner.notes

    def signature(self) -> Signature:
        return self.inner.signature()

    def model_feature_names(self) -> list[str] | None:
        """The inner model's own names (they fix the column positions), else the signature's column names."""
        own = self.inner.model_feature_names()
        sig = self.signature_names
        if own and sig and own != sig:
            self.notes.append(f"the MLmodel signature names the columns {sig} but the model was fitted on {own}: "
                              "records use the model's names")
        return own or sig

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.predict(inputs)

    def write_native(self, out_dir: Path) -> Served:
        return self.inner.write_native(out_dir)

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        return self.inner.convert(target, out_dir, sig)

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.run_served(served, folder, inputs)

    def framework_versions(self) -> dict[str, str]:
        out = dict(self.inner.framework_versions())
        out["mlflow_flavor"] = self.mlmodel.flavor
        if self.mlmodel.mlflow_version:
            out["mlflow"] = str(self.mlmodel.mlflow_version)
        return out

    def requirements(self, served_format: str) -> list[str]:
        return self.inner.requirements(served_format)


HANDLERS = {"mlflow": MlflowHandler}
