"""Hostile request bodies on the records path (``runtime.inputs.parse_json``, the real decoder): a 422 must stay
small whatever the body holds. Today the refusal echoes the request back — every unexpected field name, a huge
string value (NumPy's conversion error quotes it whole), a huge key (in ``loc`` and in the message) — so a 16 MiB
body (``runtime.max_body_bytes``) gets a ~16 MiB answer, built while the decoder holds the GIL (1,000,000 unexpected
fields: 2.6 s and a 12 MB detail on this machine).

``runtime/inputs.py`` is being edited by another helper this session: these tests are strict xfails that document
the fix (list at most a few names with the count of the rest; quote at most ~100 characters of a value or key, as
``runtime.text.check_categories`` already does) and start passing — failing as XPASS — once it lands.
"""

from __future__ import annotations

import orjson
import pytest

from runtime.inputs import InputError, InputSpec, parse_json
from runtime.manifest import Manifest, Tensor

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RECORD = {n: 1.0 for n in IRIS}
MAX_DETAIL = 4096
"""Bytes a 422's detail may take, whatever the body: enough for the expected fields and a quoted excerpt."""
BIG = 1_000_000
REASON = ("runtime/inputs.py: a 422 echoes unbounded request content (field names, values, keys); fix pending "
          "there (another helper's file this session)")


def _spec() -> InputSpec:
    return InputSpec(Manifest(name="m", version="1.0.0", format="onnx", source_format="onnx", file="m.onnx",
                              sha256="0", size_bytes=1, created_at="now",
                              inputs=[Tensor(name="input", shape=[None, 4])],
                              outputs=[Tensor(name="y", role="prediction")], feature_names=IRIS))


def _detail(body: object) -> bytes:
    with pytest.raises(InputError) as e:
        parse_json(orjson.dumps(body), _spec())
    return orjson.dumps(e.value.detail())


def test_a_small_bad_record_still_names_its_fields() -> None:
    """The precise message the bounds must keep (passes today)."""
    detail = _detail({"inputs": [{**RECORD, "extra": 1}]})
    assert b"unexpected fields ['extra']" in detail and b"sepal_length" in detail and len(detail) < MAX_DETAIL


@pytest.mark.xfail(strict=True, reason=REASON)
def test_a_record_with_many_unexpected_fields_gets_a_short_422() -> None:
    extra = {f"x{i:06d}": 0 for i in range(100_000)}
    detail = _detail({"inputs": [{**RECORD, **extra}]})
    assert len(detail) <= MAX_DETAIL and b"100000" in detail, len(detail)  # the count, not the list


@pytest.mark.xfail(strict=True, reason=REASON)
def test_a_giant_string_in_a_number_field_is_not_echoed() -> None:
    detail = _detail({"inputs": [{**RECORD, "sepal_length": "x" * BIG}]})
    assert len(detail) <= MAX_DETAIL, len(detail)


@pytest.mark.xfail(strict=True, reason=REASON)
def test_a_giant_field_name_is_not_echoed() -> None:
    detail = _detail({"inputs": [{"k" * BIG: 1}]})
    assert len(detail) <= MAX_DETAIL, len(detail)


@pytest.mark.xfail(strict=True, reason=REASON)
def test_a_giant_column_name_is_not_echoed() -> None:
    detail = _detail({"inputs": {"k" * BIG: [1.0]}})
    assert len(detail) <= MAX_DETAIL, len(detail)
