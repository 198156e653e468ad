"""Stub-free unit checks of small pure helpers (the behaviour against AWS is in the moto tests)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from mldeploy.aws.clients import is_mutating, translate
from mldeploy.aws.engine.model import Action, Plan, Ref, Step, is_unknown
from mldeploy.aws.log_tail import parse_since
from mldeploy.errors import MldeployError


def test_mutating_classification():
    assert not any(map(is_mutating, ["DescribeServices", "GetRole", "ListTasks", "FilterLogEvents", "BatchGetImage"]))
    assert all(map(is_mutating, ["CreateService", "PutParameter", "RegisterTaskDefinition", "ModifyListener",
                                 "AuthorizeSecurityGroupIngress", "DeleteCluster"]))


def test_parse_since():
    assert [parse_since(x) for x in ("30s", "10m", "2h", "1d", " 1w ")] == [30, 600, 7200, 86400, 604800]
    with pytest.raises(MldeployError, match="not a duration"):
        parse_since("10 minutes")


def test_translate_access_denied_and_credentials():
    err = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "User x is not authorized"}},
                      "CreateCluster")
    e = translate(err, "ecs:CreateCluster")
    assert "ecs:CreateCluster" in e.message and "iam-policy" in e.hint and e.exit_code == 5
    assert "no AWS credentials" in translate(NoCredentialsError()).message


def test_plan_counts_and_json():
    plan = Plan([Step("ecs cluster", "demo", Action.noop),
                 Step("ecs service", "demo", Action.update, ["task definition demo:1 → demo:2"])])
    assert plan.counts()["update"] == 1 and len(plan.changes) == 1 and not plan.empty
    doc = plan.to_json()
    assert doc["steps"][1]["message"] == "update ecs service demo: task definition demo:1 → demo:2"
    assert is_unknown(Ref("x")) and is_unknown({"a": [Ref("x")]}) and not is_unknown("arn:aws:x")
