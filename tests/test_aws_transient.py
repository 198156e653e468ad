"""Fresh accounts and eventual consistency (issue 14 item 4): the errors AWS answers for a while after a role, a
listener or a service-linked role was created are retried with bounded backoff, so ``up``, ``canary`` and ``down``
finish in one run.

moto never answers these errors (it has no IAM propagation, no service-linked roles, no listener/target-group
association delay), so ``MLDEPLOY_FAULT_ERROR`` (``mldeploy/testing/faults.py``) injects each one, with AWS's code
and message, a few times before the call reaches moto. The retry lists and their Terraform sources are in
``aws/resources/{service,autoscaling,target_group}.py``; what a real account's timing is, moto cannot show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.testing.faults import parse_errors
from tests.release_helpers import REGISTRY, cli_env, write_project

pytestmark = [pytest.mark.aws]



def run(cwd: Path, env: dict[str, str], *args: str, errors: list[str]) -> tuple[subprocess.CompletedProcess[str],
                                                                                list[dict]]:
    """The CLI with ``MLDEPLOY_FAULT_ERROR`` set to ``errors``; returns the process and the API log."""
    log = cwd / "api.jsonl"
    log.unlink(missing_ok=True)
    full = {**env, "MLDEPLOY_FAULT_ERROR": ";".join(errors), "MLDEPLOY_POLL_S": "0.1", "MLDEPLOY_API_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def attempts(calls: list[dict], op: str) -> int:
    """Requests of ``op`` that reached the client (the injected failures included: the API log hook runs first)."""
    return sum(1 for c in calls if c["op"] == op)


def test_fault_error_spec_parses_messages_with_colons() -> None:
    (a, b) = parse_errors("ecs:CreateService:InvalidParameterException:Unable to assume the service linked role:3;"
                          "elbv2:DeleteTargetGroup:ResourceInUse:Target group 'arn:aws:x' is in use:2@1")
    assert (a.service, a.op, a.code, a.message, a.times, a.skip) == (
        "ecs", "CreateService", "InvalidParameterException", "Unable to assume the service linked role", 3, 0)
    assert (b.message, b.times, b.skip) == ("Target group 'arn:aws:x' is in use", 2, 1)
    assert [b.fires() for _ in range(4)] == [False, True, True, False]


def test_up_canary_down_finish_through_transient_errors(tmp_path: Path, aws: dict[str, str]) -> None:
    project = write_project(tmp_path / "app")
    env = cli_env(aws)

    # up on a "fresh account": ECS cannot assume its service-linked role yet, the new execution role is not yet
    # assumable, Application Auto Scaling cannot assume its service-linked role, the new scalable target is not
    # visible to PutScalingPolicy yet
    proc, calls = run(project, env, "up", "--no-wait", "--image", f"{REGISTRY}:v1", errors=[
        "ecs:CreateService:InvalidParameterException:Unable to assume the service linked role. Please verify that "
        "the ECS service linked role exists.:2",
        "ecs:CreateService:InvalidParameterException:Please verify that the ECS service role being passed has the "
        "proper permissions.:1@2",
        "application-autoscaling:RegisterScalableTarget:ValidationException:Unable to assume IAM role "
        "arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_ECSService:2",
        "application-autoscaling:PutScalingPolicy:FailedResourceAccessException:Rate exceeded while reading the "
        "target:1"])
    assert proc.returncode == 0, proc.stderr
    assert attempts(calls, "CreateService") == 4 and attempts(calls, "RegisterScalableTarget") == 3
    assert attempts(calls, "PutScalingPolicy") == 2

    # canary: CreateService right after the listener's forward action changed (weight 0 for the canary group)
    proc, calls = run(project, env, "canary", "--percent", "10", "--image", f"{REGISTRY}:1.1.0", errors=[
        "ecs:CreateService:InvalidParameterException:The target group with targetGroupArn "
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-tgc/1 does not have an associated "
        "load balancer.:3"])
    assert proc.returncode == 0, proc.stderr
    assert attempts(calls, "CreateService") == 4
    assert attempts(calls, "ModifyListener") >= 1  # the listener change that precedes it

    # down: DeleteTargetGroup right after the listener delete still sees the group in use
    proc, calls = run(project, env, "down", "--yes", errors=[
        "elbv2:DeleteTargetGroup:ResourceInUse:Target group 'arn:aws:elasticloadbalancing:us-east-1:123456789012:"
        "targetgroup/app-tg/1' is currently in use by a listener or a rule:2"])
    assert proc.returncode == 0, proc.stderr
    assert attempts(calls, "DeleteTargetGroup") == 2 + 2  # stable and canary groups, the first one retried twice
    import boto3

    elbv2 = boto3.client("elbv2", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    assert elbv2.describe_target_groups()["TargetGroups"] == []


def test_a_non_transient_error_is_not_retried(tmp_path: Path, aws: dict[str, str]) -> None:
    project = write_project(tmp_path / "app")
    proc, calls = run(project, cli_env(aws), "up", "--no-wait", "--image", f"{REGISTRY}:v1", errors=[
        "ecs:CreateService:InvalidParameterException:The container model does not exist in the task definition.:5"])
    assert proc.returncode != 0 and "does not exist in the task definition" in proc.stderr
    assert attempts(calls, "CreateService") == 1
