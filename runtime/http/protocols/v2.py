"""Open Inference Protocol v2 over HTTP/REST (KServe V2 / Triton / MLServer), with the binary tensor extension.

Health (``/v2/health/live|ready``, ``/v2/models/{name}[/versions/{v}]/ready``: 200 true, 400 false, empty body),
server and model metadata (``/v2``, ``/v2/models/{name}[/versions/{v}]``) and ``POST …/infer``. Inference goes
through the app's data plane (routing, batching, timeouts, metrics) with this module's body decoder in place of
the native one; rows are checked against the row limit from the declared shapes before any tensor is built.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from runtime import __version__
from runtime.batching import InferenceError, Inputs, QueueFullError
from runtime.dataplane import BIG_ROWS, InferenceService, ModelNotServedError, Prediction
from runtime.http.protocols import tensors
from runtime.http.protocols.dataplane import ProtocolDataPlane
from runtime.http.protocols.errors import JSON
from runtime.http.security import Guard, rate_limit_headers
from runtime.inputs import InputError, InputSpec, PayloadTooLargeError
from runtime.lifecycle import Drain
from runtime.manifest import Manifest, Tensor
from runtime.repository import ModelVersion
from runtime.routing import UnknownVersionError

HEADER_LENGTH = "inference-header-content-length"
OCTET = "application/octet-stream"
EXTENSIONS = ["binary_tensor_data"]
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch", "savedmodel": "tensorflow_savedmodel"}
STATE_KEY = "v2_request"
BIG_JSON = 64 * 1024  # JSON bodies above this are decoded off the event loop
_EMPTY = memoryview(b"")


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(slots=True)
class InferRequest:
    """What the answer needs from the request: its id and the requested outputs."""

    id: str | None
    outputs: list[RequestedOutput] | None  # None: every output
    binary_output: bool  # request parameter ``binary_data_output``


@dataclass(slots=True)
class _Input:
    name: str
    datatype: str
    shape: list[int]
    loc: list[str | int]
    binary_size: int | None = None
    data: Any = field(default=None)


def tensor_metadata(t: Tensor) -> dict[str, Any]:
    """``{"name", "datatype", "shape"}`` of a manifest tensor; dynamic dims are -1."""
    return {"name": t.name, "datatype": tensors.datatype_of(t.dtype),
            "shape": [-1 if d is None else d for d in t.shape]}


def model_metadata(m: Manifest, versions: list[str]) -> dict[str, Any]:
    return {"name": m.name, "versions": versions, "platform": PLATFORMS.get(m.format, f"mldeploy_{m.format}"),
            "inputs": [tensor_metadata(t) for t in m.inputs], "outputs": [tensor_metadata(t) for t in m.outputs]}


# -- request decoding ----------------------------------------------------------------------------------------------

def _param(params: Any, key: str, loc: list[str | int]) -> Any:
    if params is None:
        return None
    if not isinstance(params, dict):
        raise InputError(loc, "parameters must be an object")
    return params.get(key)


def _flag(value: Any, loc: list[str | int]) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(loc, "must be true or false")
    return value


def _load_header(raw: bytes | memoryview) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InputError(["body"], f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(["body"], "expected an inference request object with 'inputs'")
    return doc


def _plan(doc: dict[str, Any], mv: ModelVersion) -> tuple[list[_Input], InferRequest]:
    """Validate the request header against the model; rows are checked (413) before any tensor is built."""
    spec: InputSpec = mv.spec
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        raise InputError(["inputs"], "required: a list of input tensors")
    plan: list[_Input] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        loc: list[str | int] = ["inputs", i]
        if not isinstance(item, dict):
            raise InputError(loc, "each input must be an object with name, shape, datatype and data")
        name = item.get("name")
        if name not in spec.by_name:
            raise InputError([*loc, "name"], f"unknown input {name!r}; the model's inputs: {list(spec.by_name)}")
        if name in seen:
            raise InputError([*loc, "name"], f"input {name!r} is given twice")
        seen.add(name)
        datatype = item.get("datatype")
        if datatype not in tensors.DATATYPES:
            raise InputError([*loc, "datatype"], f"unsupported datatype {datatype!r}; "
                                                 f"one of {', '.join(tensors.DATATYPES)}")
        if (datatype == tensors.BYTES) != (spec.dtypes[name].kind == "O"):
            want = tensors.datatype_of(spec.by_name[name].dtype)
            raise InputError([*loc, "datatype"], f"input {name!r} takes {want}, not {datatype}")
        shape = tensors.check_shape(item.get("shape"), [*loc, "shape"])
        spec.check_rows(spec.rows_of_shape(name, shape))
        size = _param(item.get("parameters"), "binary_data_size", [*loc, "parameters"])
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InputError([*loc, "parameters", "binary_data_size"], "must be a non-negative integer")
            fixed = tensors.binary_size(datatype, shape)
            if fixed is not None and fixed != size:
                raise InputError([*loc, "parameters", "binary_data_size"],
                                 f"shape {shape} of {datatype} is {fixed} bytes, not {size}")
            plan.append(_Input(name, datatype, shape, loc, binary_size=size))
        elif "data" in item:
            plan.append(_Input(name, datatype, shape, loc, data=item["data"]))
        else:
            raise InputError(loc, "needs 'data' (or parameters.binary_data_size with binary data)")
    missing = [n for n in spec.by_name if n not in seen]
    if missing:
        raise InputError(["inputs"], f"missing input {missing[0]!r}")
    return plan, _requested(doc, mv.manifest)


def _requested(doc: dict[str, Any], m: Manifest) -> InferRequest:
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InputError(["id"], "must be a string")
    binary_output = _flag(_param(doc.get("parameters"), "binary_data_output", ["parameters"]),
                          ["parameters", "binary_data_output"])
    wanted = doc.get("outputs")
    if wanted is None:
        return InferRequest(rid, None, binary_output)
    if not isinstance(wanted, list):
        raise InputError(["outputs"], "must be a list of {name, parameters}")
    names = [o.name for o in m.outputs]
    outputs = []
    for i, o in enumerate(wanted):
        if not isinstance(o, dict) or o.get("name") not in names:
            got = o.get("name") if isinstance(o, dict) else o
            raise InputError(["outputs", i, "name"], f"unknown output {got!r}; the model's outputs: {names}")
        if _param(o.get("parameters"), "classification", ["outputs", i, "parameters"]) is not None:
            raise InputError(["outputs", i, "parameters", "classification"], "the classification extension is not "
                             "supported; request the probabilities output")
        flag = _param(o.get("parameters"), "binary_data", ["outputs", i, "parameters"])
        binary = binary_output if flag is None else _flag(flag, ["outputs", i, "parameters", "binary_data"])
        outputs.append(RequestedOutput(o["name"], binary))
    return InferRequest(rid, outputs, binary_output)


def _build(plan: list[_Input], binary: memoryview, spec: InputSpec) -> Inputs:
    """The planned tensors → the model's input arrays (shape/dtype checked against model.json)."""
    declared = sum(p.binary_size or 0 for p in plan)
    if declared != len(binary):
        raise InputError(["body"], f"the binary_data_size values add up to {declared} bytes but "
                                   f"{len(binary)} bytes follow the JSON header")
    out: Inputs = {}
    offset = 0
    for p in plan:
        if p.binary_size is not None:
            arr = tensors.from_binary(binary[offset:offset + p.binary_size], p.datatype, p.shape, p.loc)
            offset += p.binary_size
        else:
            arr = tensors.from_json(p.data, p.datatype, p.shape, [*p.loc, "data"])
        out[p.name] = spec.check(p.name, arr, p.loc)
    rows = {a.shape[0] for a in out.values()}
    if len(rows) > 1:
        raise InputError(["inputs"], f"inputs have different batch sizes {sorted(rows)}")
    return out


def _decode_json_body(body: bytes, mv: ModelVersion) -> tuple[Inputs, InferRequest]:
    plan, req = _plan(_load_header(body), mv)
    return _build(plan, _EMPTY, mv.spec), req


async def decode_infer_request(request: Request, mv: ModelVersion) -> Inputs:
    """An inference request body (JSON, or JSON header + binary tensors) → the model's inputs.

    With ``Inference-Header-Content-Length`` the body is streamed: the header is validated (names, datatypes,
    shapes, row limit, binary sizes) as soon as it has arrived, before the tensor bytes are read.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise InputError(["header", "Content-Encoding"], f"{encoding!r} is not accepted; send uncompressed bodies")
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        body = await request.body()
        if len(body) > BIG_JSON:
            inputs, req = await asyncio.to_thread(_decode_json_body, body, mv)
        else:
            inputs, req = _decode_json_body(body, mv)
    else:
        if not length.strip().isdigit():
            raise InputError(["header", "Inference-Header-Content-Length"], "must be a non-negative integer")
        inputs, req = await _decode_binary_body(request, mv, int(length))
    request.scope.setdefault("state", {})[STATE_KEY] = req
    return inputs


def decode_infer_body(body: bytes, headers: Any, mv: ModelVersion) -> tuple[Inputs, InferRequest]:
    """``decode_infer_request`` of a body already read whole (the predict fast path, ``runtime.http.fastpath``),
    on the caller's thread: the same checks, errors and answer. ``headers``: anything with ``get(name,
    default)`` over the request's headers."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise InputError(["header", "Content-Encoding"], f"{encoding!r} is not accepted; send uncompressed bodies")
    length = headers.get(HEADER_LENGTH)
    if length is None:
        return _decode_json_body(body, mv)
    if not length.strip().isdigit():
        raise InputError(["header", "Inference-Header-Content-Length"], "must be a non-negative integer")
    header_length = int(length)
    if len(body) < header_length:
        raise InputError(["header", "Inference-Header-Content-Length"],
                         f"{header_length} bytes of JSON header announced; the body has {len(body)}")
    view = memoryview(body)
    plan, req = _plan(_load_header(view[:header_length]), mv)
    return _build(plan, view[header_length:], mv.spec), req


async def _decode_binary_body(request: Request, mv: ModelVersion, header_length: int) -> tuple[Inputs, InferRequest]:
    chunks: list[bytes] = []
    received = 0
    plan: tuple[list[_Input], InferRequest] | None = None
    async for chunk in request.stream():
        chunks.append(chunk)
        received += len(chunk)
        if plan is None and received >= header_length:
            head = b"".join(chunks)
            chunks = [head]
            plan = _plan(_load_header(memoryview(head)[:header_length]), mv)
    body = b"".join(chunks)
    if plan is None:
        raise InputError(["header", "Inference-Header-Content-Length"],
                         f"{header_length} bytes of JSON header announced; the body has {len(body)}")
    inputs = _build(plan[0], memoryview(body)[header_length:], mv.spec)
    return inputs, plan[1]


# -- response encoding ---------------------------------------------------------------------------------------------

def encode_response(p: Prediction, req: InferRequest, name: str, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The inference response body and its content headers (binary tensors after the JSON header if any)."""
    if req.outputs is None:
        present = [o.name for o in p.mv.manifest.outputs if o.name in p.outputs] or list(p.outputs)
        wanted = [RequestedOutput(n, req.binary_output) for n in present]
    else:
        wanted = req.outputs
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for o in wanted:
        arr = p.outputs[o.name]
        entry: dict[str, Any] = {"name": o.name, "datatype": tensors.datatype_of(arr.dtype),
                                 "shape": list(arr.shape)}
        if o.binary:
            raw = tensors.to_binary(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = tensors.to_json(arr)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": name, "model_version": p.version}
    if req.id is not None:
        doc["id"] = req.id
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    size = len(header) + sum(map(len, blobs))
    if size > max_bytes:  # backstop: the row limit already accounts for the answer size
        raise PayloadTooLargeError(f"the answer would be {size} bytes, above max_response_bytes ({max_bytes}): "
                                   "send fewer rows")
    if not blobs:
        return header, {"content-type": JSON}
    return b"".join([header, *blobs]), {"content-type": OCTET, "Inference-Header-Content-Length": str(len(header))}


# -- endpoints -----------------------------------------------------------------------------------------------------

class TensorDataPlane(ProtocolDataPlane):
    """The app's data plane decoding v2 inference requests."""

    async def decode(self, request: Request, mv: ModelVersion) -> Inputs:
        return await decode_infer_request(request, mv)

    async def infer_body(self, body: bytes, headers: Any, chosen: str, mv: ModelVersion, query_string: bytes,
                         started: float) -> tuple[Prediction, InferRequest]:
        """``predict`` of a body already read (the predict fast path): decode (``decode_infer_body``) → batch
        (inline when the batcher is idle, as ``predict_body``) → format, within ``request_timeout_s`` of
        ``started`` (``time.perf_counter()``); the same errors as ``predict``. The fast path leaves JSON bodies
        above 64 KiB to the route, which decodes them off the event loop."""
        batcher = mv.batcher
        try:
            inputs, req = decode_infer_body(body, headers, mv)
            outputs = batcher.run_now(inputs, next(iter(inputs.values())).shape[0])
            if outputs is None:
                async with asyncio.timeout(self._left(started)):
                    outputs = await batcher.submit(inputs)
        except (QueueFullError, TimeoutError, InferenceError) as e:
            raise self.failed(e, chosen) from None
        return await self._prediction(chosen, mv, inputs, outputs, query_string), req


class V2Endpoints:
    """The Open Inference Protocol v2 routes of one app."""

    def __init__(self, dataplane: InferenceService, guard: Guard, drain: Drain) -> None:
        self.dataplane = TensorDataPlane(dataplane)
        self.repository = dataplane.repository
        self.guard = guard
        self.drain = drain
        self.name = dataplane.name
        self.max_response_bytes = dataplane.settings.max_response_bytes

    def register(self, router: APIRouter) -> None:
        """Add the v2 routes; metadata and inference carry the guard, health probes do not."""
        dep = self.guard.dependency()
        guarded = [Depends(dep)] if dep else []
        tags = ["Open Inference Protocol v2"]
        get = {"methods": ["GET"], "tags": tags}
        router.add_api_route("/v2/health/live", self.live, summary="v2 server live", **get)
        router.add_api_route("/v2/health/ready", self.ready, summary="v2 server ready", **get)
        router.add_api_route("/v2", self.server_metadata, summary="v2 server metadata", dependencies=guarded, **get)
        router.add_api_route("/v2/models/{name}", self.model_metadata, summary="v2 model metadata",
                             dependencies=guarded, **get)
        router.add_api_route("/v2/models/{name}/versions/{version}", self.version_metadata,
                             summary="v2 model metadata (one version)", dependencies=guarded, **get)
        router.add_api_route("/v2/models/{name}/ready", self.model_ready, summary="v2 model ready", **get)
        router.add_api_route("/v2/models/{name}/versions/{version}/ready", self.version_ready,
                             summary="v2 model ready (one version)", **get)
        infer = {"methods": ["POST"], "tags": tags, "dependencies": guarded, "openapi_extra": _INFER_DOC}
        router.add_api_route("/v2/models/{name}/infer", self.infer, summary="v2 inference", **infer)
        router.add_api_route("/v2/models/{name}/versions/{version}/infer", self.infer_version,
                             summary="v2 inference (one version)", **infer)

    def _version(self, name: str, version: str | None) -> ModelVersion:
        """The named version (the latest without one); 404 errors for another model or an unknown version."""
        if name != self.name:
            raise ModelNotServedError(f"model {name!r} is not served here; this server serves {self.name!r}")
        versions = self.repository.router.versions
        chosen = version or versions[-1]
        if chosen not in self.repository.versions:
            raise UnknownVersionError(f"model version {chosen!r} is not served; available: {', '.join(versions)}")
        return self.repository.versions[chosen]

    async def live(self) -> Response:
        return Response(status_code=200)

    async def ready(self) -> Response:
        return Response(status_code=200 if self.repository.ready and not self.drain.active else 400)

    async def server_metadata(self) -> Response:
        doc = {"name": "mldeploy", "version": __version__, "extensions": EXTENSIONS}
        return Response(orjson.dumps(doc), media_type=JSON)

    async def model_metadata(self, name: str) -> Response:
        return self._metadata(self._version(name, None))

    async def version_metadata(self, name: str, version: str) -> Response:
        return self._metadata(self._version(name, version))

    def _metadata(self, mv: ModelVersion) -> Response:
        doc = model_metadata(mv.manifest, self.repository.router.versions)
        return Response(orjson.dumps(doc), media_type=JSON)

    async def model_ready(self, name: str) -> Response:
        return self._ready(self._version(name, None))

    async def version_ready(self, name: str, version: str) -> Response:
        return self._ready(self._version(name, version))

    def _ready(self, mv: ModelVersion) -> Response:
        return Response(status_code=200 if self.repository.ready and mv.batcher is not None else 400)

    async def infer(self, request: Request, name: str) -> Response:
        return await self._infer(request, name, None)

    async def infer_version(self, request: Request, name: str, version: str) -> Response:
        return await self._infer(request, name, version)

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        p = await self.dataplane.predict(request, name=name, version=version)
        req: InferRequest = request.scope["state"][STATE_KEY]
        if p.rows > BIG_ROWS:
            body, content = await asyncio.to_thread(encode_response, p, req, name, self.max_response_bytes)
        else:
            body, content = encode_response(p, req, name, self.max_response_bytes)
        headers = {**rate_limit_headers(request), **content, "X-Model-Version": p.version,
                   "Cache-Control": "no-store"}
        return Response(body, headers=headers)


_TENSOR_SCHEMA = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "datatype": {"type": "string", "enum": list(tensors.DATATYPES)},
    "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    "data": {"type": "array", "description": "row-major values, flat or nested"}}}
_INFER_DOC = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": _TENSOR_SCHEMA},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary", "description":
                                                "binary tensor extension: the JSON header (its length in "
                                                "Inference-Header-Content-Length), then the raw tensors"}}}},
    "responses": {"200": {"description": "Named output tensors (binary ones after the JSON header)"},
                  "400": {"description": "Malformed request or wrong shape: {\"error\": …}"},
                  "404": {"description": "Unknown model or version: {\"error\": …}"},
                  "413": {"description": "More rows than the row limit, or a body over max_body_bytes"}},
}
