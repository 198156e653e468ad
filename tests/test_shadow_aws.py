"""The AWS side of release gates through the real CLI against a moto server: the model contract recorded by `up`
and compared by `plan` and `canary`, the refusal of a breaking change, `canary --shadow` refused with the design's
reason, and the shadow measures read back from CloudWatch by `canary --report` and `status`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from tests.release_helpers import REGISTRY, Emulator, cli, cli_env, ok

pytestmark = [pytest.mark.aws]

CONFIG = """\
name: app
model:
  path: model.joblib
  version: {version}
  convert: none
  class_labels: {labels}
aws:
  region: us-east-1
  desired_count: 2
release:
  steps: [10, 50]
  bake_time_s: 30
  gates: {{min_agreement: 0.9, min_samples: 100}}
"""


def project_at(root: Path, version: str, labels: str = "[setosa, versicolor, virginica]") -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), root / "model.joblib")
    (root / "mldeploy.yaml").write_text(CONFIG.format(version=version, labels=labels))
    return root


def test_contract_recorded_compared_and_refused_and_shadow_measures_read_back(tmp_path: Path,
                                                                             aws: dict[str, str]) -> None:
    env = cli_env(aws)
    project = project_at(tmp_path / "proj", "1.0.0")
    ok(["package"], project, env)
    ok(["up", "--no-wait", "--image", f"{REGISTRY}:1.0.0"], project, env)
    emu = Emulator()
    assert emu.records()[-1]["contract"]["labels"] == ["setosa", "versicolor", "virginica"]  # recorded by `up`

    plan = json.loads(ok(["plan", "--json"], project, env).stdout)
    assert plan["contract"]["compared"] and plan["contract"]["changes"] == []

    project_at(project, "1.1.0", labels="[setosa, versicolor, hybrid]")
    ok(["package"], project, env)
    plan = json.loads(ok(["plan", "--json"], project, env).stdout)["contract"]
    assert plan["breaking"] and plan["changes"][0]["field"] == "labels"
    text = ok(["plan"], project, env)
    assert "BREAKING class labels changed: removed 'virginica'; added 'hybrid'" in text.stderr.replace("\n", " ")

    refused = cli(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0"], project, env)
    assert refused.returncode == 2, refused.stderr
    assert "breaks the contract of the running 1.0.0" in refused.stderr.replace("\n", " ")
    assert emu.weights() == {"app-tg": 100} and [r["action"] for r in emu.records()] == ["up"]

    shadow = cli(["canary", "--shadow", "--image", f"{REGISTRY}:1.1.0"], project, env)
    assert shadow.returncode == 2 and "docs/release-gates.md" in shadow.stderr.replace("\n", " ")

    ok(["canary", "--percent", "10", "--allow-breaking", "--image", f"{REGISTRY}:1.1.0"], project, env)
    assert emu.records()[-1]["contract"]["labels"] == ["setosa", "versicolor", "hybrid"]

    # what the runtime's EMF lines create in CloudWatch (moto does not read EMF from logs: put them as it would)
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    dims = [{"Name": "app", "Value": "app"}, {"Name": "env", "Value": "default"},
            {"Name": "Candidate", "Value": "1.1.0"}]
    now = datetime.now(UTC)
    cw.put_metric_data(Namespace="mldeploy", MetricData=[
        {"MetricName": "ShadowRows", "Dimensions": dims, "Timestamp": now, "Value": 400, "Unit": "Count"},
        {"MetricName": "ShadowAgreements", "Dimensions": dims, "Timestamp": now, "Value": 340, "Unit": "Count"},
        {"MetricName": "ShadowPSI", "Dimensions": dims, "Timestamp": now, "Value": 0.12},
    ])
    report = json.loads(ok(["canary", "--report", "--json"], project, env).stdout)
    m = report["measures"]
    assert report["candidate"] == "1.1.0" and (m["rows"], m["agreements"], m["agreement"]) == (400, 340, 0.85)
    assert m["shift"]["max_psi"] == pytest.approx(0.12)
    assert {g["gate"]: g["ok"] for g in report["gates"]} == {"min_samples": True, "min_agreement": False}
    status = json.loads(ok(["status", "--json"], project, env).stdout)
    assert status["shadow"]["agreement"] == 0.85
    assert "agreement 85.00%" in ok(["status"], project, env).stderr
