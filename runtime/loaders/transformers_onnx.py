"""Hugging Face text models exported to ONNX, with their tokenizer: strings in, logits or embeddings out.

The served folder (``model.json`` ``file``) holds ``model.onnx`` (dynamic batch and sequence axes),
``tokenizer.json`` (run by the ``tokenizers`` library) and ``text.json`` (maximum length, graph inputs, padding).
Tokenization happens per batch, in the inference thread, so requests batched together are padded together.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime.loaders.base import ModelLoadError
from runtime.manifest import Manifest
from runtime.text import ONNX_FILE, TextConfig, TextEncoder


def folder_sha256(path: Path) -> str:
    """The folder hash ``mldeploy package`` records (sorted ``relpath\\0content\\0``; mldeploy.artifacts.hashing)."""
    h = hashlib.sha256()
    for f in sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


class TextOnnxModel:
    """Tokenize a batch of texts, run the graph; thread-safe (tokenizer settings are fixed at load)."""

    def __init__(self, folder: Path, threads: int, text_input: str, output_names: list[str] | None = None) -> None:
        self.encoder = TextEncoder(folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        have = {i.name for i in self.session.get_inputs()}
        if have != set(self.encoder.config.inputs):
            raise ModelLoadError(f"{folder / ONNX_FILE}: graph inputs {sorted(have)} differ from text.json inputs "
                                 f"{sorted(self.encoder.config.inputs)}")
        self.output_names = output_names or [o.name for o in self.session.get_outputs()]
        self.text_input = text_input

    @property
    def config(self) -> TextConfig:
        return self.encoder.config

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.encoder.encode(inputs[self.text_input])
        values = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, values, strict=True))


def load(manifest: Manifest, path: Path, threads: int) -> TextOnnxModel:
    if not path.is_dir():
        raise ModelLoadError(f"{path}: a transformers-onnx model is a folder (model.onnx, tokenizer.json, text.json)")
    actual = folder_sha256(path)
    if actual != manifest.sha256:
        raise ModelLoadError(f"{path}: sha256 {actual[:12]}… does not match model.json ({manifest.sha256[:12]}…)")
    texts = [t.name for t in manifest.inputs if t.dtype == "string"]
    if len(texts) != 1 or len(manifest.inputs) != 1:
        raise ModelLoadError(f"{path}: model.json must list one string input, not {[t.name for t in manifest.inputs]}")
    try:
        model = TextOnnxModel(path, threads, texts[0], [t.name for t in manifest.outputs])
    except ModelLoadError:
        raise
    except Exception as e:  # onnxruntime/tokenizers raise their own untyped exceptions
        raise ModelLoadError(f"{path}: cannot load the text model: {type(e).__name__}: {e}") from None
    outs = {o.name for o in model.session.get_outputs()}
    missing = [n for n in model.output_names if n not in outs]
    if missing:
        raise ModelLoadError(f"{path}: model.json outputs {missing} are not outputs of the model ({sorted(outs)})")
    return model
