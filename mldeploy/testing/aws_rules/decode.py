"""Decoding botocore's serialized request dict back into the caller's parameters (json, cbor, query, ec2, s3)."""

from __future__ import annotations

import io
import json
import re
from typing import Any
from urllib.parse import urlsplit

from mldeploy.testing.aws_rules.core import Params


def request_params(model: Any, request: Any) -> Params:
    """The caller's parameters, decoded from botocore's serialized request dict (json, cbor, query, ec2)."""
    body = request.get("body") if isinstance(request, dict) else None
    protocol = model.service_model.resolved_protocol if hasattr(model.service_model, "resolved_protocol") \
        else model.service_model.protocol
    if protocol == "rest-xml" and model.service_model.service_name == "s3" and isinstance(request, dict):
        return _s3_params(request, model.name)
    if isinstance(body, dict):  # query / ec2: the flattened form
        if model.input_shape is None:
            return {}
        return _unflatten(model.input_shape, body, "", protocol == "ec2", set(body)) or {}
    if not body:
        return {}
    if isinstance(body, str):
        body = body.encode()
    if protocol in ("rest-xml", "rest-json") or body.lstrip()[:1] == b"<":
        return {}  # Route 53 (XML) and REST bodies: no rule reads them (the URI carries their ids)
    if protocol == "smithy-rpc-v2-cbor" or body[:1] not in (b"{", b"["):
        from botocore.parsers import RpcV2CBORParser

        return RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))  # type: ignore[no-any-return]
    return json.loads(body)  # type: ignore[no-any-return]


def _s3_params(request: dict[str, Any], op: str = "") -> Params:
    """S3 (REST-XML): the bucket and key from the request path (path-style addressing, as against a local endpoint),
    the CreateBucket LocationConstraint from the XML body and PutBucketPolicy's policy (the body): what the S3 rules
    read."""
    from urllib.parse import unquote

    out: Params = {}
    # botocore's endpoint rules render the bucket into "url"; "auth_path" keeps it as "/<bucket>/<key>"
    path = str(request.get("auth_path") or urlsplit(str(request.get("url") or "")).path)
    bucket, _, key = path.split("?", 1)[0].lstrip("/").partition("/")
    if bucket:
        out["Bucket"] = unquote(bucket)
    if key:
        out["Key"] = unquote(key)
    body = request.get("body") or b""
    if op == "PutBucketPolicy":
        out["Policy"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if m := re.search(r"<LocationConstraint>([^<]*)</LocationConstraint>", text):
        out["CreateBucketConfiguration"] = {"LocationConstraint": m.group(1)}
    return out


def _has(keys: set[str], prefix: str) -> bool:
    return prefix in keys or any(k.startswith(prefix + ".") for k in keys)


def _unflatten(shape: Any, flat: dict[str, Any], prefix: str, ec2: bool, keys: set[str]) -> Any:
    """Invert botocore's Query/EC2 serializers for ``shape`` at ``prefix`` (None when absent)."""
    kind = shape.type_name
    if prefix and not _has(keys, prefix):
        return None
    if kind == "structure":
        out: Params = {}
        for name, member in shape.members.items():
            if ec2:
                key = member.serialization.get("queryName") or (member.serialization.get("name") or name)
                key = key[0].upper() + key[1:]
            else:
                key = member.serialization.get("name", name)
            value = _unflatten(member, flat, f"{prefix}.{key}" if prefix else key, ec2, keys)
            if value is not None:
                out[name] = value
        return out
    if kind == "list":
        if flat.get(prefix) == "":
            return []
        if ec2:
            base = prefix
        elif shape.serialization.get("flattened"):
            base = prefix
            if shape.member.serialization.get("name"):
                base = ".".join([*prefix.split(".")[:-1], shape.member.serialization["name"]])
        else:
            base = f"{prefix}.{shape.member.serialization.get('name', 'member')}"
        items, i = [], 1
        while (item := _unflatten(shape.member, flat, f"{base}.{i}", ec2, keys)) is not None:
            items.append(item)
            i += 1
        return items
    if kind == "map":
        entry = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        kname, vname = shape.key.serialization.get("name", "key"), shape.value.serialization.get("name", "value")
        out, i = {}, 1
        while f"{entry}.{i}.{kname}" in flat:
            out[flat[f"{entry}.{i}.{kname}"]] = _unflatten(shape.value, flat, f"{entry}.{i}.{vname}", ec2, keys)
            i += 1
        return out
    value = flat.get(prefix)
    if isinstance(value, str) and kind in ("integer", "long"):
        return int(value)
    if isinstance(value, str) and kind == "boolean":
        return value == "true"
    return value

