"""``--target local``: canary / promote / rollback drive the runtime's routing.json (through the real CLI), and
the runtime's own Router accepts every file written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from runtime.routing import Router
from tests.release_helpers import cli, ok, serve_models, write_project


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

    proc = cli(["canary", "--percent", "10", *local], project, env)  # the current model becomes the stable one
    assert proc.returncode == 10 and "1.0.0 is now the stable local version" in proc.stderr.replace("\n", " ")
    proc = cli(["canary", "--percent", "10", *local], project, env)
    assert proc.returncode == 10 and "1.0.0 is already the stable version" in proc.stderr.replace("\n", " ")
    proc = cli(["promote", *local], project, env)
    assert proc.returncode == 10 and "nothing to promote" in proc.stderr

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
    assert proc.returncode == 10 and "already active" in proc.stderr and "1.1.0" in proc.stderr
    write_project(project, version="1.1.0")

    ok(["promote", *local], project, env)
    assert routing(models) == {"1.1.0": 100}
    ok(["rollback", *local], project, env)  # no canary: back to the previous stable version
    assert routing(models) == {"1.0.0": 100}
    proc = cli(["rollback", *local], project, env)  # a second rollback: 1.0.0 is the bottom of the lineage
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 10 and "no earlier local version" in err
    assert "the history has only" not in err and "the history also holds 1.1.0" in err and "--to 1.1.0" in err
    ok(["rollback", "--to", "1.1.0", *local], project, env)
    assert routing(models) == {"1.1.0": 100}

    records = json.loads(ok(["history", "--json", *local], project, env).stdout)["deployments"][::-1]
    assert [(r["action"], r["version"]) for r in records] == [
        ("up", "1.0.0"), ("canary", "1.1.0"), ("canary", "1.1.0"), ("promote", "1.1.0"), ("rollback", "1.0.0"),
        ("rollback", "1.1.0")]
    proc = cli(["canary", "--auto", *local], project, env)
    assert proc.returncode == 2 and "--auto --target local needs release.gates" in proc.stderr  # no alarms locally


IRIS = [[5.1, 3.5, 1.4, 0.2]]


def iris_model(path: Path, c: float) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(C=c, max_iter=500).fit(x, y), path)


def iris_project(root: Path, version: str, c: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    iris_model(root / "model.joblib", c)
    (root / "mldeploy.yaml").write_text(f"name: iris\nmodel:\n  path: model.joblib\n  version: {version}\n"
                                        "  convert: none\n  class_labels: [setosa, versicolor, virginica]\n")
    return root


@pytest.mark.slow
def test_local_release_drives_the_real_runtime(tmp_path: Path):
    """Packages each version into the models folder and moves the traffic of a running `python -m runtime`."""
    project = iris_project(tmp_path / "iris", "1.0.0", c=1.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")} | {"NO_COLOR": "1"}
    models = project / ".mldeploy" / "default" / "models"
    local = ["--target", "local"]
    assert cli(["canary", "--percent", "10", *local], project, env).returncode == 10  # 1.0.0 becomes stable
    iris_project(project, "1.1.0", c=0.05)
    ok(["canary", "--percent", "50", *local], project, env)
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == ["1.0.0", "1.1.0"]
    with serve_models(tmp_path, models) as url, httpx.Client() as client:

        def versions(n: int) -> set[str]:
            return {client.post(url + "/predict", json={"inputs": IRIS}).json()["version"] for _ in range(n)}

        assert versions(60) == {"1.0.0", "1.1.0"}  # 50/50: both answer (p(one missing) ≈ 1e-18)
        ok(["promote", *local], project, env)
        time.sleep(1.3)  # the runtime re-reads routing.json at most once a second
        assert versions(20) == {"1.1.0"}
        ok(["rollback", *local], project, env)
        time.sleep(1.3)
        assert versions(20) == {"1.0.0"}
