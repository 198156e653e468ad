"""``runtime.shadow`` without a server (config parsing, PSI, regressors, the bounded queue) and the gates
(``mldeploy.release.gates.evaluate``)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mldeploy.config.schema import ReleaseGates
from mldeploy.release.gates import evaluate, lines, pair_of
from runtime.formatting import OutputFormatter
from runtime.manifest import Manifest, Tensor
from runtime.metrics import Metrics
from runtime.shadow import ShadowConfig, ShadowEvaluator, psi


def test_config_parse_validates_and_names_the_bad_key() -> None:
    assert ShadowConfig.parse(None, ["1.0.0"]) is None
    cfg = ShadowConfig.parse({"version": "1.1.0", "sample": 0.25}, ["1.0.0", "1.1.0"])
    assert cfg == ShadowConfig("1.1.0", 0.25)
    for doc, words in [({"version": "2.0.0"}, "not loaded"), ({"version": "1.1.0", "sample": 0}, "shadow.sample"),
                       ({"version": "1.1.0", "queue": 0}, "shadow.queue"), ({"version": "1.1.0", "x": 1}, "'x'"),
                       ("1.1.0", "must be an object")]:
        with pytest.raises(ValueError, match=words):
            ShadowConfig.parse(doc, ["1.0.0", "1.1.0"])


def test_psi_is_zero_for_equal_histograms_and_grows_with_the_shift() -> None:
    same = [10, 20, 30, 40, 0, 0, 0, 0, 0, 0]
    assert psi(same, same) == pytest.approx(0.0)
    small = psi(same, [12, 18, 30, 40, 0, 0, 0, 0, 0, 0])
    large = psi(same, [0, 0, 0, 0, 0, 0, 40, 30, 20, 10])
    assert 0 < small < 0.1 < 1.0 < large  # the usual reading: < 0.1 stable, > 0.25 a shift


class Model:
    """predict() with an optional gate (to hold the worker) and a fixed answer."""

    def __init__(self, answer: Any, gate: threading.Event | None = None) -> None:
        self.answer, self.gate, self.calls = answer, gate, 0

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls += 1
        return self.answer(inputs)


def regressor(version: str) -> Manifest:
    return Manifest(name="m", version=version, format="pickle", source_format="pickle", file="m.pkl", sha256="0",
                    size_bytes=1, task="regression", created_at="now",
                    inputs=[Tensor(name="x", shape=[None, 1])],
                    outputs=[Tensor(name="y", shape=[None], role="prediction")])


def repo(stable_model: Model, candidate_model: Model, cfg: ShadowConfig) -> Any:
    versions = {}
    for version, model in (("1.0.0", stable_model), ("1.1.0", candidate_model)):
        m = regressor(version)
        versions[version] = SimpleNamespace(manifest=m, formatter=OutputFormatter(m, 1),
                                            batcher=SimpleNamespace(model=model))
    return SimpleNamespace(versions=versions, router=SimpleNamespace(shadow=cfg))


def prediction(x: np.ndarray, y: np.ndarray, version: str = "1.0.0") -> Any:
    return SimpleNamespace(version=version, inputs={"x": x}, outputs={"y": y})


def wait(cond: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_regressors_agree_within_the_relative_tolerance_and_the_worst_rows_are_kept() -> None:
    cfg = ShadowConfig("1.1.0", tolerance=0.01, keep=2)
    cand = Model(lambda i: {"y": i["x"][:, 0] * np.array([1.0, 1.005, 1.5, 3.0])})  # 0.5 % off, 50 %, 200 %
    shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, cfg), Metrics())
    x = np.array([[10.0], [10.0], [10.0], [10.0]])
    shadow.on_response(prediction(x, x[:, 0]))
    shadow.on_response(prediction(x, x[:, 0], version="1.1.0"))  # the candidate's own answers are not shadowed
    wait(lambda: shadow.snapshot()["pairs"])
    pair = shadow.snapshot()["pairs"][0]
    assert (pair["rows"], pair["agreements"], pair["agreement"]) == (4, 2, 0.5)
    assert [d["candidate"] for d in pair["disagreements"]] == [[30.0], [15.0]]  # the most disagreeing first
    assert pair["shift"]["psi"] is None  # no top score without probabilities
    assert shadow.offered == 1
    shadow.stop()


def test_the_queue_is_bounded_and_drops_the_newest_counted() -> None:
    gate = threading.Event()
    cand = Model(lambda i: {"y": i["x"][:, 0]}, gate)
    shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, ShadowConfig("1.1.0", queue=2)), Metrics())
    x = np.ones((1, 1))
    for _ in range(50):
        shadow.on_response(prediction(x, x[:, 0]))
    q = shadow.snapshot()["queue"]
    # one taken by the (blocked) worker at most, two waiting, the rest dropped
    assert q["offered"] == 50 and q["depth"] <= 2 and q["dropped"] >= 47
    gate.set()
    wait(lambda: (shadow.snapshot()["pairs"] or [{}])[0].get("requests") == 50 - q["dropped"])
    assert shadow.snapshot()["queue"]["depth"] == 0
    assert cand.calls <= 50 - q["dropped"]  # what waited together ran in one call
    shadow.stop()


def test_sensitive_data_keeps_nothing_whatever_keep_says() -> None:
    cand = Model(lambda i: {"y": i["x"][:, 0] + 100})
    shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, ShadowConfig("1.1.0", keep=10)), Metrics(),
                             sensitive=True)
    x = np.ones((3, 1))
    shadow.on_response(prediction(x, x[:, 0]))
    wait(lambda: shadow.snapshot()["pairs"])
    snap = shadow.snapshot()
    assert snap["pairs"][0]["agreement"] == 0.0 and snap["shadow"]["keep"] == 0
    assert snap["pairs"][0]["disagreements"] == "not stored (runtime.auth.sensitive_data)"
    shadow.stop()


MEASURES = {"stable": "1.0.0", "candidate": "1.1.0", "rows": 500, "agreement": 0.93,
            "shift": {"psi": 0.05, "max_psi": 0.3, "per_class": {"a": 0.3}},
            "candidate_latency_ms": {"p50": 1.0, "p99": 12.0}}


def test_gates_name_each_failure_and_pass_when_met() -> None:
    gates = ReleaseGates(min_agreement=0.95, max_shift=0.2, max_candidate_p99_ms=10, min_samples=1000)
    results = {g.name: g for g in evaluate(MEASURES, gates)}
    assert [n for n, g in results.items() if not g.ok] == ["min_samples", "min_agreement", "max_shift",
                                                           "max_candidate_p99_ms"]
    assert results["min_agreement"].detail == "agreement 93.00% (minimum 95.00%)"
    assert "0.3000" in results["max_shift"].detail  # the worst class, not the overall 0.05
    ok = ReleaseGates(min_agreement=0.9, max_shift=0.5, max_candidate_p99_ms=20, min_samples=100)
    assert all(g.ok for g in evaluate(MEASURES, ok))
    unmeasured = evaluate({"rows": 500, "shift": {"psi": None}}, ReleaseGates(max_shift=0.1, min_samples=1))
    assert not unmeasured[1].ok and "not measured" in unmeasured[1].detail
    assert any("FAIL min_agreement" in line for line in lines(MEASURES, gates))


def test_pair_of_picks_the_candidate_against_the_stable() -> None:
    report = {"pairs": [{**MEASURES, "stable": "0.9.0", "rows": 9000}, MEASURES]}
    assert pair_of(report, "1.1.0", "1.0.0") is report["pairs"][1]
    assert pair_of(report, "1.1.0")["rows"] == 9000 and pair_of(report, "2.0.0") is None


def test_local_routing_keeps_the_shadow_while_the_canary_runs_and_drops_it_with_the_canary(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from mldeploy.release import ops
    from mldeploy.release.stores import LocalHistory
    from mldeploy.release.targets.local import LocalTarget
    from mldeploy.ui import NULL_UI
    from runtime.routing import Router
    from tests.unit.fakes import project

    models = tmp_path / "models"
    monkeypatch.setenv("MLDEPLOY_MODELS_DIR", str(models))
    for version in ("1.0.0", "1.1.0"):
        (models / version).mkdir(parents=True)
        (models / version / "model.json").write_text("{}")
    (models / "routing.json").write_text(json.dumps({"weights": {"1.0.0": 100}, "sticky_header": "X-User"}))
    target = LocalTarget(project("name: demo\nmodel:\n  path: model.onnx\n  version: 1.1.0\n", root=tmp_path),
                         NULL_UI)
    history = LocalHistory(target.state_path, git_commit="abc")
    target._set(stable="1.0.0")
    ops.canary(target, history, NULL_UI, percent=0, image="1.1.0", version="1.1.0")
    target.set_shadow("1.1.0", 0.25)
    doc = json.loads((models / "routing.json").read_text())
    assert doc == {"weights": {"1.0.0": 100, "1.1.0": 0}, "sticky_header": "X-User",
                   "shadow": {"version": "1.1.0", "sample": 0.25}}
    router = Router(["1.0.0", "1.1.0"], models / "routing.json")
    assert router.shadow == ShadowConfig("1.1.0", 0.25) and router.weights == {"1.0.0": 100}  # the runtime took it
    assert target.served_versions() == ["1.0.0", "1.1.0"]  # a container must load the shadow candidate
    ops.canary(target, history, NULL_UI, percent=10, image="1.1.0", version="1.1.0")
    assert target.shadow() == {"version": "1.1.0", "sample": 0.25}  # a weight move keeps it
    ops.rollback(target, history, NULL_UI)
    assert json.loads((models / "routing.json").read_text()) == {"weights": {"1.0.0": 100}, "sticky_header": "X-User"}
    assert target.served_versions() == ["1.0.0"]


def test_offers_waiting_together_run_in_one_call_with_the_same_measures() -> None:
    gate = threading.Event()
    cand = Model(lambda i: {"y": i["x"][:, 0] + (i["x"][:, 0] > 5) * 10.0}, gate)  # rows above 5 disagree
    shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, ShadowConfig("1.1.0", queue=100)), Metrics())
    for v in range(40):
        x = np.array([[float(v)]])
        shadow.on_response(prediction(x, x[:, 0]))
    gate.set()
    wait(lambda: (shadow.snapshot()["pairs"] or [{}])[0].get("requests") == 40)
    pair = shadow.snapshot()["pairs"][0]
    assert (pair["rows"], pair["agreements"]) == (40, 6)  # 0..5 agree, whichever call each row ran in
    # each drain (≤ 2 here: the held one, then what waited): one offer alone (timed), the others in one call
    assert 2 <= cand.calls <= 4
    assert 1 <= pair["candidate_latency_ms"]["count"] <= 2 < cand.calls + 1  # only offers run alone are timed
    shadow.stop()


def test_the_workers_measures_add_up_in_the_shared_directory(tmp_path: Any) -> None:
    """Several uvicorn workers: each evaluator writes ``shadow-<pid>.json`` to the shared directory; the
    supervisor's document is their sum (rows, agreements, queue counts, latencies, the most disagreeing rows)."""
    import os

    from runtime.shadow import shared_snapshot

    cfg = ShadowConfig("1.1.0", tolerance=0.01, keep=3)
    x = np.full((4, 1), 10.0)
    for worker, factor in (("101", [1.0, 1.5, 3.0, 1.0]), ("202", [1.0, 1.0, 1.0, 9.0])):
        cand = Model(lambda i, f=factor: {"y": i["x"][:, 0] * np.array(f)})
        shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, cfg), Metrics(), share_dir=str(tmp_path))
        shadow.on_response(prediction(x, x[:, 0]))
        shadow.on_response(prediction(x, x[:, 0]))
        wait(lambda s=shadow: (s.snapshot()["pairs"] or [{}])[0].get("requests") == 2)
        shadow.stop()  # the last write
        os.replace(tmp_path / f"shadow-{os.getpid()}.json", tmp_path / f"shadow-{worker}.json")
    doc = shared_snapshot(str(tmp_path), sensitive=False)
    (pair,) = doc["pairs"]
    # worker 101: 2 of 4 rows agree per request; worker 202: 3 of 4 → (4 + 6) of 16
    assert (pair["requests"], pair["rows"], pair["agreements"], pair["agreement"]) == (4, 16, 10, 0.625)
    assert doc["queue"]["offered"] == 4 and doc["queue"]["dropped"] == 0 and len(doc["workers"]) == 2
    assert sorted(w["rows"] for w in doc["workers"]) == [8, 8]
    assert pair["candidate_latency_ms"]["count"] >= 2  # both workers' timed offers
    assert [d["candidate"] for d in pair["disagreements"]] == [[90.0], [90.0], [30.0]]  # keep 3 of all
    assert doc["shadow"]["version"] == "1.1.0"
    hidden = shared_snapshot(str(tmp_path), sensitive=True)
    assert hidden["pairs"][0]["disagreements"] == "not stored (runtime.auth.sensitive_data)"
    assert shared_snapshot(str(tmp_path / "none"), sensitive=False)["pairs"] == []
