"""``mldeploy canary --shadow / --report / --auto`` with ``release.gates`` and the model-contract diff, through the
real CLI (subprocess) against a real ``python -m runtime --models-dir`` on the local target."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.infra import runtime_server
from tests.release_helpers import cli, ok

LOCAL = ["--target", "local"]
GATES = "release:\n  steps: [50, 100]\n  bake_time_s: 0\n  gates: {{min_agreement: {agree}, min_samples: 100, " \
        "sample: 1.0, shadow_timeout_s: 60}}\n"


def iris_project(root: Path, version: str, c: float, labels: str = "[setosa, versicolor, virginica]",
                 extra: str = "") -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(C=c, max_iter=1000).fit(x, y), root / "model.joblib")
    (root / "mldeploy.yaml").write_text(f"name: iris\nmodel:\n  path: model.joblib\n  version: {version}\n"
                                        f"  convert: none\n  class_labels: {labels}\n{extra}")
    return root


def offline_agreement(c_stable: float, c_candidate: float) -> float:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    a = LogisticRegression(C=c_stable, max_iter=1000).fit(x, y).predict(x.astype(np.float32))
    b = LogisticRegression(C=c_candidate, max_iter=1000).fit(x, y).predict(x.astype(np.float32))
    return float((a == b).mean())


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")} | {"NO_COLOR": "1",
                                                                                      "COLUMNS": "200"}


def rows() -> list[list[float]]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)[0].tolist()


@contextmanager
def traffic(url: str) -> Iterator[list[int]]:
    """Iris rows posted in a loop until the block ends (the live requests a shadow phase needs)."""
    stop, statuses = threading.Event(), []

    def loop() -> None:
        with httpx.Client() as c:
            while not stop.is_set():
                for row in rows():
                    if stop.is_set():
                        break
                    statuses.append(c.post(url + "/predict", json={"inputs": [row]}).status_code)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield statuses
    finally:
        stop.set()
        t.join(10)


def wait_shadowed(c: httpx.Client, metrics_url: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(p["requests"] >= n for p in c.get(metrics_url + "/shadow").json()["pairs"]):
        assert time.monotonic() < deadline, c.get(metrics_url + "/shadow").text
        time.sleep(0.05)


def stable_then(project: Path, version: str, c: float, **kw: str) -> None:
    """1.0.0 (C=1) becomes the stable local version, then the project holds ``version``."""
    assert cli(["canary", "--percent", "10", *LOCAL], project, env()).returncode == 10  # adopts 1.0.0 as stable
    iris_project(project, version, c, **kw)


@pytest.mark.slow
def test_shadow_report_matches_offline_and_a_changed_label_set_is_refused(tmp_path: Path) -> None:
    project = iris_project(tmp_path / "iris", "1.0.0", c=1.0)
    models = project / ".mldeploy" / "default" / "models"
    stable_then(project, "1.1.0", c=0.02)
    out = ok(["canary", "--shadow", "--sample", "1", *LOCAL], project, env())
    assert "keeps the contract of 1.0.0" in out.stderr + out.stdout
    doc = json.loads((models / "routing.json").read_text())
    assert doc["weights"] == {"1.0.0": 100, "1.1.0": 0} and doc["shadow"] == {"version": "1.1.0", "sample": 1.0,
                                                                          "queue": 64, "queue_bytes": 64 * 2**20}
    with runtime_server(tmp_path, models_dir=models) as proc, httpx.Client() as c:
        data = rows()
        for i in range(0, len(data), 25):  # paced below the default queue (64): every row is shadowed, none dropped
            for row in data[i:i + 25]:
                assert c.post(proc.url + "/predict", json={"inputs": [row]}).json()["version"] == "1.0.0"
            wait_shadowed(c, proc.metrics_url, i + len(data[i:i + 25]))
        report = json.loads(ok(["canary", "--report", "--json", "--metrics-url", proc.metrics_url, *LOCAL],
                               project, env()).stdout)
        text = ok(["canary", "--report", "--metrics-url", proc.metrics_url, *LOCAL], project, env())
    assert report["queue"]["dropped"] == 0 and report["queue"]["dropped_bytes"] == 0
    assert "150 offered, dropped 0 (0 over the byte budget)" in text.stderr + text.stdout
    m = report["measures"]
    assert report["candidate"] == "1.1.0" and m["rows"] == 150
    assert abs(m["agreement"] - offline_agreement(1.0, 0.02)) <= 1e-6  # all 150 rows shadowed: the same figure
    assert "agreement" in text.stderr + text.stdout and "1.0.0 vs 1.1.0" in text.stderr + text.stdout

    ok(["rollback", *LOCAL], project, env())
    assert "shadow" not in json.loads((models / "routing.json").read_text())  # removed with the canary
    iris_project(project, "1.2.0", c=1.0, labels="[setosa, versicolor, hybrid]")
    proc = cli(["canary", "--shadow", *LOCAL], project, env())
    err = proc.stderr.replace("\n", " ")
    assert proc.returncode == 2, proc.stderr
    assert "class labels changed: removed 'virginica'; added 'hybrid'" in err and "--allow-breaking" in err
    assert json.loads((models / "routing.json").read_text())["weights"] == {"1.0.0": 100}  # nothing moved
    ok(["canary", "--shadow", "--allow-breaking", *LOCAL], project, env())
    assert json.loads((models / "routing.json").read_text())["shadow"]["version"] == "1.2.0"


@pytest.mark.slow
def test_auto_rolls_back_with_exit_6_naming_the_gate_then_passes_and_promotes(tmp_path: Path) -> None:
    project = iris_project(tmp_path / "iris", "1.0.0", c=1.0)
    models = project / ".mldeploy" / "default" / "models"
    stable_then(project, "1.1.0", c=0.02)
    ok(["canary", "--percent", "0", *LOCAL], project, env())  # registers models/1.1.0 so the server loads it
    ok(["rollback", *LOCAL], project, env())
    agreement = offline_agreement(1.0, 0.02)
    with runtime_server(tmp_path, models_dir=models) as server, traffic(server.url) as statuses:
        iris_project(project, "1.1.0", c=0.02, extra=GATES.format(agree=0.99))
        failed = cli(["canary", "--auto", "--metrics-url", server.metrics_url, *LOCAL], project, env(),
                     timeout=120)
        err = failed.stderr.replace("\n", " ")
        assert failed.returncode == 6, failed.stderr
        assert "shadow gate release.gates.min_agreement failed for 1.1.0" in err
        assert json.loads((models / "routing.json").read_text()) == {"weights": {"1.0.0": 100}}  # no traffic moved

        iris_project(project, "1.1.0", c=0.02, extra=GATES.format(agree=round(agreement - 0.1, 2)))
        passed = ok(["canary", "--auto", "--json", "--metrics-url", server.metrics_url, *LOCAL], project, env())
        result = json.loads(passed.stdout)
        assert result["stable"] == {"version": "1.1.0"} and result["shadow"]["rows"] >= 100
        assert [s["percent"] for s in result["steps"]] == [50, 100]
    assert statuses and set(statuses) == {200}  # the live traffic never saw an error through both phases
    records = json.loads(ok(["history", "--json", *LOCAL], project, env()).stdout)["deployments"]
    assert any(r["outcome"] == "rolled_back" and "min_agreement" in (r["reason"] or "") for r in records)
