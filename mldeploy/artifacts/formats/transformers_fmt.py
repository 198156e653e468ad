"""Hugging Face transformers folders (``save_pretrained``: config.json, weights, tokenizer files).

Sequence classification (``*ForSequenceClassification``: logits, labels from ``id2label``) and feature extraction
(a base model such as ``BertModel``: the attention-masked mean of the last hidden state, one vector per text).
Exported with torch.onnx (dynamic batch and sequence axes) into a folder with the fast tokenizer's
``tokenizer.json`` and ``text.json``; the server runs it with onnxruntime + the ``tokenizers`` library
(``runtime.loaders.transformers_onnx``), never torch or transformers. The parity check runs the original pipeline
(transformers tokenizer + PyTorch model) against the served one (``tokenizers`` + ONNX) on the same texts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mldeploy.artifacts.detect import missing_framework
from mldeploy.artifacts.formats.base import Handler, Served, Signature, pinned, version_of
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor

SERVED = "transformers-onnx"
FOLDER = "transformer"  # the served folder inside the artifact
TEXT_INPUT = "text"
_BATCH = 16
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer")  # positions offset by padding_idx + 1


def task_of(config: dict[str, Any]) -> str | None:
    """``classification`` / ``feature-extraction`` from ``architectures`` (None: a head mldeploy does not serve)."""
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    if arch.endswith("ForSequenceClassification"):
        return "classification"
    if arch.endswith("Model") and "For" not in arch or not arch:
        return "feature-extraction"
    return None


def describe(config: dict[str, Any]) -> str:
    """``init``'s note for a transformers folder (from config.json only; nothing imported)."""
    archs = config.get("architectures") or [config.get("model_type", "?")]
    task = task_of(config)
    if task is None:
        return (f"a Hugging Face transformers folder ({archs[0]}): only sequence classification and base models "
                "(embeddings) are served")
    what = f"{len(config.get('id2label') or {})} labels" if task == "classification" else "embeddings"
    return (f"a Hugging Face transformers folder ({archs[0]}, {what}): exported to ONNX and served with its "
            "tokenizer (onnxruntime + tokenizers in the image; no torch or transformers)")


def _transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise missing_framework("Hugging Face transformers", e.name or "transformers", "text") from e
    return transformers


class TransformersHandler(Handler):
    format = "transformers"
    native_format = SERVED  # the folder itself is never served: torch/transformers stay out of the image
    can_convert_to = ()

    def load(self) -> None:
        tf = _transformers()
        import torch

        self.torch = torch
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        tf.utils.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
        try:
            self.config = tf.AutoConfig.from_pretrained(self.path, local_files_only=True)
        except Exception as e:  # transformers raises OSError/ValueError/KeyError for unknown or broken configs
            raise ArtifactError(f"{self.path}/config.json cannot be read by transformers {tf.__version__}: "
                                f"{str(e).splitlines()[0][:300]}", hint="re-save with save_pretrained") from e
        self.task = task_of(self.config.to_dict())
        if self.task is None:
            raise ArtifactError(f"{self.path} is a {self.config.architectures[0]}; mldeploy serves sequence "
                                "classification (…ForSequenceClassification) and base models (embeddings)",
                                hint="save the base model (AutoModel) or a sequence-classification head")
        auto = tf.AutoModelForSequenceClassification if self.task == "classification" else tf.AutoModel
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = auto.from_pretrained(self.path, local_files_only=True, attn_implementation="eager")
            self.tokenizer = tf.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except Exception as e:  # missing/corrupt weights or tokenizer files
            raise ArtifactError(f"{self.path}: cannot load the model or its tokenizer: {type(e).__name__}: "
                                f"{str(e).splitlines()[0][:300]}",
                                hint="the folder needs the files save_pretrained writes for the model and the "
                                "tokenizer (tokenizer.json, or vocab files a fast tokenizer can be built from)") from e
        if not getattr(self.tokenizer, "is_fast", False) or not hasattr(self.tokenizer, "backend_tokenizer"):
            raise ArtifactError(f"{self.path}: the tokenizer has no fast (Rust tokenizers) version, which the server "
                                "runs", hint="save a fast tokenizer (tokenizer.json) with the model")
        self.model.eval()
        self.max_length = self._max_length()

    def _max_length(self) -> int:
        """Tokens per text: the position embeddings (less the padding offset of RoBERTa-style models), or the
        tokenizer's ``model_max_length`` when smaller."""
        cfg = self.config
        limit = int(getattr(cfg, "max_position_embeddings", 0) or 512)
        if cfg.model_type in _ROBERTA_LIKE:
            limit -= int(getattr(cfg, "pad_token_id", 1) or 1) + 1
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return min(limit, int(tok_max)) if isinstance(tok_max, int) and 0 < tok_max < limit else limit

    def signature(self) -> Signature:
        inputs = [Tensor(name=TEXT_INPUT, dtype="string", shape=[None])]
        cfg = self.config
        if self.task == "classification":
            n = int(cfg.num_labels)
            outputs = [Tensor(name="logits", dtype="float32", shape=[None, n], role="logits")]
            id2label = {int(k): str(v) for k, v in (cfg.id2label or {}).items()}
            labels = self.cfg.class_labels or [id2label.get(i, str(i)) for i in range(n)]
            return Signature(inputs, outputs, "classification", labels)
        outputs = [Tensor(name="embedding", dtype="float32", shape=[None, int(cfg.hidden_size)], role="prediction")]
        return Signature(inputs, outputs, "feature-extraction")

    @property
    def graph_inputs(self) -> list[str]:
        """input_ids, attention_mask (padding; pooling) and token_type_ids when the tokenizer makes them."""
        names = ["input_ids", "attention_mask", "token_type_ids"]
        return [n for n in names if n != "token_type_ids" or n in self.tokenizer.model_input_names]

    def _wrapper(self) -> Any:
        torch, model, task = self.torch, self.model, self.task
        names = self.graph_inputs

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args: Any) -> Any:
                kw = dict(zip(names, args, strict=True))
                if task == "classification":
                    return self.model(**kw).logits
                hidden = self.model(**kw).last_hidden_state
                mask = kw["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        return Wrapper().eval()

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The original pipeline: the transformers tokenizer (padding per batch, truncation) + the PyTorch model."""
        texts = [str(t) for t in np.asarray(inputs[TEXT_INPUT]).reshape(-1).tolist()]
        wrapper, names = self._wrapper(), self.graph_inputs
        parts = []
        with self.torch.inference_mode():
            for i in range(0, len(texts), _BATCH):
                enc = self.tokenizer(texts[i:i + _BATCH], padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
                parts.append(wrapper(*(enc[n] for n in names)).float().numpy())
        name = "logits" if self.task == "classification" else "embedding"
        return {name: np.concatenate(parts)}

    def write_native(self, out_dir: Path) -> Served:
        return self.convert("onnx", out_dir, self.signature())

    def convert(self, target: str, out_dir: Path, sig: Signature) -> Served:
        if target != "onnx":
            return super().convert(target, out_dir, sig)
        from runtime.text import ONNX_FILE, TOKENIZER_FILE, TextConfig

        folder = out_dir / FOLDER
        folder.mkdir()
        names = self.graph_inputs
        enc = self.tokenizer(["an example text", "a second, longer example text"], padding=True, return_tensors="pt")
        out_name = sig.outputs[0].name
        axes = {n: {0: "batch", 1: "sequence"} for n in names} | {out_name: {0: "batch"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning/deprecation chatter
            # dynamo=False: the TorchScript-based exporter needs no onnxscript
            self.torch.onnx.export(self._wrapper(), tuple(enc[n] for n in names), str(folder / ONNX_FILE),
                                   dynamo=False, input_names=names, output_names=[out_name], dynamic_axes=axes,
                                   opset_version=17)
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())  # a copy: the server sets these
        backend.no_padding()
        backend.no_truncation()
        backend.save(str(folder / TOKENIZER_FILE))
        pad_token = self.tokenizer.pad_token or "[PAD]"
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        TextConfig(max_length=self.max_length, inputs=names, pad_id=int(pad_id), pad_token=str(pad_token),
                   task="text-classification" if self.task == "classification" else "feature-extraction").save(folder)
        return Served(format=SERVED, file=FOLDER)

    def run_served(self, served: Served, folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The served pipeline exactly as the server runs it (runtime.loaders.transformers_onnx)."""
        from runtime.loaders.transformers_onnx import TextOnnxModel

        model = TextOnnxModel(folder / served.file, threads=1, text_input=TEXT_INPUT)
        texts = np.asarray(inputs[TEXT_INPUT], dtype=object).reshape(-1)
        parts = [model.predict({TEXT_INPUT: texts[i:i + _BATCH]}) for i in range(0, len(texts), _BATCH)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def framework_versions(self) -> dict[str, str]:
        out = {k: v for k in ("transformers", "tokenizers", "torch", "onnx", "onnxruntime") if (v := version_of(k))}
        out["max_length"] = str(self.max_length)
        return out

    def requirements(self, served_format: str) -> list[str]:
        return pinned("onnxruntime", "tokenizers") if served_format == SERVED else super().requirements(served_format)


HANDLERS = {"transformers": TransformersHandler}
