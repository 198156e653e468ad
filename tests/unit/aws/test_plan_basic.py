"""Plans as data for the simple families (ECR, log group, cluster, IAM): ``assert plan == [Step(...)]`` against a
fake remote. The moto tests (tests/test_aws.py) run the same modules against a real API server."""

from __future__ import annotations

import json

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.resources import cluster, ecr, iam, log_group
from mldeploy.errors import AwsError
from tests.unit.fakes import ACCOUNT, FakeRemote, owned_tags, spec


def test_ecr_missing_is_created_with_scan_and_lifecycle() -> None:
    remote = FakeRemote({("ecr", "describe_repositories"): None})
    known: dict = {}
    steps = ecr.plan(spec(), remote, known)
    assert steps == [Step("ecr repository", "demo", Action.create, ["scan on push", "lifecycle: keep 30"], calls=[
        ApiCall("ecr", "create_repository", {"repositoryName": "demo", "tags": owned_tags(),
                                             "imageScanningConfiguration": {"scanOnPush": True}}),
        ApiCall("ecr", "put_lifecycle_policy", {"repositoryName": "demo",
                                                "lifecyclePolicyText": json.dumps(ecr.lifecycle_policy())})])]
    assert known["ecr_uri"] == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/demo"


def _repo(scan: bool = True) -> dict:
    return {"repositories": [{"repositoryName": "demo", "repositoryArn": "arn:aws:ecr:us-east-1:1:repository/demo",
                              "repositoryUri": "1.dkr.ecr.us-east-1.amazonaws.com/demo",
                              "imageScanningConfiguration": {"scanOnPush": scan}}]}


def test_ecr_in_sync_is_a_noop_and_drift_is_one_call_each() -> None:
    remote = FakeRemote({("ecr", "describe_repositories"): _repo(),
                         ("ecr", "list_tags_for_resource"): {"tags": owned_tags()},
                         ("ecr", "get_lifecycle_policy"): {"lifecyclePolicyText": json.dumps(ecr.lifecycle_policy())}})
    assert ecr.plan(spec(), remote, {}) == [noop("ecr repository", "demo")]
    remote.answer("ecr", "describe_repositories", _repo(scan=False)).answer("ecr", "get_lifecycle_policy", None)
    (step,) = ecr.plan(spec(), remote, {})
    assert step.action is Action.update
    assert [c.op for c in step.calls] == ["put_image_scanning_configuration", "put_lifecycle_policy"]


def test_a_resource_tagged_for_another_app_or_env_is_refused() -> None:
    remote = FakeRemote({("ecr", "describe_repositories"): _repo(),
                         ("ecr", "list_tags_for_resource"): {"tags": owned_tags(app="other")}})
    with pytest.raises(AwsError, match="belongs to mldeploy app 'other' env 'default'"):
        ecr.plan(spec(), remote, {})
    remote.answer("ecs", "describe_clusters", {"clusters": [{"status": "ACTIVE", "tags": owned_tags(
        "prod", key="key", value="value")}]})
    with pytest.raises(AwsError, match="ECS cluster 'demo' already exists and belongs to mldeploy app 'demo' env"):
        cluster.plan(spec(), remote, {})


def test_log_group_retention_drift_is_an_update() -> None:
    remote = FakeRemote({("logs", "describe_log_groups"): {"logGroups": [
        {"logGroupName": "/mldeploy/demo/default", "arn": "arn:aws:logs:us-east-1:1:log-group:x:*",
         "retentionInDays": 7}]}, ("logs", "list_tags_for_resource"): {"tags": {"mldeploy:app": "demo",
                                                                                "mldeploy:env": "default"}}})
    (step,) = log_group.plan(spec(), remote, {})
    assert step.action is Action.update
    assert step.calls == (ApiCall("logs", "put_retention_policy", {"logGroupName": "/mldeploy/demo/default",
                                                                   "retentionInDays": 30}),)


def test_cluster_create_then_delete() -> None:
    remote = FakeRemote({("ecs", "describe_clusters"): {"clusters": []}})
    (create,) = cluster.plan(spec(), remote, {})
    assert create.action is Action.create and create.calls[0].op == "create_cluster"
    assert cluster.delete(spec(), remote, {}) == []
    remote.answer("ecs", "describe_clusters", {"clusters": [{"status": "ACTIVE", "tags": owned_tags("default",
                                                            key="key", value="value")}]})
    assert cluster.delete(spec(), remote, {}) == [Step("ecs cluster", "demo", Action.delete, calls=[
        ApiCall("ecs", "delete_cluster", {"cluster": "demo"}, missing=("ClusterNotFoundException",))])]


def test_execution_role_arn_is_known_before_the_role_exists() -> None:
    remote = FakeRemote({("iam", "get_role"): None})
    known: dict = {}
    (step,) = iam.plan_execution_role(spec(), remote, known)
    assert known["execution_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/demo-exec"
    assert [c.op for c in step.calls] == ["create_role", "put_role_policy"]
    assert iam.plan_task_role(spec(), remote, known) == []  # no task_role_policy_arns: no role
    assert known["task_role_arn"] is None


def test_ecr_is_shared_by_the_environments_of_an_app() -> None:
    from tests.unit.fakes import project

    remote = FakeRemote({("ecr", "describe_repositories"): _repo(),
                         ("ecr", "list_tags_for_resource"): {"tags": owned_tags(env="default")},
                         ("ecr", "get_lifecycle_policy"): {"lifecyclePolicyText": json.dumps(ecr.lifecycle_policy())}})
    prod = spec(project(env="prod", yaml_text="name: demo\nmodel: {path: m.onnx}\nenvironments: {prod: {}}\n"))
    assert ecr.plan(prod, remote, {}) == [noop("ecr repository", "demo")]  # created by env default: still ours
    remote.answer("ssm", "get_parameters_by_path", {"Parameters": [
        {"Name": "/mldeploy/demo/default/url"}, {"Name": "/mldeploy/demo/prod/url"}]})
    (kept,) = ecr.delete(prod, remote, {})
    assert kept.action is Action.noop and "env default still uses it" in kept.note
    remote.answer("ssm", "get_parameters_by_path", {"Parameters": [{"Name": "/mldeploy/demo/prod/url"}]})
    (gone,) = ecr.delete(prod, remote, {})
    assert gone.action is Action.delete and gone.calls[0].params == {"repositoryName": "demo", "force": True}
