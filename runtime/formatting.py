"""Model outputs → the response fields: predictions (class labels for classifiers), probabilities, top-k."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.manifest import Manifest


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class OutputFormatter:
    def __init__(self, manifest: Manifest, top_k: int) -> None:
        self.labels = manifest.class_labels
        self.top_k = top_k
        roles = {o.role: o.name for o in manifest.outputs if o.role}
        self.label_out = roles.get("label")
        self.proba_out = roles.get("probabilities")
        self.logits_out = roles.get("logits")
        self.pred_out = roles.get("prediction") or (manifest.outputs[0].name if not roles else None)
        used = {self.label_out, self.proba_out, self.logits_out, self.pred_out}
        self.other = [o.name for o in manifest.outputs if o.name not in used]
        self._labels_arr = np.asarray(self.labels, dtype=object) if self.labels else None

    def probabilities(self, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
        if self.proba_out and self.proba_out in outputs:
            return np.asarray(outputs[self.proba_out], dtype=np.float32)
        if self.logits_out and self.logits_out in outputs:
            return softmax(np.asarray(outputs[self.logits_out], dtype=np.float32))
        return None

    def primary(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The array returned to ``Accept: application/x-npy`` clients."""
        proba = self.probabilities(outputs)
        if proba is not None:
            return proba
        return np.asarray(outputs[self.pred_out or self.label_out or next(iter(outputs))])

    def format(self, outputs: dict[str, np.ndarray], top_k: int | None = None) -> tuple[dict[str, Any], Any]:
        """Returns (response fields, top-1 confidences or None)."""
        body: dict[str, Any] = {}
        proba = self.probabilities(outputs)
        if self.label_out and self.label_out in outputs:
            labels = np.asarray(outputs[self.label_out]).reshape(-1)
            if self._labels_arr is not None and labels.dtype.kind in "iu" and proba is None:
                labels = self._labels_arr[np.clip(labels, 0, len(self._labels_arr) - 1)]
            elif self._labels_arr is not None and proba is not None and proba.shape[-1] == len(self._labels_arr):
                labels = self._labels_arr[proba.argmax(axis=-1)]
            body["predictions"] = labels.tolist()
        elif proba is not None:
            idx = proba.argmax(axis=-1)
            body["predictions"] = (self._labels_arr[idx] if self._labels_arr is not None else idx).tolist()
        elif self.pred_out and self.pred_out in outputs:
            body["predictions"] = outputs[self.pred_out]
        confidence = None
        if proba is not None:
            body["probabilities"] = proba
            confidence = proba.max(axis=-1)
            k = min(top_k or self.top_k, proba.shape[-1])
            if k > 1:
                order = np.argsort(-proba, axis=-1)[:, :k]
                names = self.labels or [str(i) for i in range(proba.shape[-1])]
                body["top_k"] = [
                    [{"label": names[j], "score": float(row[j])} for j in idx]
                    for row, idx in zip(proba, order, strict=True)
                ]
        if self.other:
            body["outputs"] = {n: outputs[n] for n in self.other if n in outputs}
        return body, confidence
