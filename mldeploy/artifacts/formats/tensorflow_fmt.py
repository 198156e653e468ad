"""TensorFlow SavedModel: signature from ``serving_default``; ONNX via tf2onnx, or served natively."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import missing_framework
from mldeploy.artifacts.formats.base import Handler, Served, Signature, pinned, version_of
from mldeploy.artifacts.safe_copy import copy_tree
from mldeploy.errors import ArtifactError, ExitCode
from runtime.manifest import Tensor

_BATCH = 64


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise missing_framework("TensorFlow SavedModel", "tensorflow", "tensorflow") from e
    return tf


def _spec_tensor(name: str, spec: Any) -> Tensor:
    dims = [d if isinstance(d, int) else None for d in spec.shape.as_list()] if spec.shape.rank is not None else [None]
    dtype = "string" if spec.dtype.name == "string" else spec.dtype.name
    return Tensor(name=name, dtype=dtype, shape=[None, *dims[1:]] if dims else [None])


class SavedModelHandler(Handler):
    format = "savedmodel"
    native_format = "savedmodel"
    can_convert_to = ("onnx",)

    def load(self) -> None:
        tf = self.tf = _tf()
        try:
            self.model = tf.saved_model.load(str(self.path))
        except Exception as e:  # TF raises OSError/DecodeError/InvalidArgumentError for broken folders
            raise ArtifactError(f"{self.path} is not a loadable SavedModel: {type(e).__name__}: "
                                f"{str(e).splitlines()[0][:300]}", hint="re-export with model.export(path)") from e
        sigs = dict(self.model.signatures)
        if not sigs:
            raise ArtifactError(f"{self.path} has no serving signature",
                                hint="export with keras model.export(path) or tf.saved_model.save(..., signatures=)")
        self.sig_name = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
        self.fn = sigs[self.sig_name]
        self.input_names = sorted(self.fn.structured_input_signature[1])
        self.output_names = sorted(self.fn.structured_outputs)

    def signature(self) -> Signature:
        in_specs = self.fn.structured_input_signature[1]
        inputs = [_spec_tensor(n, in_specs[n]) for n in self.input_names]
        if self.cfg.inputs:
            inputs = [Tensor(**t.model_dump()) for t in self.cfg.inputs]
        outputs = [_spec_tensor(n, self.fn.structured_outputs[n]) for n in self.output_names]
        return Signature(inputs, outputs, self.cfg.task, self.cfg.class_labels, self.cfg.feature_names)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = min(len(v) for v in inputs.values())
        parts = [self.fn(**{k: self.tf.constant(v[i:i + _BATCH]) for k, v in inputs.items()})
                 for i in range(0, n, _BATCH)]
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in self.output_names}

    def write_native(self, out_dir: Path) -> Served:
        """Copy the SavedModel folder; a symlink in it out of the project folder (of the SavedModel folder when
        ``model.path`` lies outside the project), dangling or looping, is refused (exit 3)."""
        folder = self.path.resolve()
        root = self.root.resolve()
        inside = folder.is_relative_to(root)
        copy_tree(self.path, out_dir / "saved_model", root if inside else folder, lambda problem: ArtifactError(
            f"model.path: {self.path}: {problem}", hint="copy the file into the SavedModel folder instead of linking "
            "to it (the image gets what the link points to)", exit_code=ExitCode.CONFIG),
            within="the project folder" if inside else "the SavedModel folder")
        return Served(format="savedmodel", file="saved_model")

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        if target != "onnx":
            return super().convert(target, out_dir, sig)
        try:
            import tf2onnx
        except ImportError as e:
            raise missing_framework("TensorFlow SavedModel (for ONNX conversion)", "tf2onnx", "tensorflow") from e
        from tf2onnx import tf_loader

        self.tf.get_logger().setLevel("ERROR")
        # the SavedModel path (as tf2onnx's CLI does) freezes captured constants that from_function leaves as inputs
        graph, ins, outs, _tables, renames = tf_loader.from_saved_model(
            str(self.path), None, None, tag=["serve"], signatures=[self.sig_name], return_initialized_tables=True,
            return_tensors_to_rename=True)
        tf2onnx.convert.from_graph_def(graph, input_names=ins, output_names=outs, opset=17, tensors_to_rename=renames,
                                       output_path=str(out_dir / "model.onnx"))
        return Served(format="onnx", file="model.onnx")

    def framework_versions(self) -> dict[str, str]:
        return {k: v for k in ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "numpy")
                if (v := version_of(k))}

    def requirements(self, served_format: str) -> list[str]:
        if served_format == "savedmodel":
            return pinned("tensorflow-cpu") or pinned("tensorflow")
        return super().requirements(served_format)


HANDLERS = {"savedmodel": SavedModelHandler}
