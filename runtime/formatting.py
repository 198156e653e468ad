"""Model outputs → the response fields: predictions (class labels for classifiers), probabilities, top-k."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.manifest import Manifest

_LIST_ROWS = 8  # answers of up to this many rows of at most _LIST_CLASSES classes are built on Python lists
_LIST_CLASSES = 16


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
        self._numbered: dict[int, list[str]] = {}

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
        """Returns (response fields, top-1 confidence per row as a list of floats, or None)."""
        proba = self.probabilities(outputs)
        if proba is not None and proba.ndim == 2 and len(proba) <= _LIST_ROWS and 0 < proba.shape[-1] <= _LIST_CLASSES:
            done = (self._format_row(outputs, proba, proba.tolist()[0], top_k) if len(proba) == 1
                    else self._format_rows(outputs, proba, top_k))
            if done is not None:
                return done
        body: dict[str, Any] = {}
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
            k = min(top_k or self.top_k, proba.shape[-1])
            confidence = proba.max(axis=-1).tolist()
            if k > 1:
                order = np.argsort(-proba, axis=-1)[:, :k]
                names = self.labels or [str(i) for i in range(proba.shape[-1])]
                body["top_k"] = [
                    [{"label": names[j], "score": float(row[j])} for j in idx]
                    for row, idx in zip(proba, order, strict=True)
                ]
        return self._rest(body, outputs), confidence

    def _format_rows(self, outputs: dict[str, np.ndarray], proba: np.ndarray,
                     top_k: int | None) -> tuple[dict[str, Any], list[float]] | None:
        """``format`` for a few rows of a few classes on Python lists, which beat numpy's per-call overhead there
        (same answer: float32 → float is exact, ``list.index(max)`` is argmax's first maximum, ``sorted`` is stable
        as numpy's insertion sort below 17 values); None when a row holds NaN (numpy's argmax semantics apply)."""
        rows = proba.tolist()
        if len(rows) == 1:
            return self._format_row(outputs, proba, rows[0], top_k)
        confidence = [max(row) for row in rows]
        if any(c != c for c in confidence):
            return None
        best = [row.index(c) for row, c in zip(rows, confidence, strict=True)]
        labels = self.labels
        body: dict[str, Any] = {}
        if self.label_out and self.label_out in outputs:
            if labels and proba.shape[-1] == len(labels):
                body["predictions"] = [labels[i] for i in best]
            else:
                body["predictions"] = np.asarray(outputs[self.label_out]).reshape(-1).tolist()
        else:
            body["predictions"] = [labels[i] for i in best] if labels else best
        body["probabilities"] = proba
        k = min(top_k or self.top_k, proba.shape[-1])
        if k > 1:
            names = labels or [str(i) for i in range(proba.shape[-1])]
            body["top_k"] = [
                [{"label": names[j], "score": row[j]} for j in sorted(range(len(row)), key=row.__getitem__,
                                                                     reverse=True)[:k]]
                for row in rows
            ]
        return self._rest(body, outputs), confidence

    def _format_row(self, outputs: dict[str, np.ndarray], proba: np.ndarray, row: list[float],
                    top_k: int | None) -> tuple[dict[str, Any], list[float]] | None:
        """``_format_rows`` of one row (the common request), without its comprehensions: the same answer."""
        c = max(row)
        if c != c:
            return None
        labels = self.labels
        n = len(row)
        if self.label_out and self.label_out in outputs:
            if labels and n == len(labels):
                body: dict[str, Any] = {"predictions": [labels[row.index(c)]]}
            else:
                body = {"predictions": np.asarray(outputs[self.label_out]).reshape(-1).tolist()}
        else:
            body = {"predictions": [labels[row.index(c)] if labels else row.index(c)]}
        body["probabilities"] = proba
        k = min(top_k or self.top_k, n)
        if k > 1:
            names = self._names(n)
            body["top_k"] = [[{"label": names[j], "score": row[j]}
                              for j in sorted(range(n), key=row.__getitem__, reverse=True)[:k]]]
        return (self._rest(body, outputs) if self.other else body), [c]

    def _names(self, n: int) -> list[str]:
        """The class names of ``n`` probabilities: the labels, else "0" … "n-1" (built once per width)."""
        if self.labels:
            return self.labels
        names = self._numbered.get(n)
        if names is None:
            names = self._numbered[n] = [str(i) for i in range(n)]
        return names

    def _rest(self, body: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.other:
            body["outputs"] = {n: outputs[n] for n in self.other if n in outputs}
        return body
