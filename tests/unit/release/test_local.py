"""The local target and store through ``release.ops``: routing.json and release-local.json, no server, no CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mldeploy.release import ops
from mldeploy.release.state import TransitionError
from mldeploy.release.stores import LocalHistory
from mldeploy.release.targets.local import LocalTarget
from mldeploy.ui import NULL_UI
from tests.unit.fakes import project

CONFIG = "name: demo\nmodel:\n  path: model.onnx\n  version: {}\n"


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    monkeypatch.setenv("MLDEPLOY_MODELS_DIR", str(models))
    for version in ("1.0.0", "1.1.0"):
        (models / version).mkdir(parents=True)
        (models / version / "model.json").write_text("{}")
    (models / "routing.json").write_text(json.dumps({"weights": {"1.0.0": 100}, "sticky_header": "X-User"}))
    return models


def release(tmp_path: Path, version: str) -> tuple[LocalTarget, LocalHistory]:
    target = LocalTarget(project(CONFIG.format(version), root=tmp_path), NULL_UI)
    return target, LocalHistory(target.state_path, git_commit="abc")


def weights(models: Path) -> dict[str, int]:
    return json.loads((models / "routing.json").read_text())["weights"]


def test_first_use_adopts_the_only_version_then_canary_promote_rollback(tmp_path: Path, models: Path) -> None:
    (models / "1.1.0" / "model.json").unlink()  # only 1.0.0 is packaged yet
    target, history = release(tmp_path, "1.0.0")
    with pytest.raises(TransitionError, match="1.0.0 is now the stable local version"):
        target.adopt_stable(history)
    (models / "1.1.0" / "model.json").write_text("{}")
    target, history = release(tmp_path, "1.1.0")
    target.adopt_stable(history)  # already adopted: nothing happens
    result = ops.canary(target, history, NULL_UI, percent=10, image="1.1.0", version="1.1.0")
    assert weights(models) == {"1.0.0": 90, "1.1.0": 10}
    assert result["canary"] == {"version": "1.1.0", "percent": 10} and result["target"] == "local"
    assert json.loads((models / "routing.json").read_text())["sticky_header"] == "X-User"
    ops.canary(target, history, NULL_UI, percent=50, image="1.1.0", version="1.1.0")
    ops.promote(target, history, NULL_UI)
    assert weights(models) == {"1.1.0": 100}
    ops.rollback(target, history, NULL_UI)
    assert weights(models) == {"1.0.0": 100}
    with pytest.raises(TransitionError, match="no earlier local version to roll back to"):
        ops.rollback(target, history, NULL_UI)
    with pytest.raises(TransitionError, match="version 9.9.9 is not in"):
        ops.rollback(target, history, NULL_UI, to="9.9.9")
    assert [(r.action, r.version, r.outcome) for r in history.list()] == [
        ("up", "1.0.0", "succeeded"), ("canary", "1.1.0", "promoted"), ("canary", "1.1.0", "promoted"),
        ("promote", "1.1.0", "succeeded"), ("rollback", "1.0.0", "succeeded")]
    assert all(r.actor and r.git_commit == "abc" for r in history.list())


def test_a_local_canary_rollback_routes_everything_back(tmp_path: Path, models: Path) -> None:
    target, history = release(tmp_path, "1.1.0")
    target.adopt_stable(history)  # two versions present: nothing adopted, nothing deployed
    assert target.snapshot().stable is None
    history.path.parent.mkdir(parents=True, exist_ok=True)
    history.path.write_text(json.dumps({"stable": "1.0.0", "canary": None, "history": []}))
    ops.canary(target, history, NULL_UI, percent=30, image="1.1.0", version="1.1.0")
    ops.rollback(target, history, NULL_UI, reason="looked wrong")
    assert weights(models) == {"1.0.0": 100} and target.snapshot().canary is None
    assert [(r.action, r.outcome) for r in history.list()] == [("canary", "rolled_back"), ("rollback", "succeeded")]
