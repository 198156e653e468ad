"""Text inputs: checks for string inputs (``dtype: string`` in ``model.json``) and the tokenizer of text models.

Used only by models that have a string input, so numeric models never import it. The tokenizer is the Rust
``tokenizers`` library reading the model's ``tokenizer.json`` (no ``transformers`` in the image): each batch is
padded to its longest text and every text truncated to the model's maximum length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.inputs import InputError

if TYPE_CHECKING:
    from runtime.inputs import InputSpec

TEXT_CONFIG = "text.json"
TOKENIZER_FILE = "tokenizer.json"
ONNX_FILE = "model.onnx"

Check = Callable[[str, np.ndarray, list[str | int]], np.ndarray]


def check_categories(name: str, arr: np.ndarray, loc: list[str | int], allowed: frozenset[str],
                     listed: list[str]) -> None:
    """422 for the first value of a ``category`` input (``Tensor.categories``) that is none of them (None passes:
    whether null is accepted is the ``allow_missing`` check's)."""
    values = arr.tolist()
    bad = next((i for i, v in enumerate(values) if v is not None and v not in allowed), None)
    if bad is not None:
        raise InputError([*loc, bad], f"field {name!r}: {str(values[bad])[:100]!r} is not one of the categories the "
                                      f"model was trained on: {listed}")


def text_check(spec: InputSpec) -> Check:
    """``spec.check`` for a model with string inputs: a string or a list of strings per string input (422 names
    the first non-string, or a value outside a category input's ``categories``); other inputs keep the numeric
    checks."""
    numeric = type(spec).check.__get__(spec)
    categories = {t.name: (frozenset(t.categories), t.categories) for t in spec.tensors if t.categories is not None}

    def check(name: str, arr: np.ndarray, loc: list[str | int]) -> np.ndarray:
        if spec.dtypes[name].kind != "O":
            return numeric(name, arr, loc)
        if arr.ndim == 0:
            arr = arr[None]
        if arr.ndim != 1:
            raise InputError(loc, f"expected a string or a list of strings, got an array of shape {list(arr.shape)}")
        if arr.size == 0:
            raise InputError(loc, "empty input: send at least one text")
        if arr.dtype.kind != "U":
            bad = next((i for i, v in enumerate(arr.tolist()) if not isinstance(v, str)), None)
            if bad is not None:
                raise InputError([*loc, bad], f"must be a string, got {type(arr[bad]).__name__}")
        if name in categories:
            check_categories(name, arr, loc, *categories[name])
        return arr.astype(object)

    return check


@dataclass(frozen=True)
class TextConfig:
    """``text.json`` next to the tokenizer: how texts become the ONNX graph's inputs."""

    max_length: int  # tokens, special tokens included
    inputs: list[str]  # graph inputs, fed from the encoding: input_ids, attention_mask, token_type_ids
    pad_id: int = 0
    pad_token: str = "[PAD]"
    task: str = "text-classification"  # or feature-extraction (the graph returns pooled embeddings)

    @classmethod
    def load(cls, folder: Path) -> TextConfig:
        doc = json.loads((folder / TEXT_CONFIG).read_text(encoding="utf-8"))
        return cls(max_length=int(doc["max_length"]), inputs=list(doc["inputs"]), pad_id=int(doc.get("pad_id", 0)),
                   pad_token=str(doc.get("pad_token", "[PAD]")), task=str(doc.get("task", "text-classification")))

    def save(self, folder: Path) -> None:
        (folder / TEXT_CONFIG).write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")


_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


class TextEncoder:
    """Texts → int64 ``input_ids``/``attention_mask``/``token_type_ids``, padded per batch, truncated."""

    def __init__(self, folder: Path, config: TextConfig | None = None) -> None:
        from tokenizers import Tokenizer

        self.config = config or TextConfig.load(folder)
        unknown = [n for n in self.config.inputs if n not in _FIELDS]
        if unknown:
            raise ValueError(f"{folder / TEXT_CONFIG}: graph inputs {unknown} cannot be made by a tokenizer")
        tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        tok.enable_truncation(max_length=self.config.max_length)
        tok.enable_padding(pad_id=self.config.pad_id, pad_token=self.config.pad_token)  # to the batch's longest
        self.tokenizer = tok

    def encode(self, texts: np.ndarray | list[str]) -> dict[str, np.ndarray]:
        items = texts.tolist() if isinstance(texts, np.ndarray) else list(texts)
        encodings = self.tokenizer.encode_batch([t if type(t) is str else str(t) for t in items])
        return {name: np.asarray([getattr(e, _FIELDS[name]) for e in encodings], dtype=np.int64)
                for name in self.config.inputs}
