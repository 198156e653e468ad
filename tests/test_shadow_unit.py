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
                   "shadow": {"version": "1.1.0", "sample": 0.25, "queue": 64, "queue_bytes": 64 * 2**20}}
    router = Router(["1.0.0", "1.1.0"], models / "routing.json")
    assert router.shadow == ShadowConfig("1.1.0", 0.25) and router.weights == {"1.0.0": 100}  # the runtime took it
    assert target.served_versions() == ["1.0.0", "1.1.0"]  # a container must load the shadow candidate
    ops.canary(target, history, NULL_UI, percent=10, image="1.1.0", version="1.1.0")
    assert target.shadow() == doc["shadow"]  # a weight move keeps it
    ops.rollback(target, history, NULL_UI)
    assert json.loads((models / "routing.json").read_text()) == {"weights": {"1.0.0": 100}, "sticky_header": "X-User"}
    assert target.served_versions() == ["1.0.0"]


def test_local_set_shadow_writes_the_configured_queue_and_keeps_keys_set_by_hand(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``release.gates.queue`` / ``queue_bytes`` are the source; ``tolerance`` and ``keep`` set by hand in
    routing.json survive ``canary --shadow`` (a hand-set ``queue`` does not: the config says otherwise)."""
    import json

    from mldeploy.release.targets.local import LocalTarget
    from mldeploy.ui import NULL_UI
    from runtime.routing import Router
    from tests.unit.fakes import project

    models = tmp_path / "models"
    monkeypatch.setenv("MLDEPLOY_MODELS_DIR", str(models))
    for version in ("1.0.0", "1.1.0"):
        (models / version).mkdir(parents=True)
        (models / version / "model.json").write_text("{}")
    (models / "routing.json").write_text(json.dumps({"weights": {"1.0.0": 100, "1.1.0": 0}, "shadow": {
        "version": "1.0.9", "sample": 0.5, "tolerance": 0.01, "keep": 5, "queue": 3, "queue_bytes": 2048}}))
    config = ("name: demo\nmodel:\n  path: model.onnx\n  version: 1.1.0\n"
              "release:\n  gates:\n    queue: 16\n    queue_bytes: 1048576\n")
    target = LocalTarget(project(config, root=tmp_path), NULL_UI)
    target.set_shadow("1.1.0", 0.25)
    assert json.loads((models / "routing.json").read_text())["shadow"] == {
        "version": "1.1.0", "sample": 0.25, "tolerance": 0.01, "keep": 5, "queue": 16, "queue_bytes": 1048576}
    router = Router(["1.0.0", "1.1.0"], models / "routing.json")
    assert router.shadow == ShadowConfig("1.1.0", 0.25, 0.01, 5, 16, 1048576)  # the runtime takes all of it


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


def test_aws_shadow_env_queue_bounds_reach_the_routing_json_the_runtime_reads(tmp_path: Any) -> None:
    """``MLDEPLOY_SHADOW_QUEUE`` / ``MLDEPLOY_SHADOW_QUEUE_BYTES`` (the shadow revision's, from
    ``release.gates``) → ``shadow_requested`` → ``serving_folder``'s routing.json → ``ShadowConfig``; out of the
    runtime's ranges (or not integers) the task exits naming the variable, before anything is downloaded."""
    from runtime import model_fetch
    from runtime.model_fetch import FetchError, S3Source
    from runtime.routing import Router

    def artifact(folder: Any, version: str) -> Any:
        folder.mkdir(parents=True)
        m = Manifest(name="m", version=version, format="onnx", source_format="onnx", file="m.onnx", sha256="0",
                     size_bytes=1, created_at="now", inputs=[Tensor(name="x", shape=[None, 1])],
                     outputs=[Tensor(name="y", role="prediction")])
        (folder / "model.json").write_text(m.model_dump_json())
        return folder

    stable = S3Source("b", "app/default/1.0.0/ab/", "ab" * 32)
    env = {"MLDEPLOY_SHADOW_S3_PREFIX": "app/default/1.1.0/cd/", "MLDEPLOY_SHADOW_INDEX_SHA256": "cd" * 32,
           "MLDEPLOY_SHADOW_VERSION": "1.1.0", "MLDEPLOY_SHADOW_SAMPLE": "0.5"}
    shadow = model_fetch.shadow_requested(stable, {**env, "MLDEPLOY_SHADOW_QUEUE": "8",
                                                   "MLDEPLOY_SHADOW_QUEUE_BYTES": "4096"})
    assert shadow is not None and (shadow.queue, shadow.queue_bytes) == (8, 4096)
    default = model_fetch.shadow_requested(stable, env)  # a revision written before the variables existed
    assert default is not None and (default.queue, default.queue_bytes) == (64, 64 * 2**20)
    for name, bad, words in [("MLDEPLOY_SHADOW_QUEUE", "0", "not in 1..10000"),
                             ("MLDEPLOY_SHADOW_QUEUE", "many", "not an integer"),
                             ("MLDEPLOY_SHADOW_QUEUE_BYTES", "1023", "not in 1024..")]:
        with pytest.raises(FetchError, match=f"{name}: .*{words}"):
            model_fetch.shadow_requested(stable, {**env, name: bad})
    folder = model_fetch.serving_folder(artifact(tmp_path / "s", "1.0.0"), artifact(tmp_path / "c", "1.1.0"),
                                        "1.1.0", shadow.sample, tmp_path / "root", queue=shadow.queue,
                                        queue_bytes=shadow.queue_bytes)
    router = Router(["1.0.0", "1.1.0"], folder / "routing.json")
    assert router.shadow == ShadowConfig("1.1.0", 0.5, queue=8, queue_bytes=4096)


def test_the_report_shows_the_drops_over_the_byte_budget_next_to_the_count_drops() -> None:
    """``canary --report``'s queue line and ``--json`` queue from a real ``/shadow`` document (the evaluator's
    ``snapshot``): offers past the count bound and past the byte budget are both dropped; the line says how many
    of the drops were the budget's."""
    import json

    from mldeploy.cli.render.shadow import queue_line, report_doc

    gate = threading.Event()
    cand = Model(lambda i: {"y": i["x"][:, 0]}, gate)
    cfg = ShadowConfig("1.1.0", queue=2, queue_bytes=1024)
    shadow = ShadowEvaluator(repo(Model(lambda i: None), cand, cfg), Metrics())
    small, big = np.ones((1, 1)), np.ones((100, 1))  # 16 bytes an offer; 1600 bytes: past the budget alone
    try:
        shadow.on_response(prediction(small, small[:, 0]))
        for _ in range(3):
            shadow.on_response(prediction(big, big[:, 0]))
        for _ in range(10):
            shadow.on_response(prediction(small, small[:, 0]))
        doc = {"target": "local", "candidate": "1.1.0", "measures": None, "gates": [],
               "queue": json.loads(shadow.render())["queue"]}  # what GET /shadow sends
    finally:
        gate.set()
        shadow.stop()
    q = doc["queue"]
    assert q["offered"] == 14 and q["dropped_bytes"] == 3 and q["dropped"] >= 3 + 10 - 3  # ≤ 1 taken + 2 waiting
    line = queue_line(q)
    assert line.startswith(f"queue: {q['depth']}/2 waiting (")
    assert f"14 offered, dropped {q['dropped']} (3 over the byte budget)" in line
    out = report_doc(doc)
    assert out["queue"]["dropped_bytes"] == 3 and out["queue"]["bytes_capacity"] == 1024
    assert json.loads(json.dumps(out))["queue"] == out["queue"]  # the --json document
    old = {k: v for k, v in q.items() if k not in ("dropped_bytes", "bytes", "bytes_capacity")}  # older runtime
    assert report_doc({**doc, "queue": old})["queue"]["dropped_bytes"] == 0
    assert queue_line(old).endswith(f"dropped {q['dropped']} (0 over the byte budget)")
    assert report_doc({**doc, "queue": None})["queue"] is None  # AWS: no queue in CloudWatch
