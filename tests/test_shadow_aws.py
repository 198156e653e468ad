"""The AWS side of release gates: the model contract recorded by `up` and compared by `plan` and `canary`, the
refusal of a breaking change, `canary --shadow` refused without `model.store: s3`, the shadow measures read back
from CloudWatch by `canary --report` and `status`; with `model.store: s3` the shadow phase itself (`canary
--shadow`, ending it, `canary --auto` judged by the gates) through the real CLI against a moto server, and the
runtime side (both artifacts downloaded from moto S3, agreement measured) with the real `python -m runtime`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.release_helpers import REGISTRY, Emulator, cli, cli_env, ok

pytestmark = [pytest.mark.aws]
ACCOUNT = "123456789012"  # moto's default account
BUCKET = f"mldeploy-{ACCOUNT}-us-east-1"

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
    assert "needs model.store: s3" in shadow.stderr.replace("\n", " ")

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


# ------------------------------------------------------------------------------------------ the runtime side


def _upload(clients: Any, folder: Path) -> Any:
    from mldeploy.aws import model_upload

    index = model_upload.index_artifact(folder)
    loc = model_upload.ModelLocation(BUCKET, model_upload.prefix_for("app", "default", index.version, index.sha256),
                                     index.sha256, index.total_bytes, ACCOUNT)
    model_upload.upload(clients, folder, loc, index, account=ACCOUNT)
    return loc


def test_the_stable_task_downloads_both_artifacts_and_measures_agreement_from_the_env(
        tmp_path: Path, aws: dict[str, str]) -> None:
    """``python -m runtime`` as a shadow revision's task starts it: the stable artifact and the candidate named by
    ``MLDEPLOY_SHADOW_*`` downloaded from (moto) S3 and verified, the shadow evaluator configured from those
    variables, and the agreement measured on the 150 iris rows equal to the offline figure.

    What moto cannot show: ECS does not run tasks (the env is given to the process as the task definition would),
    and the runtime's EMF lines do not reach CloudWatch (the CLI test above puts the metrics itself); the bucket is
    created bare (the runtime's reads are the subject; tests/test_model_store.py applies the bucket as planned)."""
    import httpx

    from mldeploy.aws.clients import Clients
    from tests.infra import runtime_server
    from tests.test_shadow import CANDIDATE_C, STABLE_C, iris_x, lr_model, wait_rows

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    clients = Clients(boto3.Session(), "us-east-1")
    x = iris_x()
    a = lr_model(tmp_path / "v1", "1.0.0", STABLE_C).predict(x)
    b = lr_model(tmp_path / "v2", "1.1.0", CANDIDATE_C).predict(x)
    offline = float((a == b).mean())
    stable, candidate = _upload(clients, tmp_path / "v1"), _upload(clients, tmp_path / "v2")
    settings_dir = tmp_path / "image-model"  # the image's /app/model: runtime.json only
    settings_dir.mkdir()
    (settings_dir / "runtime.json").write_text(json.dumps({"top_k": 1}))
    env = {**aws, **stable.environment(), "MLDEPLOY_MODEL_CACHE_DIR": str(tmp_path / "ephemeral"),
           "MLDEPLOY_SHADOW_S3_PREFIX": candidate.prefix, "MLDEPLOY_SHADOW_INDEX_SHA256": candidate.index_sha256,
           "MLDEPLOY_SHADOW_VERSION": "1.1.0", "MLDEPLOY_SHADOW_SAMPLE": "1"}
    env.pop("MLDEPLOY_STRICT_AWS", None)
    rows = x.tolist()
    with runtime_server(tmp_path, settings_dir, env=env) as proc, httpx.Client() as c:
        # 15 requests of 10 rows: 15 offers, far below the shadow queue (64), so none is dropped
        answers = [c.post(proc.url + "/predict", json={"inputs": rows[i:i + 10]}) for i in range(0, 150, 10)]
        assert {r.status_code for r in answers} == {200}, answers[0].text
        assert {r.json()["version"] for r in answers} == {"1.0.0"}  # the candidate never answers a client
        doc = wait_rows(proc.metrics_url, 150)
        pair = doc["pairs"][0]
        assert (pair["stable"], pair["candidate"], pair["rows"]) == ("1.0.0", "1.1.0", 150)
        assert abs(pair["agreement"] - offline) <= 1e-6, (pair["agreement"], offline)
        assert 0.6 < offline < 0.98 and doc["queue"]["dropped"] == 0
    assert "shadow evaluation of 1.1.0 on 100% of the requests" in proc.logs()

    # a shadow index that is not the pinned one: the task refuses to start (exit 2), naming the file
    env.update(MLDEPLOY_SHADOW_INDEX_SHA256="0" * 64, MLDEPLOY_MODEL_CACHE_DIR=str(tmp_path / "ephemeral2"))
    with runtime_server(tmp_path, settings_dir, env=env, wait_ready=False) as proc:
        assert proc.popen.wait(60) == 2
        assert "mldeploy-files.json: sha256" in proc.logs(), proc.logs()


# ------------------------------------------------------------------------------------------ the CLI on AWS


def test_canary_shadow_on_aws_rolls_the_stable_service_onto_a_shadow_revision_and_rollback_ends_it(
        tmp_path: Path, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The real CLI (in process: ``mldeploy.cli.main``) against moto: ``canary --shadow`` uploads the candidate,
    grants the task role its prefix, registers the stable task definition's shadow revision and moves the stable
    service onto it, recorded in the SSM history; ``canary --report`` names the candidate; ``canary --percent``
    ends the shadow (a real canary), and after a second shadow ``rollback`` puts the base revision back.

    What moto cannot show: the tasks never run (nothing downloads or shadows here: the runtime side is the test
    above). The bucket keeps its TLS-only policy: the strict layer evaluates its ``aws:SecureTransport`` condition
    (moto ignores Conditions; mldeploy/testing/aws_rules/s3_policy.py)."""
    from tests.release_helpers import cli_in_process

    for k, v in cli_env({}).items():
        monkeypatch.setenv(k, v)

    def run(*args: str) -> Any:
        return cli_in_process(list(args), project, monkeypatch, capsys)

    def done(*args: str) -> Any:
        got = run(*args)
        assert got.returncode == 0, f"{args} → {got.returncode}\n{got.stdout}\n{got.stderr}"
        return got

    project = project_at(tmp_path / "proj", "1.0.0")
    (project / "mldeploy.yaml").write_text((project / "mldeploy.yaml").read_text().replace(
        "  convert: none\n", "  convert: none\n  store: s3\n"))
    done("package")
    done("up", "--no-wait", "--image", f"{REGISTRY}:1.0.0")
    emu = Emulator()
    base = emu.services()["app"]["revision"]

    project_at(project, "1.1.0").joinpath("mldeploy.yaml").write_text(
        (project / "mldeploy.yaml").read_text().replace("  convert: none\n", "  convert: none\n  store: s3\n"))
    done("package")
    shadow = done("canary", "--shadow", "--sample", "0.25")
    svc = emu.services()
    assert set(svc) == {"app"} and svc["app"]["revision"] == base + 1  # no canary service, the stable rolled
    td = emu.ecs.describe_task_definition(taskDefinition=f"app:{base + 1}", include=["TAGS"])
    env = {e["name"]: e["value"] for e in td["taskDefinition"]["containerDefinitions"][0]["environment"]}
    assert env["MLDEPLOY_MODEL_VERSION"] == "1.0.0" and env["MLDEPLOY_SHADOW_VERSION"] == "1.1.0"
    assert env["MLDEPLOY_SHADOW_SAMPLE"] == "0.25" and env["MLDEPLOY_SHADOW_S3_PREFIX"].startswith("app/default/1.1.0/")
    assert env["MLDEPLOY_SHADOW_S3_PREFIX"] != env["MLDEPLOY_MODEL_S3_PREFIX"]
    keys = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=env["MLDEPLOY_SHADOW_S3_PREFIX"])["Contents"]
    assert any(k["Key"].endswith("mldeploy-files.json") for k in keys)  # the candidate was uploaded
    tags = {t["key"]: t["value"] for t in td["tags"]}
    assert tags["mldeploy:shadow-of"].endswith(f"/app:{base}")
    from mldeploy.aws.resources import iam

    policy = boto3.client("iam").get_role_policy(RoleName="app-task", PolicyName=iam.MODEL_POLICY_NAME)
    granted = json.dumps(policy["PolicyDocument"])
    assert f"{BUCKET}/{env['MLDEPLOY_SHADOW_S3_PREFIX']}*" in granted  # the task role may read the candidate
    assert f"{BUCKET}/{env['MLDEPLOY_MODEL_S3_PREFIX']}*" in granted  # … and still the stable
    record = emu.records()[-1]
    assert (record["action"], record["version"], record["outcome"], record["percent"]) == (
        "shadow", "1.1.0", "active", 0)
    assert "1.1.0" in shadow.stderr and "25%" in shadow.stderr
    report = json.loads(done("canary", "--report", "--json").stdout)
    assert report["candidate"] == "1.1.0"  # the shadow's candidate, read from the stable task definition
    status = json.loads(done("status", "--json").stdout)
    assert status["shadow"]["candidate"] == "1.1.0"  # no canary runs: the candidate is the stable tasks' shadow

    # a real canary ends the shadow: the stable service back on the base revision, the record closed
    done("canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0")
    svc = emu.services()
    assert svc["app"]["revision"] == base and "app-canary" in svc
    canary_env = {e["name"] for e in emu.task_definition(
        emu.ecs.describe_services(cluster="app", services=["app-canary"])["services"][0]["taskDefinition"])[
        "containerDefinitions"][0]["environment"]}
    assert not any(n.startswith("MLDEPLOY_SHADOW_") for n in canary_env)
    shadows = [r for r in emu.records() if r["action"] == "shadow"]
    assert shadows[-1]["outcome"] == "succeeded" and "ended" in shadows[-1]["reason"]

    # remove the canary, shadow again, then rollback: only the shadow ends (the stable version stays 1.0.0)
    done("rollback", "--yes")
    done("canary", "--shadow")
    assert emu.services()["app"]["revision"] != base
    done("rollback", "--yes")
    assert emu.services() == {"app": {**emu.services()["app"], "revision": base}}
    last = emu.records()[-1]
    assert (last["action"], last["outcome"]) == ("shadow", "rolled_back")


@pytest.mark.parametrize("agreements", [340, 396], ids=["gate-fails", "gate-passes"])
def test_canary_auto_on_aws_judges_the_shadow_from_cloudwatch(
        tmp_path: Path, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        agreements: int) -> None:
    """``canary --auto`` with ``release.gates`` on AWS: the canary at 0 %, the stable tasks shadowing it, the
    measures read from CloudWatch — moto gets no EMF from logs, so the test puts the metrics the runtime's EMF lines
    would create (400 rows; 85 % or 99 % agreement). ``min_agreement: 0.9`` fails at 85 %: exit 6 naming the gate,
    the canary removed, the stable service back on its base revision, the shadow record closed as rolled back. At
    99 % the steps follow (bake 0 s) and the candidate is promoted; the shadow ended with its first step. (The
    TLS-only bucket policy stays, evaluated by the strict layer as in the test above.)"""
    from tests.release_helpers import cli_in_process

    for k, v in cli_env({}).items():
        monkeypatch.setenv(k, v)
    project = project_at(tmp_path / "proj", "1.0.0")

    def s3_store() -> None:
        cfg = project / "mldeploy.yaml"
        cfg.write_text(cfg.read_text().replace("  convert: none\n", "  convert: none\n  store: s3\n")
                       .replace("bake_time_s: 30", "bake_time_s: 0"))

    def done(*args: str) -> Any:
        got = cli_in_process(list(args), project, monkeypatch, capsys)
        assert got.returncode == 0, f"{args} → {got.returncode}\n{got.stdout}\n{got.stderr}"
        return got

    s3_store()
    done("package")
    done("up", "--no-wait", "--image", f"{REGISTRY}:1.0.0")
    emu = Emulator()
    base = emu.services()["app"]["revision"]
    project_at(project, "1.1.0")
    s3_store()
    done("package")
    dims = [{"Name": "app", "Value": "app"}, {"Name": "env", "Value": "default"},
            {"Name": "Candidate", "Value": "1.1.0"}]
    now = datetime.now(UTC)
    boto3.client("cloudwatch").put_metric_data(Namespace="mldeploy", MetricData=[
        {"MetricName": "ShadowRows", "Dimensions": dims, "Timestamp": now, "Value": 400, "Unit": "Count"},
        {"MetricName": "ShadowAgreements", "Dimensions": dims, "Timestamp": now, "Value": agreements,
         "Unit": "Count"}])
    got = cli_in_process(["canary", "--auto", "--image", f"{REGISTRY}:1.1.0"], project, monkeypatch, capsys)
    err = got.stderr.replace("\n", " ")
    shadow = [r for r in emu.records() if r["action"] == "shadow"]
    canary = [r for r in emu.records() if r["action"] == "canary"]
    assert len(shadow) == 1 and shadow[0]["version"] == "1.1.0"
    if agreements == 340:
        assert got.returncode == 6, err
        assert "shadow gate release.gates.min_agreement failed for 1.1.0" in err and "agreement 85.00%" in err
        assert emu.services() == {"app": {**emu.services()["app"], "revision": base}}  # no canary, no shadow
        assert shadow[0]["outcome"] == "rolled_back"
        assert canary[-1]["outcome"] == "rolled_back" and "shadow gate failed" in canary[-1]["reason"]
        return
    assert got.returncode == 0, err
    assert "shadow gates passed for 1.1.0" in err
    svc = emu.services()
    assert set(svc) == {"app"} and svc["app"]["image"] == f"{REGISTRY}:1.1.0"  # promoted
    env = {e["name"] for e in emu.task_definition(
        emu.ecs.describe_services(cluster="app", services=["app"])["services"][0]["taskDefinition"])[
        "containerDefinitions"][0]["environment"]}
    assert not any(n.startswith("MLDEPLOY_SHADOW_") for n in env)
    assert shadow[0]["outcome"] == "succeeded" and "10% of traffic" in shadow[0]["reason"]
    assert emu.records()[-1]["action"] == "promote"


def test_up_during_a_shadow_keeps_it_on_the_new_stable_revision_and_plan_checks_its_memory(
        tmp_path: Path, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``up`` keeps a running shadow as it keeps a running canary: ``plan`` of an unchanged config changes nothing
    (the stable service stays on its shadow revision); a changed config registers the new stable revision and a
    shadow revision of it (same ``MLDEPLOY_SHADOW_*``), the service moves onto that and the history's shadow
    record follows; a config whose memory cannot hold both models is refused by ``plan`` and ``up`` with exit 3,
    as ``canary --shadow`` refuses it. ``promote`` without a canary says what runs (exit 10); ``rollback`` ends the
    shadow onto the *new* stable revision. (moto runs no tasks; the TLS-only bucket policy stays, evaluated by the
    strict layer.)"""
    from tests.release_helpers import cli_in_process

    for k, v in cli_env({}).items():
        monkeypatch.setenv(k, v)
    project = tmp_path / "proj"

    def at(version: str, extra: str = "") -> None:
        cfg = project_at(project, version) / "mldeploy.yaml"
        cfg.write_text(cfg.read_text().replace("  convert: none\n", "  convert: none\n  store: s3\n")
                       .replace("  desired_count: 2\n", "  desired_count: 2\n" + extra))

    def stable_model(extra: str = "") -> None:
        """Back to the stable 1.0.0 as packaged before (the same artifact, so the same S3 prefix)."""
        at("1.0.0", extra)
        shutil.copy2(tmp_path / "stable.joblib", project / "model.joblib")
        shutil.rmtree(artifact)
        shutil.copytree(tmp_path / "stable-artifact", artifact)

    def run(*args: str) -> Any:
        return cli_in_process(list(args), project, monkeypatch, capsys)

    def done(*args: str) -> Any:
        got = run(*args)
        assert got.returncode == 0, f"{args} → {got.returncode}\n{got.stdout}\n{got.stderr}"
        return got

    def td_of(arn: str) -> tuple[dict[str, str], dict[str, str]]:
        td = emu.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        env = {e["name"]: e["value"] for e in td["taskDefinition"]["containerDefinitions"][0]["environment"]}
        return env, {t["key"]: t["value"] for t in td.get("tags") or []}

    def stable_td() -> str:
        return str(emu.ecs.describe_services(cluster="app", services=["app"])["services"][0]["taskDefinition"])

    at("1.0.0")
    done("package")
    artifact = project / ".mldeploy" / "default" / "artifact"
    shutil.copy2(project / "model.joblib", tmp_path / "stable.joblib")
    shutil.copytree(artifact, tmp_path / "stable-artifact")
    done("up", "--no-wait", "--image", f"{REGISTRY}:1.0.0")
    emu = Emulator()
    at("1.1.0")
    done("package")
    done("canary", "--shadow", "--sample", "0.25")
    shadow_rev = stable_td()
    stable_model()  # the config is what runs, plus the shadow

    # plan of the unchanged config: the stable task definition and service stay (no shadow-less revision)
    plan = json.loads(done("plan", "--json").stdout)
    stable = [s for s in plan["steps"] if s["kind"] in ("ecs service", "task definition")]
    assert all(s["action"] == "no-op" for s in stable), [s["message"] for s in stable]
    assert plan["shadow"]["outcome"] == "kept" and plan["shadow"]["version"] == "1.1.0"
    assert any("keep shadowing 1.1.0" in n for n in plan["notes"])

    # the tasks cannot hold both models in 512 MiB: plan and up refuse as canary --shadow does (exit 3)
    stable_model("  cpu: 256\n  memory: 512\n")
    got = run("plan")
    err = " ".join(got.stderr.split())
    assert got.returncode == 3, err
    assert "aws.memory: the stable tasks cannot hold the stable and the shadow model" in err
    assert "of the task's 512 MiB" in err and "raise aws.memory" in err
    got = run("up", "--no-wait", "--image", f"{REGISTRY}:1.0.0")
    assert got.returncode == 3 and "aws.memory: the stable tasks cannot hold" in " ".join(got.stderr.split())
    assert stable_td() == shadow_rev  # nothing applied

    # a config change: a new stable revision and a shadow revision of it; the shadow keeps running
    stable_model("  environment: {FEATURE_FLAG: 'on'}\n")
    plan = json.loads(done("plan", "--json").stdout)
    assert plan["shadow"]["outcome"] == "re-registered" and plan["shadow"]["memory"]["level"] in ("ok", "warn")
    registers = [s for s in plan["steps"] if s["kind"] == "task definition" and s["action"] != "no-op"]
    assert [s["name"] for s in registers] == ["app", "app (shadow of 1.1.0)"]
    done("up", "--no-wait", "--image", f"{REGISTRY}:1.0.0")
    new_shadow = stable_td()
    assert new_shadow != shadow_rev
    env, tags = td_of(new_shadow)
    assert env["FEATURE_FLAG"] == "on" and env["MLDEPLOY_MODEL_VERSION"] == "1.0.0"
    assert env["MLDEPLOY_SHADOW_VERSION"] == "1.1.0" and env["MLDEPLOY_SHADOW_SAMPLE"] == "0.25"
    new_base = tags["mldeploy:shadow-of"]
    base_env, base_tags = td_of(new_base)
    assert base_env["FEATURE_FLAG"] == "on" and "mldeploy:shadow-of" not in base_tags
    assert not any(k.startswith("MLDEPLOY_SHADOW_") for k in base_env)
    shadows = [r for r in emu.records() if r["action"] == "shadow"]
    assert len(shadows) == 1 and shadows[0]["outcome"] == "active" and shadows[0]["task_definition"] == new_shadow
    report = json.loads(done("canary", "--report", "--json").stdout)
    assert report["candidate"] == "1.1.0"
    plan = json.loads(done("plan", "--json").stdout)  # and the next plan is quiet again
    changed = [s["kind"] for s in plan["steps"] if s["action"] != "no-op"]
    assert plan["shadow"]["outcome"] == "kept" and not changed, changed  # the bucket's policy reads back as put

    # promote: no canary, only a shadow — what runs and the commands that fit (exit 10, nothing changed)
    got = run("promote", "--yes")
    err = " ".join(got.stderr.split())
    assert got.returncode == 10, err
    assert "1.1.0 runs only as a shadow" in err and "25% of their requests" in err
    assert "`mldeploy canary --percent N`" in err and "`mldeploy canary --report`" in err
    assert "`mldeploy rollback` ends the shadow" in err
    assert stable_td() == new_shadow

    # rollback ends the shadow onto the new stable revision (not the one before `up`)
    done("rollback", "--yes")
    assert stable_td() == new_base
    records = emu.records()
    (shadow,) = [r for r in records if r["action"] == "shadow"]
    assert shadow["outcome"] == "rolled_back" and "ended: mldeploy rollback" in shadow["reason"]
    assert "mldeploy up moved it to" in shadow["reason"]
    # the stable lineage: the first up, then the revision `up` deployed under the shadow (what rollback returns to)
    assert [(r["action"], r["task_definition"]) for r in records if r["action"] == "up"][-1] == ("up", new_base)
