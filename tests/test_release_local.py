"""``--target local``: canary / promote / rollback drive the runtime's routing.json (through the real CLI), and
the runtime's own Router accepts every file written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runtime.routing import Router
from tests.release_helpers import cli, ok, write_project


def add_version(models: Path, version: str) -> None:
    """A packaged artifact folder (the routing only needs the folder and its model.json)."""
    (models / version).mkdir(parents=True)
    (models / version / "model.json").write_text(json.dumps({"version": version}))


def routing(models: Path) -> dict[str, int]:
    doc = json.loads((models / "routing.json").read_text())
    router = Router(sorted(p.name for p in models.iterdir() if p.is_dir()), models / "routing.json")
    assert router.weights == {v: w for v, w in doc["weights"].items() if w > 0}  # the runtime took the file
    return doc["weights"]


def test_local_canary_promote_rollback(tmp_path: Path):
    project = write_project(tmp_path / "proj", version="1.0.0")
    models = tmp_path / "models"
    add_version(models, "1.0.0")
    (models / "routing.json").write_text(json.dumps({"weights": {"1.0.0": 100}, "sticky_header": "X-User"}))
    env = {**os.environ, "MLDEPLOY_MODELS_DIR": str(models), "NO_COLOR": "1", "COLUMNS": "200"}
    local = ["--target", "local"]

    proc = cli(["canary", "--percent", "10", *local], project, env)  # the current model is the stable one
    assert proc.returncode == 1 and "1.0.0 is already the stable version" in proc.stderr.replace("\n", " ")
    proc = cli(["promote", *local], project, env)
    assert proc.returncode == 1 and "nothing to promote" in proc.stderr

    write_project(project, version="1.1.0")
    add_version(models, "1.1.0")
    out = json.loads(ok(["canary", "--percent", "10", "--json", *local], project, env).stdout)
    assert out["canary"] == {"version": "1.1.0", "percent": 10}
    assert routing(models) == {"1.0.0": 90, "1.1.0": 10}
    assert json.loads((models / "routing.json").read_text())["sticky_header"] == "X-User"  # other keys kept
    ok(["canary", "--percent", "50", *local], project, env)
    assert routing(models) == {"1.0.0": 50, "1.1.0": 50}

    write_project(project, version="1.2.0")
    proc = cli(["canary", "--percent", "10", *local], project, env)
    assert proc.returncode == 1 and "already active" in proc.stderr and "1.1.0" in proc.stderr
    write_project(project, version="1.1.0")

    ok(["promote", *local], project, env)
    assert routing(models) == {"1.1.0": 100}
    ok(["rollback", *local], project, env)  # no canary: back to the previous stable version
    assert routing(models) == {"1.0.0": 100}
    proc = cli(["rollback", *local], project, env)
    assert proc.returncode == 1 and "no earlier local version" in proc.stderr
    ok(["rollback", "--to", "1.1.0", *local], project, env)
    assert routing(models) == {"1.1.0": 100}

    records = json.loads(ok(["history", "--json", *local], project, env).stdout)["deployments"][::-1]
    assert [(r["action"], r["version"]) for r in records] == [
        ("up", "1.0.0"), ("canary", "1.1.0"), ("canary", "1.1.0"), ("promote", "1.1.0"), ("rollback", "1.0.0"),
        ("rollback", "1.1.0")]
    proc = cli(["canary", "--auto", *local], project, env)
    assert proc.returncode == 2 and "--auto needs --target aws" in proc.stderr
