"""``release.ops`` against a FakeTarget and an in-memory history: every sequence, every failure path recorded."""

from __future__ import annotations

import pytest

from mldeploy.errors import NotReadyError, RolledBackError
from mldeploy.release import ops
from mldeploy.release.history import Outcome, Record
from mldeploy.release.state import TransitionError
from mldeploy.ui import NULL_UI
from tests.unit.release.fakes import FakeTarget, MemoryHistory


def deployed() -> tuple[FakeTarget, MemoryHistory]:
    """v1 on the stable service, recorded by ``up``."""
    history = MemoryHistory([Record(id=1, action="up", version="1.0.0", image="img:v1", task_definition="td:1",
                                    revision=1, outcome=Outcome.succeeded)])
    return FakeTarget(), history


def start(target: FakeTarget, history: MemoryHistory, percent: int = 10, image: str = "img:v2",
          version: str = "1.1.0") -> dict:
    return ops.canary(target, history, NULL_UI, percent=percent, image=image, version=version)


def test_canary_start_records_an_active_canary_and_returns_the_summary() -> None:
    target, history = deployed()
    result = start(target, history)
    assert target.calls == [("prepare", "img:v2"), ("start", "td:2", 10)]
    (_, canary) = history.records
    assert (canary.action, canary.version, canary.image, canary.task_definition, canary.revision, canary.percent,
            canary.outcome, canary.from_revision) == ("canary", "1.1.0", "img:v2", "td:2", 2, 10, "active", 1)
    assert canary.finished_at is None and canary.actor == "tester"
    assert result["canary"] == "td:2" and result["percent"] == 10 and result["record"]["id"] == 2


def test_shift_moves_the_weights_and_updates_the_canary_record() -> None:
    target, history = deployed()
    start(target, history)
    result = ops.canary(target, history, NULL_UI, percent=50, image=None, version="1.1.0")
    assert target.calls[-1] == ("shift", 50) and result["percent"] == 50
    assert [(r.action, r.percent, r.outcome) for r in history.records[1:]] == [("canary", 50, "active")]


def test_shift_records_gives_each_weight_move_its_own_record() -> None:
    target, history = deployed()
    target.shift_records = True
    start(target, history)
    ops.canary(target, history, NULL_UI, percent=50, image=None, version="1.1.0")
    assert [(r.action, r.version, r.percent) for r in history.records[1:]] == [("canary", "1.1.0", 10),
                                                                             ("canary", "1.1.0", 50)]
    ops.promote(target, history, NULL_UI)  # closes every record of that canary, not only the newest
    assert [r.outcome for r in history.records[1:3]] == ["promoted", "promoted"]


def test_promote_swaps_the_stable_then_removes_the_canary() -> None:
    target, history = deployed()
    start(target, history)
    result = ops.promote(target, history, NULL_UI)
    assert target.calls[2:] == [("swap", "td:2"), ("remove",)]
    assert history.rows() == [("up", "1.0.0", "succeeded"), ("canary", "1.1.0", "promoted"),
                              ("promote", "1.1.0", "succeeded")]
    promote = history.records[2]
    assert (promote.task_definition, promote.percent, promote.from_revision, promote.image) == ("td:2", 100, 1,
                                                                                                "img:v2")
    assert history.records[1].percent == 100 and result["stable"] == "td:2" and result["canary"] is None


def test_rollback_with_a_canary_removes_it_and_keeps_the_stable() -> None:
    target, history = deployed()
    start(target, history, percent=25)
    ops.rollback(target, history, NULL_UI, reason="bad metrics")
    assert target.calls[-1] == ("remove",) and target.stable == "td:1"
    canary, rollback = history.records[1:]
    assert (canary.outcome, canary.reason) == ("rolled_back", "bad metrics")
    assert (rollback.action, rollback.version, rollback.task_definition, rollback.percent, rollback.outcome,
            rollback.from_revision, rollback.reason) == ("rollback", "1.0.0", "td:1", 0, "succeeded", 2,
                                                         "canary removed at 25%: bad metrics")


def test_rollback_without_a_canary_walks_the_lineage_back_and_stops_at_the_oldest() -> None:
    target, history = deployed()
    start(target, history)
    ops.promote(target, history, NULL_UI)
    ops.rollback(target, history, NULL_UI)
    assert target.stable == "td:1" and history.rows()[-1] == ("rollback", "1.0.0", "succeeded")
    with pytest.raises(TransitionError, match="no earlier version of svc to roll back to"):
        ops.rollback(target, history, NULL_UI)
    ops.rollback(target, history, NULL_UI, to="1.1.0")  # --to a version from the history
    assert target.stable == "td:2" and history.records[-1].reason == "rollback to 1.1.0"
    with pytest.raises(TransitionError, match=r"1.1.0 \(rev td:2\) is already running on svc"):
        ops.rollback(target, history, NULL_UI, to="1.1.0")
    with pytest.raises(TransitionError, match="unknown 9.9.9"):
        ops.rollback(target, history, NULL_UI, to="9.9.9")


def test_a_canary_that_never_becomes_healthy_is_removed_and_recorded_failed() -> None:
    target, history = deployed()
    target.fail_start = NotReadyError("service svc-canary not stable after 10s", hint="look at the logs")
    with pytest.raises(RolledBackError, match="never became healthy and was removed: service svc-canary") as e:
        start(target, history)
    assert e.value.hint == "look at the logs"
    assert target.calls[-1] == ("remove",) and target.canary is None
    assert history.rows()[-1] == ("canary", "1.1.0", "failed")
    assert history.records[-1].reason == "service svc-canary not stable after 10s" and history.records[-1].finished_at


def test_a_failed_promote_rollout_is_recorded_and_the_canary_keeps_running() -> None:
    target, history = deployed()
    start(target, history)
    target.fail_swap = RolledBackError("circuit breaker rolled back")
    with pytest.raises(RolledBackError):
        ops.promote(target, history, NULL_UI)
    assert ("remove",) not in target.calls and target.canary == "td:2"
    assert history.rows()[1:] == [("canary", "1.1.0", "active"), ("promote", "1.1.0", "failed")]


def test_invalid_moves_change_nothing() -> None:
    target, history = deployed()
    with pytest.raises(TransitionError, match="nothing to promote"):
        ops.promote(target, history, NULL_UI)
    with pytest.raises(TransitionError, match="already the stable version"):
        start(target, history, image="img:v1")
    start(target, history)
    with pytest.raises(TransitionError, match="another one with img:v3"):
        start(target, history, image="img:v3")
    with pytest.raises(TransitionError, match="roll it back before"):
        ops.rollback(target, history, NULL_UI, to="1.0.0")
    assert target.calls == [("prepare", "img:v2"), ("start", "td:2", 10)] and len(history.records) == 2


def test_no_image_builds_one_only_when_a_canary_starts() -> None:
    target, history = deployed()
    built: list[str] = []

    def build() -> tuple[str, str | None]:
        built.append("x")
        return "img:v2@sha256:abc", "sha256:abc"

    ops.canary(target, history, NULL_UI, percent=10, image=None, version="1.1.0", build=build)
    assert built == ["x"] and history.records[-1].digest == "sha256:abc"
    ops.canary(target, history, NULL_UI, percent=20, image=None, version="1.1.0", build=build)
    assert built == ["x"]  # a shift builds nothing


def test_load_reconciles_what_runs_with_the_history() -> None:
    target, history = deployed()
    history.add(Record(action="canary", version="1.3.0", task_definition="td:9"))  # killed; its canary is gone
    history.add(Record(action="promote", version="1.0.0", task_definition="td:1"))  # killed after the swap
    target.images["td:5"] = (None, "img:by-hand")
    target.stable = "td:5"  # changed by hand: no mldeploy version
    cur = ops.load(target, history)
    assert [(r.action, r.outcome) for r in cur.records] == [
        ("up", "succeeded"), ("canary", "failed"), ("promote", "failed"), ("observed", "succeeded")]
    assert cur.records[-1].task_definition == "td:5"
    history.add(Record(action="canary", version="2.0.0", task_definition="td:6"))  # killed before weighting
    target.images["td:6"] = ("2.0.0", "img:v6")
    target.canary, target.percent = "td:6", 0
    cur = ops.load(target, history)
    assert (cur.records[-1].outcome, cur.records[-1].reason) == ("active", "completed by a later release command")
    assert len(ops.load(target, history, reconcile=False).records) == len(cur.records)


def test_an_unobservable_target_is_not_reconciled() -> None:
    target, history = deployed()
    target.observable = False
    target.stable = None
    assert history.rows() == [(r.action, r.version, r.outcome) for r in ops.load(target, history).records]
