"""Standard protocols on the real server (``python -m runtime``), driven by the real clients: ``tritonclient[http]``
for the Open Inference Protocol v2 (metadata, JSON and binary tensors, errors), ``httpx`` for KServe V1."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from benchmarks import models as ex
from tests.test_runtime_server import IRIS_EXPECTED, IRIS_ROWS, serve

tritonhttp = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

KEY = "protocols-key"
MAX_ROWS = 50
IRIS_INDEX = [ex.IRIS_LABELS.index(label) for label in IRIS_EXPECTED]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two iris versions (1.0.0, 1.1.0: the latest gets the traffic), API-key auth, a rate limit, row limit 50."""
    root = tmp_path_factory.mktemp("protocol-models")
    ex.iris_onnx(root / "v1", version="1.0.0")
    ex.iris_onnx(root / "v2", version="1.1.0", seed=1)
    env = {"MLDEPLOY_AUTH_MODE": "api_key", "MLDEPLOY_API_KEYS": KEY, "MLDEPLOY_RATE_LIMIT_ENABLED": "true",
           "MLDEPLOY_RATE_LIMIT": "100000/minute",
           "MLDEPLOY_MAX_ROWS": str(MAX_ROWS), "MLDEPLOY_MAX_BODY_BYTES": "65536"}
    with serve(tmp_path_factory.mktemp("protocols"), models_dir=root, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server):
    c = tritonhttp.InferenceServerClient(url=server.url.removeprefix("http://"), connection_timeout=30,
                                         network_timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="module")
def outputs(client) -> tuple[str, str]:
    """The iris outputs' names (label, probabilities), from the model metadata."""
    meta = client.get_model_metadata("iris", headers=auth())
    return meta["outputs"][0]["name"], meta["outputs"][1]["name"]


def auth() -> dict[str, str]:
    """Fresh credentials per call: tritonclient adds its own headers to the dict it is given."""
    return {"X-API-Key": KEY}


def _input(rows: np.ndarray, binary: bool, datatype: str = "FP32", name: str = "input"):
    tensor = tritonhttp.InferInput(name, list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


# -- v2: health and metadata ---------------------------------------------------------------------------------------

def test_v2_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()  # probes: no credentials needed
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1.0.0")
    assert not client.is_model_ready("iris", "9.9.9") and not client.is_model_ready("other")
    meta = client.get_server_metadata(headers=auth())
    assert meta["name"] == "mldeploy" and "binary_tensor_data" in meta["extensions"]


def test_v2_model_metadata_from_model_json(client):
    meta = client.get_model_metadata("iris", headers=auth())
    assert meta["name"] == "iris" and meta["versions"] == ["1.0.0", "1.1.0"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["datatype"], o["shape"]) for o in meta["outputs"]] == [("INT64", [-1]), ("FP32", [-1, 3])]
    assert client.get_model_metadata("iris", "1.0.0", headers=auth())["inputs"] == meta["inputs"]
    err = _error(lambda: client.get_model_metadata("iris", "9.9.9", headers=auth()))
    assert err.status() == "404" and "9.9.9" in err.message()
    err = _error(lambda: client.get_model_metadata("other", headers=auth()))
    assert err.status() == "404" and "'other' is not served" in err.message()


def test_v2_needs_the_same_credentials(client):
    err = _error(lambda: client.get_model_metadata("iris"))
    assert err.status() == "401" and err.message()
    rows = np.asarray(IRIS_ROWS, dtype=np.float32)
    err = _error(lambda: client.infer("iris", [_input(rows, True)], headers={"X-API-Key": "wrong"}))
    assert err.status() == "401"


# -- v2: inference -------------------------------------------------------------------------------------------------

def test_v2_infer_json_tensors(client, outputs):
    label, proba = outputs
    rows = np.asarray(IRIS_ROWS, dtype=np.float32)
    wanted = [tritonhttp.InferRequestedOutput(label, binary_data=False),
              tritonhttp.InferRequestedOutput(proba, binary_data=False)]
    result = client.infer("iris", [_input(rows, binary=False)], outputs=wanted, request_id="req-7",
                          model_version="1.0.0", headers=auth())
    response = result.get_response()
    assert response["model_name"] == "iris" and response["model_version"] == "1.0.0" and response["id"] == "req-7"
    assert all("data" in o for o in response["outputs"])  # JSON, not binary
    assert result.as_numpy(label).tolist() == IRIS_INDEX
    p = result.as_numpy(proba)
    assert p.shape == (3, 3) and p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert p.argmax(axis=1).tolist() == IRIS_INDEX
    # one requested output only; FP64 data is cast to the model's FP32 input
    only = client.infer("iris", [_input(rows.astype(np.float64), binary=False, datatype="FP64")],
                        outputs=[tritonhttp.InferRequestedOutput(proba, binary_data=False)], model_version="1.0.0",
                        headers=auth())
    assert [o["name"] for o in only.get_response()["outputs"]] == [proba]
    assert np.allclose(only.as_numpy(proba), p, atol=1e-6)


def test_v2_infer_binary_tensors(client, outputs, server):
    label, proba = outputs
    rows = np.tile(np.asarray(IRIS_ROWS, dtype=np.float32), (10, 1))  # 30 rows
    # no outputs named: the client asks for every output in binary (binary_data_output)
    result = client.infer("iris", [_input(rows, binary=True)], model_version="1.0.0", headers=auth())
    response = result.get_response()
    assert {o["name"] for o in response["outputs"]} == {label, proba}
    assert all("binary_data_size" in o["parameters"] and "data" not in o for o in response["outputs"])
    assert result.as_numpy(label).tolist() == IRIS_INDEX * 10
    assert result.as_numpy(proba).shape == (30, 3)
    # same answer as the native endpoint
    native = httpx.post(server.url + "/v1/models/iris/versions/1.0.0/predict", json={"inputs": IRIS_ROWS},
                        headers=auth()).json()
    assert np.allclose(result.as_numpy(proba)[:3], native["probabilities"], atol=1e-6)
    # binary in, JSON out for one output, binary for the other; the latest version by default
    mixed = client.infer("iris", [_input(rows[:3], binary=True)], headers=auth(),
                         outputs=[tritonhttp.InferRequestedOutput(label, binary_data=False),
                                  tritonhttp.InferRequestedOutput(proba, binary_data=True)])
    assert mixed.get_response()["model_version"] == "1.1.0"
    assert mixed.as_numpy(label).tolist() == IRIS_INDEX and mixed.as_numpy(proba).shape == (3, 3)


def test_v2_versions_map_to_paths(client):
    rows = np.asarray(IRIS_ROWS, dtype=np.float32)
    for version in ("1.0.0", "1.1.0"):
        result = client.infer("iris", [_input(rows, True)], model_version=version, headers=auth())
        assert result.get_response()["model_version"] == version
    err = _error(lambda: client.infer("iris", [_input(rows, True)], model_version="9.9.9", headers=auth()))
    assert err.status() == "404" and "9.9.9" in err.message()
    err = _error(lambda: client.infer("other", [_input(rows, True)], headers=auth()))
    assert err.status() == "404"


@pytest.mark.parametrize("binary", [False, True])
def test_v2_shape_error_is_the_protocols_400(client, binary):
    wide = np.ones((3, 5), dtype=np.float32)
    err = _error(lambda: client.infer("iris", [_input(wide, binary)], headers=auth()))
    assert err.status() == "400"
    assert "axis 1 has 5 values" in err.message() and "inputs.0" in err.message()


def test_v2_request_errors_are_400(client):
    rows = np.asarray(IRIS_ROWS, dtype=np.float32)
    err = _error(lambda: client.infer("iris", [_input(rows, True, name="features")], headers=auth()))
    assert err.status() == "400" and "unknown input 'features'" in err.message()
    text = np.array([["a"] * 4] * 3, dtype=object)
    err = _error(lambda: client.infer("iris", [_input(text, False, datatype="BYTES")], headers=auth()))
    assert err.status() == "400" and "takes FP32, not BYTES" in err.message()
    err = _error(lambda: client.infer("iris", [_input(rows, True)], headers=auth(),
                                      outputs=[tritonhttp.InferRequestedOutput("nope")]))
    assert err.status() == "400" and "unknown output 'nope'" in err.message()
    nan = rows.copy()
    nan[0, 0] = np.nan
    err = _error(lambda: client.infer("iris", [_input(nan, True)], headers=auth()))
    assert err.status() == "400" and "finite" in err.message()


@pytest.mark.parametrize("binary", [False, True])
def test_v2_row_and_body_limits_apply(client, outputs, binary):
    rows = np.ones((MAX_ROWS + 1, 4), dtype=np.float32)
    err = _error(lambda: client.infer("iris", [_input(rows, binary)], headers=auth()))
    assert err.status() == "413" and f"at most {MAX_ROWS}" in err.message()
    at_limit = client.infer("iris", [_input(rows[:MAX_ROWS], binary)], headers=auth())
    assert at_limit.as_numpy(outputs[1]).shape == (MAX_ROWS, 3)
    huge = np.ones((40, 4096), dtype=np.float32)  # 640 KiB: over max_body_bytes, refused by size
    err = _error(lambda: client.infer("iris", [_input(huge, True)], headers=auth()))
    assert err.status() == "413"


# -- KServe V1 -----------------------------------------------------------------------------------------------------

def test_kserve_v1_predict(server):
    url = server.url + "/v1/models/iris:predict"
    r = httpx.post(url, json={"instances": IRIS_ROWS}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": IRIS_EXPECTED}
    assert r.headers["x-model-version"] == "1.1.0" and "x-ratelimit-remaining" in r.headers  # the same guard
    records = [dict(zip(ex.IRIS_FEATURES, row, strict=True)) for row in IRIS_ROWS]
    pinned = httpx.post(url, json={"instances": records}, headers={**auth(), "X-Model-Version": "1.0.0"})
    assert pinned.json() == {"predictions": IRIS_EXPECTED} and pinned.headers["x-model-version"] == "1.0.0"
    form = httpx.post(url, content=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', headers={  # what `curl -d` sends
        **auth(), "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200 and form.json() == {"predictions": ["setosa"]}
    ready = httpx.get(server.url + "/v1/models/iris")
    assert ready.status_code == 200 and ready.json() == {"name": "iris", "ready": True}


def test_kserve_v1_errors(server):
    url = server.url + "/v1/models/iris:predict"
    assert httpx.post(url, json={"instances": IRIS_ROWS}).status_code == 401
    bad = httpx.post(url, json={"instances": [[1.0, 2.0]]}, headers=auth())
    assert bad.status_code == 400 and "axis 1" in bad.json()["error"]
    other = httpx.post(server.url + "/v1/models/other:predict", json={"instances": IRIS_ROWS}, headers=auth())
    assert other.status_code == 404 and "error" in other.json()
    assert httpx.get(server.url + "/v1/models/other").status_code == 404
    too_many = httpx.post(url, json={"instances": [IRIS_ROWS[0]] * (MAX_ROWS + 1)}, headers=auth())
    assert too_many.status_code == 413 and "error" in too_many.json()
    # the native endpoints keep their own format
    native = httpx.post(server.url + "/v1/models/iris/predict", json={"inputs": [[1.0, 2.0]]}, headers=auth())
    assert native.status_code == 422 and "detail" in native.json()


# -- the tensor codec against the client's own ---------------------------------------------------------------------

def test_tensor_codec_matches_tritonclient():
    from tritonclient.utils import deserialize_bytes_tensor, np_to_triton_dtype, serialize_byte_tensor

    from runtime.http.protocols import tensors
    from runtime.inputs import InputError

    for dtype in ("bool", "uint8", "int16", "int32", "int64", "float16", "float32", "float64"):
        assert tensors.datatype_of(np.dtype(dtype)) == np_to_triton_dtype(np.dtype(dtype))
    assert tensors.datatype_of("string") == "BYTES" and tensors.datatype_of("float32") == "FP32"
    text = np.array(["a", "héllo", ""], dtype=object)
    raw = serialize_byte_tensor(text).item()
    assert tensors.from_binary(memoryview(raw), "BYTES", [3], ["x"]).tolist() == ["a", "héllo", ""]
    assert deserialize_bytes_tensor(tensors.to_binary(text)).tolist() == [s.encode() for s in text]
    with pytest.raises(InputError, match="past the end"):
        tensors.from_binary(memoryview(raw[:-8]), "BYTES", [3], ["x"])
    grid = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert np.array_equal(tensors.from_binary(memoryview(grid.tobytes()), "INT32", [2, 3], ["x"]), grid)
    # JSON data: flat or nested, coerced to the datatype; no silent truncation
    nested = tensors.from_json([[0, 1, 2], [3, 4, 5]], "INT32", [2, 3], ["x"])
    assert np.array_equal(nested, grid) and nested.dtype == np.int32
    assert np.array_equal(tensors.from_json(list(range(6)), "INT32", [2, 3], ["x"]), grid)
    assert tensors.from_json([True, False], "BOOL", [2], ["x"]).tolist() == [True, False]
    for data, datatype, match in (([1.5], "INT64", "integers"), ([2], "BOOL", "true/false"),
                                  ([300], "UINT8", "out of range"), (["a"], "FP32", "FP32"),
                                  ([1, 2, 3], "FP32", "holds 4 values")):
        with pytest.raises(InputError, match=match):
            tensors.from_json(data, datatype, [4] if match == "holds 4 values" else [1], ["x"])
