"""Unit tests of the parity comparison and input helpers (pure numpy, no frameworks)."""

from __future__ import annotations

import numpy as np
import pytest

from mldeploy.artifacts import sample
from mldeploy.artifacts.parity import compare
from mldeploy.config.schema import Parity
from mldeploy.errors import ArtifactError
from runtime.manifest import Tensor

OUTS = [Tensor(name="label", dtype="int64", shape=[None], role="label"),
        Tensor(name="probabilities", shape=[None, 3], role="probabilities")]


def _proba(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.random((n, 3))
    return p / p.sum(axis=1, keepdims=True)


def test_identical_outputs_pass_with_zero_error() -> None:
    p = _proba(np.random.default_rng(0), 10)
    ref = {"label": p.argmax(1), "probabilities": p}
    r = compare(ref, {k: v.copy() for k, v in ref.items()}, OUTS, Parity(), 10)
    assert r.passed and r.max_abs_error == 0 and r.max_rel_error == 0 and r.argmax_agreement == 1.0


def test_numeric_drift_beyond_tolerance_fails_and_is_measured() -> None:
    p = _proba(np.random.default_rng(1), 10)
    q = p.copy()
    q[3, 1] += 0.01
    r = compare({"probabilities": p}, {"probabilities": q}, OUTS, Parity(atol=1e-4, rtol=1e-3), 10)
    assert not r.passed and r.max_abs_error == pytest.approx(0.01)
    assert r.max_rel_error == pytest.approx(0.01 / p[3, 1])
    assert compare({"probabilities": p}, {"probabilities": q}, OUTS, Parity(atol=0.02), 10).passed


def test_label_disagreement_uses_min_argmax_agreement() -> None:
    labels = np.arange(100) % 3
    flipped = labels.copy()
    flipped[:2] = (flipped[:2] + 1) % 3
    r = compare({"label": labels}, {"label": flipped}, OUTS, Parity(min_argmax_agreement=0.99), 100)
    assert r.argmax_agreement == pytest.approx(0.98) and not r.passed
    assert compare({"label": labels}, {"label": flipped}, OUTS, Parity(min_argmax_agreement=0.95), 100).passed


def test_outputs_are_matched_by_position_when_names_differ_and_shapes_must_agree() -> None:
    v = np.ones((4, 1))
    assert compare({"variable": v}, {"output_0": v.ravel()}, [Tensor(name="variable", role="prediction")],
                   Parity(), 4).passed
    with pytest.raises(ValueError, match="shape"):
        compare({"variable": v}, {"variable": np.ones(5)}, [], Parity(), 4)


def test_generated_inputs_follow_signature_and_sample_statistics() -> None:
    spec = [Tensor(name="x", shape=[None, 4])]
    ref = {"x": np.array([[10.0, 0, 0, 5]] * 3 + [[12.0, 0, 0, 5]], dtype=np.float32)}
    x = sample.parity_inputs(spec, ref, 500)["x"]
    assert x.shape == (500, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:4], ref["x"])  # the sample rows come first
    assert abs(x[4:, 0].mean() - 10.5) < 0.2 and abs(x[4:, 0].std() - np.std([10, 10, 10, 12])) < 0.2
    # a constant feature still varies (unit spread around its value), so the conversion of its splits is exercised
    assert abs(x[4:, 3].mean() - 5) < 0.2 and abs(x[4:, 3].std() - 1) < 0.2
    img = sample.generate([Tensor(name="img", shape=[None, 3, 8, None])], 2)["img"]
    assert img.shape == (2, 3, 8, 8)
    b = sample.baseline({"img": np.stack([np.zeros((3, 2, 2)), np.ones((3, 2, 2))]).astype(np.float32)}, "NCHW")
    assert b is not None and b.mean == [0.5, 0.5, 0.5] and b.std == [0.5, 0.5, 0.5] and b.count == 2
    texts = sample.generate([Tensor(name="s", dtype="string")], 3)["s"]  # text models: generated sentences
    assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)


def test_sample_file_formats(tmp_path) -> None:
    spec = [Tensor(name="x", shape=[None, 2])]
    np.save(tmp_path / "s.npy", np.array([[1.5, 2.0]]))
    assert sample.read_sample(tmp_path / "s.npy", spec)["x"].tolist() == [[1.5, 2.0]]
    (tmp_path / "s.json").write_text('{"inputs": {"x": [3, 4]}}')  # a single row, request-body shaped
    assert sample.read_sample(tmp_path / "s.json", spec)["x"].shape == (1, 2)
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ArtifactError, match=r"model\.sample_input: cannot read .*bad\.json"):
        sample.read_sample(tmp_path / "bad.json", spec)
    assert sample.embeddable({"x": np.zeros((20, 2), dtype=np.float32)}) == {"x": [[0.0, 0.0]] * 8}
    assert sample.embeddable({"x": np.zeros((1, 3, 224, 224), dtype=np.float32)}) is None
