"""The deploy policy against what the real CLI does (moto server, strict AWS layer): every API call of up, a re-run
over an old role, canary, promote, rollback and down is allowed by `mldeploy iam-policy` for the app's resources
and refused by the policy printed for another app; the roles carry the boundary `iam-policy --boundary` printed
and an account-scoped trust policy.

moto enforces no resource-level IAM (tests/test_aws_faults.py covers the action list under its enforcement), so
the calls are checked with the evaluator of tests/unit/aws/test_iam_policy.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from mldeploy.aws import iam_policy
from mldeploy.config import load_project
from tests import infra
from tests import test_aws_https as https
from tests.infra import TEST_ACCOUNT_ID
from tests.release_helpers import REGISTRY, cli_env, ok, write_project
from tests.unit.aws.test_iam_policy import OLD_TRUST, World, check, denied_mutations

pytestmark = [pytest.mark.aws]

acm_moto = https.acm_moto  # that module's moto server: ACM issues a certificate after 2 s

BOUNDARY = f"arn:aws:iam::{TEST_ACCOUNT_ID}:policy/mldeploy-boundary-app"


def _configure(project: Path, version: str) -> None:
    write_project(project, version=version)
    path = project / "mldeploy.yaml"
    path.write_text(path.read_text().replace("  desired_count: 2\n", f"  desired_count: 2\n  permissions_boundary: "
                                                                     f"{BOUNDARY}\n"))


def _calls(log: Path) -> list[tuple[str, str, dict]]:
    return [(c["service"], c["op"], c.get("params") or {}) for c in map(json.loads, log.read_text().splitlines())]


def test_every_call_of_a_release_cycle_is_allowed_for_the_app_only(tmp_path: Path, aws: dict[str, str]):
    project = tmp_path / "proj"
    _configure(project, "1.0.0")
    log = tmp_path / "api.jsonl"
    env = cli_env(aws, MLDEPLOY_API_LOG=str(log), MLDEPLOY_API_LOG_PARAMS="1")
    admin = boto3.client("iam", region_name="us-east-1")

    # the boundary, as `iam-policy --boundary` prints it, is a document IAM accepts
    printed = ok(["iam-policy", "--boundary"], project, cli_env(aws))
    assert "aws iam create-policy --policy-name mldeploy-boundary-app" in printed.stderr
    admin.create_policy(PolicyName="mldeploy-boundary-app", PolicyDocument=printed.stdout)

    ok(["up", "--no-wait", "--image", f"{REGISTRY}:v1"], project, env)
    role = admin.get_role(RoleName="app-exec")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": TEST_ACCOUNT_ID}}

    # a role made by an older mldeploy (no condition on its trust): the next up updates it, then nothing is left
    admin.update_assume_role_policy(RoleName="app-exec", PolicyDocument=json.dumps(OLD_TRUST))
    plan = json.loads(ok(["plan", "--json", "--image", f"{REGISTRY}:v1"], project, env).stdout)
    steps = [s for s in plan["steps"] if s["name"] == "app-exec"]
    assert [s["action"] for s in steps] == ["update"], steps
    assert [c["call"] for c in steps[0]["calls"]] == ["iam.update_assume_role_policy"]
    ok(["up", "--no-wait", "--image", f"{REGISTRY}:v1"], project, env)
    assert admin.get_role(RoleName="app-exec")["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert json.loads(ok(["plan", "--json", "--image", f"{REGISTRY}:v1"], project, env).stdout)["changes"] == 0

    _configure(project, "1.1.0")
    ok(["canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0"], project, env)
    ok(["promote", "--yes"], project, env)
    ok(["rollback", "--yes"], project, env)
    ok(["status"], project, env)
    ok(["down", "--yes", "--purge"], project, env)

    calls = _calls(log)
    ops = {op for _, op, _ in calls}
    assert {"CreateRole", "PutRolePolicy", "UpdateAssumeRolePolicy", "CreateService", "UpdateService",
            "RegisterTaskDefinition", "ModifyListener", "CreateRule", "PutParameter", "DeleteParameter",
            "DeleteService", "DeleteLoadBalancer", "DeleteSecurityGroup", "DeleteRole", "DeleteRepository",
            "PutMetricAlarm", "DeleteAlarms", "RegisterScalableTarget", "DeregisterScalableTarget"} <= ops, ops
    proj = load_project(project / "mldeploy.yaml")
    world = World(app="app", env="default", account=TEST_ACCOUNT_ID, boundary=BOUNDARY)
    policy = iam_policy.policy_for(proj, account=TEST_ACCOUNT_ID)
    refused = check(policy, calls, world)
    assert refused == [], "\n".join(refused)
    # the policy printed for another app (same config, another name) refuses every mutating call of this one
    (tmp_path / "other").mkdir()
    other_project = tmp_path / "other" / "mldeploy.yaml"
    other_project.write_text((project / "mldeploy.yaml").read_text().replace("name: app", "name: zzz"))
    other_policy = iam_policy.policy_for(load_project(other_project), account=TEST_ACCOUNT_ID)
    leaks = denied_mutations(other_policy, calls, world)
    assert leaks == [], "\n".join(leaks)


@pytest.fixture
def https_env(acm_moto: infra.MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return infra.use_moto(acm_moto, monkeypatch)


def test_https_domain_calls_are_allowed_for_the_app_only(tmp_path: Path, https_env: dict[str, str]) -> None:
    """aws.domain: the certificate request, the validation and alias records and their deletion."""
    from tests.test_aws_helpers import BASE_CONFIG, Project

    boto3.client("route53", region_name="us-east-1").create_hosted_zone(Name="example.com", CallerReference="t1")
    config = {**BASE_CONFIG, "aws": {**BASE_CONFIG["aws"], "domain": "api.example.com"}}
    project = Project(tmp_path, https_env, config)
    up = project.run("up", "--image", "registry.example/demo:1", "--no-wait")
    assert up.rc == 0, up.stderr
    down = project.run("down", "--yes", "--purge")
    assert down.rc == 0, down.stderr
    calls = [(c["service"], c["op"], c.get("params") or {}) for c in up.calls + down.calls]
    assert {"RequestCertificate", "ChangeResourceRecordSets", "DeleteCertificate"} <= {op for _, op, _ in calls}
    proj = load_project(tmp_path / "mldeploy.yaml")
    world = World(app="demo", env="default", account=TEST_ACCOUNT_ID)
    refused = check(iam_policy.policy_for(proj, account=TEST_ACCOUNT_ID), calls, world)
    assert refused == [], "\n".join(refused)
    other = tmp_path / "other"
    other.mkdir()
    (other / "mldeploy.yaml").write_text((tmp_path / "mldeploy.yaml").read_text().replace("name: demo", "name: zzz")
                                         .replace("api.example.com", "zzz.example.com"))
    leaks = denied_mutations(iam_policy.policy_for(load_project(other / "mldeploy.yaml"), account=TEST_ACCOUNT_ID),
                             calls, world)
    assert leaks == [], "\n".join(leaks)


def test_ec2_capacity_calls_are_allowed_for_the_app_only(tmp_path: Path, aws: dict[str, str]) -> None:
    """aws.compute: ec2 with a boundary: the instance role (created with the boundary), instance profile, launch
    template, Auto Scaling group, capacity provider and scheduled action, then down."""
    from tests.test_aws_ec2 import IMAGE, gpu_config
    from tests.test_aws_helpers import Project

    cfg = gpu_config()
    cfg["aws"].update({"instance_type": "c7i.xlarge", "gpus": 0, "cpu": 1024, "memory": 2048,
                       "permissions_boundary": f"arn:aws:iam::{TEST_ACCOUNT_ID}:policy/mldeploy-boundary-demo"})
    project = Project(tmp_path, aws, cfg)
    printed = project.run("iam-policy", "--boundary")
    assert printed.rc == 0, printed.stderr
    admin = boto3.client("iam", region_name="us-east-1")
    admin.create_policy(PolicyName="mldeploy-boundary-demo", PolicyDocument=printed.stdout)
    up = project.run("up", "--image", IMAGE, "--no-wait")
    assert up.rc == 0, up.stderr
    role = admin.get_role(RoleName="demo-instance")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == cfg["aws"]["permissions_boundary"]
    down = project.run("down", "--yes")
    assert down.rc == 0, down.stderr
    calls = [(c["service"], c["op"], c.get("params") or {}) for c in up.calls + down.calls]
    assert {"GetParameter", "CreateInstanceProfile", "AddRoleToInstanceProfile", "CreateLaunchTemplate",
            "CreateAutoScalingGroup", "CreateCapacityProvider", "PutClusterCapacityProviders", "PutScheduledAction",
            "DeleteCapacityProvider", "DeleteAutoScalingGroup", "DeleteLaunchTemplate", "DeleteInstanceProfile"} <= {
        op for _, op, _ in calls}
    proj = load_project(tmp_path / "mldeploy.yaml")
    world = World(app="demo", env="default", account=TEST_ACCOUNT_ID, boundary=cfg["aws"]["permissions_boundary"])
    policy = iam_policy.policy_for(proj, account=TEST_ACCOUNT_ID)
    refused = check(policy, calls, world)
    assert refused == [], "\n".join(refused)
    other = tmp_path / "other"
    other.mkdir()
    (other / "mldeploy.yaml").write_text((tmp_path / "mldeploy.yaml").read_text().replace("name: demo", "name: zzz"))
    leaks = denied_mutations(iam_policy.policy_for(load_project(other / "mldeploy.yaml"), account=TEST_ACCOUNT_ID),
                             calls, world)
    assert leaks == [], "\n".join(leaks)
