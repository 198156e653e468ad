"""OpenAPI request/response schemas generated from the manifest's signature (shown at /docs)."""

from __future__ import annotations

from typing import Any

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


def request_body(m: Manifest) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = []
    if len(m.inputs) == 1:
        t = m.inputs[0]
        inputs.append({"title": "rows", **_nested(t.shape, _item_type(t.dtype))})
        if t.dtype == "string":  # text models also take one text
            inputs.append({"title": "text", "type": "string"})
        if m.feature_names:
            props = {f: _item_type(t.dtype) for f in m.feature_names}
            inputs.append({"title": "records", "type": "array",
                           "items": {"type": "object", "properties": props, "required": m.feature_names}})
            inputs.append({"title": "columns", "type": "object", "required": m.feature_names,
                           "properties": {f: {"type": "array", "items": _item_type(t.dtype)} for f in m.feature_names}})
    inputs.append({"title": "named tensors", "type": "object", "required": [t.name for t in m.inputs],
                   "properties": {t.name: _nested(t.shape, _item_type(t.dtype)) for t in m.inputs}})
    json_schema: dict[str, Any] = {"type": "object", "required": ["inputs"],
                                   "properties": {"inputs": {"oneOf": inputs}}}
    content: dict[str, Any] = {"application/json": {"schema": json_schema}}
    if m.sample_input and len(m.inputs) == 1 and m.inputs[0].name in m.sample_input and not m.image:
        content["application/json"]["example"] = {"inputs": m.sample_input[m.inputs[0].name][:2]}
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


def responses(m: Manifest) -> dict[str, Any]:
    pred_item: dict[str, Any] = {"type": "string", "enum": m.class_labels} if m.class_labels else {}
    if m.task == "feature-extraction":  # one embedding vector per text
        pred_item = {"type": "array", "items": {"type": "number"}}
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
                "content": {"application/json": {"schema": {"type": "object", "properties": props}},
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
