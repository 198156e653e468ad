"""The model-contract diff: which changes between two model.json documents break clients."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mldeploy.errors import ExitCode, MldeployError
from mldeploy.release.contract_diff import LABELS_INLINE_MAX, check, contract_of, describe, diff

IRIS: dict[str, Any] = {
    "name": "iris", "version": "1.0.0", "task": "classification",
    "inputs": [{"name": "input", "dtype": "float32", "shape": [None, 4]}],
    "outputs": [{"name": "label", "dtype": "int64", "shape": [None], "role": "label"},
                {"name": "probabilities", "dtype": "float32", "shape": [None, 3], "role": "probabilities"}],
    "class_labels": ["setosa", "versicolor", "virginica"],
    "feature_names": ["sl", "sw", "pl", "pw"],
}


def changed(**edits: Any) -> dict[str, Any]:
    doc = copy.deepcopy(IRIS)
    doc.update(edits)
    return doc


def test_identical_contracts_have_no_changes() -> None:
    assert diff(IRIS, changed(version="1.1.0")) == []
    assert diff(contract_of(IRIS), IRIS) == []  # a stored contract compares like the manifest it came from


def test_renamed_input_is_one_breaking_change_naming_both() -> None:
    changes = diff(IRIS, changed(inputs=[{"name": "features", "dtype": "float32", "shape": [None, 4]}]))
    assert [(c.field, c.breaking) for c in changes] == [("inputs.input", True)]
    assert changes[0].what == "input 'input' renamed to 'features'"


def test_dtype_change_and_removed_input_break() -> None:
    two = changed(inputs=[{"name": "input", "dtype": "float32", "shape": [None, 4]},
                          {"name": "mask", "dtype": "int64", "shape": [None, 4]}])
    changes = diff(two, changed(inputs=[{"name": "input", "dtype": "float64", "shape": [None, 4]}]))
    assert sorted(c.what for c in changes) == ["input 'input' dtype float32 → float64", "input 'mask' removed"]
    assert all(c.breaking for c in changes)


def test_feature_count_breaks_but_a_dimension_made_dynamic_does_not() -> None:
    wider = diff(IRIS, changed(inputs=[{"name": "input", "dtype": "float32", "shape": [None, 5]}]))
    assert [c.breaking for c in wider] == [True] and "[?, 4] → [?, 5]" in wider[0].what
    dynamic = diff(IRIS, changed(inputs=[{"name": "input", "dtype": "float32", "shape": [None, None]}]))
    assert [(c.breaking, c.what) for c in dynamic] == [(False, "input 'input' axis 1 4 → dynamic")]
    batch_only = diff(IRIS, changed(inputs=[{"name": "input", "dtype": "float32", "shape": [8, 4]}]))
    assert batch_only == []  # the batch axis is the server's business


def test_label_set_change_breaks_and_names_the_labels_a_reorder_does_not() -> None:
    changes = diff(IRIS, changed(class_labels=["setosa", "versicolor", "hybrid"]))
    assert len(changes) == 1 and changes[0].breaking
    assert changes[0].what == "class labels changed: removed 'virginica'; added 'hybrid'"
    reordered = diff(IRIS, changed(class_labels=["virginica", "setosa", "versicolor"]))
    assert [c.breaking for c in reordered] == [False]


def test_long_label_lists_are_stored_as_a_hash_and_still_compared() -> None:
    many = [f"class-{i:05d}" for i in range(1000)]
    assert len(json.dumps(many)) > LABELS_INLINE_MAX
    stored = contract_of(changed(class_labels=many))
    assert "labels" not in stored and stored["labels_count"] == 1000
    assert len(json.dumps(stored)) < 1024  # fits an SSM history record next to the rest
    changes = diff(stored, changed(class_labels=many[:-1] + ["other"]))
    assert [c.breaking for c in changes] == [True] and "1000 → 1000 labels" in changes[0].what
    assert diff(stored, changed(class_labels=many)) == []


def test_response_fields_removed_break_added_do_not() -> None:
    no_proba = changed(outputs=[{"name": "label", "dtype": "int64", "shape": [None], "role": "label"}])
    changes = diff(IRIS, no_proba)
    assert {c.what for c in changes} == {"response field 'probabilities' removed", "response field 'top_k' removed"}
    assert all(c.breaking for c in changes)
    back = diff(no_proba, IRIS)
    assert back and not any(c.breaking for c in back)


def test_task_change_breaks_and_breaking_changes_come_first() -> None:
    changes = diff(IRIS, changed(task="regression", class_labels=["setosa", "versicolor", "virginica", "x"],
                                 inputs=[{"name": "input", "dtype": "float32", "shape": [None, None]}]))
    assert [c.breaking for c in changes] == sorted([c.breaking for c in changes], reverse=True)
    assert describe(changes)[0].startswith("BREAKING task classification → regression")


def test_check_refuses_breaking_changes_with_exit_2_unless_allowed() -> None:
    changes = diff(IRIS, changed(class_labels=["a", "b", "c"]))
    with pytest.raises(MldeployError) as e:
        check(changes, allow_breaking=False, running="1.0.0", candidate="1.1.0")
    assert e.value.exit_code == ExitCode.USAGE
    assert "class labels changed" in e.value.message and "1.1.0" in e.value.message
    assert "--allow-breaking" in (e.value.hint or "")
    check(changes, allow_breaking=True, running="1.0.0", candidate="1.1.0")
    check(diff(IRIS, changed(class_labels=["virginica", "setosa", "versicolor"])), allow_breaking=False,
          running="1.0.0", candidate="1.1.0")


# -- the AWS side: the running contract comes from the history (ops.canary's before_start) ---------------------

def _deployed(contract: dict[str, Any] | None) -> tuple[Any, Any]:
    from mldeploy.release.history import Outcome, Record
    from tests.unit.release.fakes import FakeTarget, MemoryHistory

    return FakeTarget(), MemoryHistory([Record(id=1, action="up", version="1.0.0", image="img:v1",
                                               task_definition="td:1", revision=1, outcome=Outcome.succeeded,
                                               contract=contract)])


def _gate(monkeypatch: pytest.MonkeyPatch, candidate: dict[str, Any], allow: bool = False) -> Any:
    from types import SimpleNamespace

    from mldeploy.release import contracts
    from mldeploy.ui import NULL_UI

    monkeypatch.setattr(contracts, "project_contract", lambda project: contract_of(candidate))
    project = SimpleNamespace(config=SimpleNamespace(model=SimpleNamespace(version="1.1.0")))
    return contracts.aws_gate(project, NULL_UI, allow_breaking=allow, from_project=True)  # type: ignore[arg-type]


def test_aws_canary_with_a_changed_label_set_is_refused_before_any_record_or_weight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.release import ops
    from mldeploy.ui import NULL_UI

    target, history = _deployed(contract_of(IRIS))
    gate = _gate(monkeypatch, changed(class_labels=["setosa", "versicolor", "hybrid"]))
    with pytest.raises(MldeployError) as e:
        ops.canary(target, history, NULL_UI, percent=10, image="img:v2", version="1.1.0", before_start=gate)
    assert e.value.exit_code == ExitCode.USAGE and "removed 'virginica'; added 'hybrid'" in e.value.message
    assert target.calls == [("prepare", "img:v2")]  # the task definition may exist; no weight moved
    assert history.rows() == [("up", "1.0.0", "succeeded")]


def test_aws_canary_records_the_candidate_contract_and_promote_carries_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.release import ops
    from mldeploy.release.contracts import running_contract
    from mldeploy.ui import NULL_UI

    target, history = _deployed(contract_of(IRIS))
    wider = changed(version="1.1.0", inputs=[{"name": "input", "dtype": "float32", "shape": [None, None]}])
    ops.canary(target, history, NULL_UI, percent=10, image="img:v2", version="1.1.0",
               before_start=_gate(monkeypatch, wider))
    assert history.records[-1].contract == contract_of(wider)
    ops.promote(target, history, NULL_UI)
    assert running_contract(history.list(), target.ref_of) == contract_of(wider)


def test_aws_history_without_a_contract_is_not_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.release import ops
    from mldeploy.ui import NULL_UI

    target, history = _deployed(None)  # recorded before contracts were
    ops.canary(target, history, NULL_UI, percent=10, image="img:v2", version="1.1.0",
               before_start=_gate(monkeypatch, changed(class_labels=["a", "b", "c"])))
    assert history.rows()[-1] == ("canary", "1.1.0", "active")


RECORDS: dict[str, Any] = {
    "name": "loans", "version": "1.0.0", "task": "classification",
    "inputs": [{"name": "income", "dtype": "float64", "shape": [None], "allow_missing": True},
               {"name": "city", "dtype": "string", "shape": [None], "categories": ["paris", "rome"]}],
    "outputs": [{"name": "label", "dtype": "int64", "shape": [None], "role": "label"}],
}


def _records(**inputs: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(RECORDS)
    for t in doc["inputs"]:
        t.update(inputs.get(t["name"], {}))
        for k in [k for k, v in t.items() if v is None]:
            del t[k]
    return doc


def test_an_input_that_stops_taking_null_breaks_one_that_starts_does_not() -> None:
    stops = diff(RECORDS, _records(income={"allow_missing": None}))
    assert [(c.field, c.breaking) for c in stops] == [("inputs.income", True)]
    assert "no longer takes null" in stops[0].what
    starts = diff(_records(income={"allow_missing": None}), RECORDS)
    assert [(c.breaking, c.what) for c in starts] == [(False, "input 'income' now takes null")]


def test_a_removed_category_breaks_an_added_one_does_not() -> None:
    changes = diff(RECORDS, _records(city={"categories": ["paris", "oslo"]}))
    assert [(c.breaking, c.what) for c in changes] == [
        (True, "input 'city' categories removed: 'rome'"), (False, "input 'city' categories added: 'oslo'")]
    limited = diff(_records(city={"categories": None}), RECORDS)
    assert [c.breaking for c in limited] == [True] and "limited to 2 categories" in limited[0].what
    freed = diff(RECORDS, _records(city={"categories": None}))
    assert [c.breaking for c in freed] == [False]
    # a stored contract (the SSM history record) compares like the manifest, long category lists by hash
    many = _records(city={"categories": [f"city-{i:04d}" for i in range(500)]})
    stored = contract_of(many)
    assert "categories" not in stored["inputs"][1] and stored["inputs"][1]["categories_count"] == 500
    assert diff(stored, many) == []
    assert [c.breaking for c in diff(stored, _records(city={"categories": ["city-0000"]}))] == [True]
