"""Two environments of one app side by side (#14.1), and the budget gate refusing before any change (#16.4),
through the real CLI against moto with the strict AWS-rules layer on."""

from __future__ import annotations

import copy

from mldeploy.errors import ExitCode
from tests.test_aws_helpers import BASE_CONFIG, Project

IMAGE = "registry.example/demo:1"
ENVS = {**copy.deepcopy(BASE_CONFIG), "environments": {"prod": {"aws": {"desired_count": 1}}}}


def test_two_environments_coexist_and_down_of_one_leaves_the_other(tmp_path, aws, moto_server):
    project = Project(tmp_path, aws, ENVS)
    assert project.run("up", "--image", IMAGE, "--no-wait").rc == 0
    prod = project.run("--env", "prod", "up", "--image", IMAGE, "--no-wait")
    assert prod.rc == 0, prod.stderr  # the shared ECR repository is the app's, not env default's
    ecr = moto_server.client("ecr")
    assert [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]] == ["demo"]  # one, shared
    down = project.run("down", "--yes", "--purge", "--json")  # default goes; prod still uses the repository
    assert down.rc == 0, down.stderr
    assert [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]] == ["demo"]
    assert "env prod still uses it" in down.stderr
    again = project.run("--env", "prod", "plan", "--json", "--image", IMAGE)
    assert again.rc == 0, again.stderr
    assert again.json["changes"] == 0, [s["message"] for s in again.json["steps"] if s["action"] != "no-op"]
    assert not again.mutating


def test_the_budget_gate_refuses_plan_up_and_canary_before_any_change(tmp_path, aws):
    cfg = {**copy.deepcopy(BASE_CONFIG), "cost": {"budget_monthly": 1}}
    project = Project(tmp_path, aws, cfg)
    plan = project.run("plan", "--image", IMAGE)
    assert plan.rc == ExitCode.OVER_BUDGET and "budget" in plan.stderr
    up = project.run("up", "--image", IMAGE, "--no-wait")
    assert up.rc == ExitCode.OVER_BUDGET and "--ignore-budget" in up.stderr
    assert not up.resource_mutating  # refused before the lock and before any resource call
    assert project.run("up", "--image", IMAGE, "--no-wait", "--ignore-budget").rc == 0
    canary = project.run("canary", "--percent", "10", "--image", "registry.example/demo:2")
    assert canary.rc == ExitCode.OVER_BUDGET, canary.stderr
    assert "CreateService" not in canary.mutating
