"""OpenAPI request/response schemas generated from the manifest's signature (shown at /docs)."""

from __future__ import annotations

from typing import Any

from runtime.inputs import record_kind
from runtime.manifest import Manifest

_JSON_TYPES = {"f": "number", "i": "integer", "u": "integer", "b": "boolean"}


def _item_type(dtype: str) -> dict[str, Any]:
    kind = "f" if dtype.startswith("float") else "i" if dtype.startswith("int") else "u" if dtype.startswith(
        "uint") else "b" if dtype == "bool" else "s"
    return {"type": _JSON_TYPES.get(kind, "string")}


def _nested(shape: list[int | None], item: dict[str, Any]) -> dict[str, Any]:
    schema = item
    for dim in reversed(shape):
        schema = {"type": "array", "items": schema}
        if dim not in (None, -1):
            schema["minItems"] = schema["maxItems"] = dim
    return schema


def record_schema(m: Manifest) -> dict[str, Any] | None:
    """One record: an object with exactly the model's features (any order), each a value of its input's type; None
    when the model takes no records (no feature names, or inputs that are not rows of features; runtime.inputs)."""
    names = m.feature_names
    kind = record_kind(names, m.inputs)
    if not names or kind is None:
        return None
    by_name = {t.name: t for t in m.inputs}
    types = dict.fromkeys(names, m.inputs[0].dtype) if kind == "row" else {n: by_name[n].dtype for n in names}
    nullable = {t.name for t in m.inputs if t.allow_missing} if kind == "per-input" else set()
    props = {n: {"type": [_item_type(d)["type"], "null"]} if n in nullable else _item_type(d) for n, d in types.items()}
    for t in m.inputs if kind == "per-input" else ():  # a category column: its categories (null where allowed)
        if t.categories is not None and t.name in props:
            props[t.name]["enum"] = [*t.categories, *([None] if t.name in nullable else [])]
    record: dict[str, Any] = {"type": "object", "properties": props,
                              "required": list(names), "additionalProperties": False}
    if m.sample_input and len(m.inputs) == 1 and m.inputs[0].name in m.sample_input:
        row = (m.sample_input[m.inputs[0].name] or [None])[0]
        if isinstance(row, list) and len(row) == len(names):
            record["example"] = dict(zip(names, row, strict=True))
    elif (examples := _per_input_records(m, 1)) is not None:
        record["example"] = examples[0]
    return record


def _per_input_records(m: Manifest, rows: int) -> list[dict[str, Any]] | None:
    """The first sample rows of a model with one input per feature (e.g. a DataFrame's columns) as records."""
    names, sample = m.feature_names or [], m.sample_input or {}
    if record_kind(names, m.inputs) != "per-input" or not all(isinstance(sample.get(n), list) for n in names):
        return None
    cols = {n: [v[0] if isinstance(v, list) and len(v) == 1 else v for v in sample[n][:rows]] for n in names}
    count = min(len(c) for c in cols.values())
    return [{n: cols[n][i] for n in names} for i in range(count)] or None


def request_body(m: Manifest) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = []
    record = record_schema(m)
    if len(m.inputs) == 1:
        t = m.inputs[0]
        inputs.append({"title": "rows", **_nested(t.shape, _item_type(t.dtype))})
        if t.dtype == "string":  # text models also take one text
            inputs.append({"title": "text", "type": "string"})
    if record is not None:
        inputs.append({"title": "records", "type": "array", "items": record,
                       "description": f"one object per row with the fields {m.feature_names} (any order)"})
        if len(m.inputs) == 1:
            t = m.inputs[0]
            inputs.append({"title": "columns", "type": "object", "required": m.feature_names,
                           "properties": {f: {"type": "array", "items": _item_type(t.dtype)} for f in m.feature_names}})
    inputs.append({"title": "named tensors", "type": "object", "required": [t.name for t in m.inputs],
                   "properties": {t.name: _nested(t.shape, _item_type(t.dtype)) for t in m.inputs}})
    json_schema: dict[str, Any] = {"type": "object", "required": ["inputs"],
                                   "properties": {"inputs": {"oneOf": inputs}}}
    content: dict[str, Any] = {"application/json": {"schema": json_schema}}
    if m.sample_input and len(m.inputs) == 1 and m.inputs[0].name in m.sample_input and not m.image:
        content["application/json"]["example"] = {"inputs": m.sample_input[m.inputs[0].name][:2]}
    elif (examples := _per_input_records(m, 2)) is not None:
        content["application/json"]["example"] = {"inputs": examples}
    if len(m.inputs) == 1:
        content["application/x-npy"] = {"schema": {"type": "string", "format": "binary",
                                                   "description": "numpy .npy array (np.save), batch axis first"}}
        content["application/octet-stream"] = {"schema": {
            "type": "string", "format": "binary",
            "description": "raw C-order tensor bytes; headers X-Tensor-Shape (e.g. 1,3,224,224) and X-Tensor-Dtype"}}
    if m.image:
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                     "description": f"JPEG/PNG, resized to {m.image.width}x{m.image.height}"}}}}
        content["image/jpeg"] = content["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    return {"required": True, "content": content}


def prediction_item(m: Manifest) -> dict[str, Any]:
    """One entry of ``predictions`` as runtime.formatting answers it: a class label (``class_labels``) for a
    classifier, else the label / prediction output's values typed by its dtype and shape."""
    if m.task == "feature-extraction":  # one embedding vector per text
        return {"type": "array", "items": {"type": "number"}}
    roles = {o.role: o for o in m.outputs if o.role}
    label, scores = roles.get("label"), roles.get("probabilities") or roles.get("logits")
    pred = roles.get("prediction") or (m.outputs[0] if m.outputs and not roles else None)
    if m.class_labels and (scores is not None or (label is not None and label.dtype.startswith(("int", "uint")))):
        return {"type": "string", "enum": m.class_labels}  # the label of the top score / of the class index
    if label is not None:
        return _nested(label.shape[1:], _item_type(label.dtype))  # the model's own labels
    if scores is not None:
        return {"type": "integer", "minimum": 0}  # the index of the top score
    if pred is not None:
        return _nested(pred.shape[1:], _item_type(pred.dtype))
    return {}


def responses(m: Manifest) -> dict[str, Any]:
    pred_item = prediction_item(m)
    props: dict[str, Any] = {
        "request_id": {"type": "string"},
        "model": {"type": "string", "example": m.name},
        "version": {"type": "string", "example": m.version},
        "predictions": {"type": "array", "items": pred_item},
    }
    if any(o.role in ("probabilities", "logits") for o in m.outputs):
        props["probabilities"] = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
        props["top_k"] = {"type": "array", "items": {"type": "array", "items": {
            "type": "object", "properties": {"label": {"type": "string"}, "score": {"type": "number"}}}}}
    err = {"content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {}}}}}}
    return {
        "200": {"description": "Predictions, one per input row",
                "content": {"application/json": {"schema": {"type": "object", "properties": props,
                                                            "required": ["model", "version", "predictions"]}},
                            "application/x-npy": {"schema": {"type": "string", "format": "binary"}}}},
        "401": {"description": "Missing or invalid credentials", **err},
        "404": {"description": "Unknown model name or version", **err},
        "413": {"description": "Body over max_body_bytes, or more rows / image pixels / answer bytes than allowed",
                **err},
        "415": {"description": "Content-Type not accepted by this model", **err},
        "422": {"description": "Malformed input; detail names the field", **err},
        "429": {"description": "Rate limit exceeded (see X-RateLimit-* and Retry-After)", **err},
        "503": {"description": "Queue full or not ready (Retry-After)", **err},
        "504": {"description": "Request timed out", **err},
    }
