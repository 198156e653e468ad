"""The executor as an interpreter: refs resolved from earlier outputs, missing codes tolerated, retries bounded,
an unresolved ref named. Runs against fake clients (the moto tests run it against a real API server)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from mldeploy.aws.engine.executor import Executor
from mldeploy.aws.engine.model import Action, ApiCall, Fn, Plan, Ref, RetryOn, Step, Wait, after
from mldeploy.errors import AwsError
from mldeploy.ui import NULL_UI


class FakeClient:
    def __init__(self, log: list, answers: dict[str, Any]) -> None:
        self._log, self._answers = log, answers

    def __getattr__(self, op: str) -> Any:
        def method(**params: Any) -> Any:
            self._log.append((op, params))
            answer = self._answers.get(op, {})
            if callable(answer):
                return answer(**params)
            return answer
        return method


class FakeClients:
    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.log: list = []
        self.answers = answers

    def get(self, service: str) -> FakeClient:
        return FakeClient(self.log, self.answers.get(service, {}))


def client_error(code: str, message: str = "", op: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


def test_refs_flow_from_outputs_into_later_calls_and_functions() -> None:
    clients = FakeClients({"elbv2": {"create_load_balancer": {"LoadBalancers": [
        {"LoadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/demo/abc"}]}}})
    plan = Plan([Step("load balancer", "demo", Action.create, calls=[
        ApiCall("elbv2", "create_load_balancer", {"Name": "demo"},
                outputs=(("alb_arn", "LoadBalancers[0].LoadBalancerArn"),)),
        ApiCall("cloudwatch", "put_metric_alarm", {"Dimensions": [
            {"Name": "LoadBalancer", "Value": after(Ref("alb_arn"), ":loadbalancer/")}],
            "Body": Fn("json", ({"lb": Ref("alb_arn")},))})])])
    records = Executor(clients, NULL_UI).apply(plan)
    assert [r["kind"] for r in records] == ["load balancer"]
    (_, first), (_, second) = clients.log
    assert first == {"Name": "demo"}
    assert second["Dimensions"] == [{"Name": "LoadBalancer", "Value": "app/demo/abc"}]
    assert second["Body"] == '{"lb":"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/demo/abc"}'


def test_noop_steps_make_no_call() -> None:
    clients = FakeClients({})
    assert Executor(clients, NULL_UI).apply(Plan([Step("x", "y", Action.noop, calls=[ApiCall("ecs", "boom")])])) == []
    assert clients.log == []


def test_missing_codes_make_deletes_idempotent() -> None:
    def gone(**_: Any) -> None:
        raise client_error("ClusterNotFoundException")

    clients = FakeClients({"ecs": {"delete_cluster": gone}})
    step = Step("ecs cluster", "demo", Action.delete, calls=[
        ApiCall("ecs", "delete_cluster", {"cluster": "demo"}, missing=("ClusterNotFoundException",))])
    Executor(clients, NULL_UI).apply([step])  # no error
    with pytest.raises(AwsError, match="ecs cluster demo: .*ClusterNotFoundException"):
        Executor(clients, NULL_UI).apply([Step("ecs cluster", "demo", Action.delete, calls=[
            ApiCall("ecs", "delete_cluster", {"cluster": "demo"})])])


def test_retry_on_documented_codes_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_POLL_S", "0")
    attempts = []

    def flaky(**_: Any) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise client_error("DependencyViolation", "resource sg-1 has a dependent object")
        return {}

    clients = FakeClients({"ec2": {"delete_security_group": flaky}})
    step = Step("security group", "demo-alb", Action.delete, calls=[
        ApiCall("ec2", "delete_security_group", {"GroupId": "sg-1"}, retry=(RetryOn("DependencyViolation"),),
                retry_timeout_s=5)])
    Executor(clients, NULL_UI).apply([step])
    assert len(attempts) == 3


def test_retry_stops_on_other_errors_and_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_POLL_S", "0")

    def always(**_: Any) -> dict:
        raise client_error("DependencyViolation", "still in use")

    clients = FakeClients({"ec2": {"delete_security_group": always}})
    call = ApiCall("ec2", "delete_security_group", {"GroupId": "sg-1"}, retry=(RetryOn("DependencyViolation"),),
                   retry_timeout_s=0.05)
    with pytest.raises(AwsError, match="DependencyViolation"):
        Executor(clients, NULL_UI).apply([Step("security group", "x", Action.delete, calls=[call])])


def test_an_unresolved_ref_names_the_value_and_the_fix() -> None:
    step = Step("task definition", "demo", Action.create, calls=[
        ApiCall("ecs", "register_task_definition", {"containerDefinitions": [{"image": Ref("image")}]})])
    with pytest.raises(AwsError, match="no value for image") as info:
        Executor(FakeClients({}), NULL_UI).apply([step])
    assert "--image" in (info.value.hint or "")
    Executor(FakeClients({}), NULL_UI, values={"image": "repo@sha256:1"}).apply([step])


def test_waits_run_named_waiters_with_resolved_params() -> None:
    seen = []
    executor = Executor(FakeClients({}), NULL_UI, values={"arn": "td:2"},
                        waiters={"service_stable": lambda clients, ui, timeout, **kw: seen.append((timeout, kw))})
    executor.apply([Step("ecs service", "demo", Action.update, calls=[
        Wait("service_stable", {"service": "demo", "task_definition": Ref("arn")}, timeout_s=30)])])
    assert seen == [(30, {"service": "demo", "task_definition": "td:2"})]


def test_plan_json_shows_exactly_the_calls() -> None:
    plan = Plan([Step("ecs cluster", "demo", Action.create, ["container insights disabled"], calls=[
        ApiCall("ecs", "create_cluster", {"clusterName": "demo"}, outputs=(("cluster_arn", "cluster.clusterArn"),)),
        ApiCall("ecs", "tag_resource", {"resourceArn": Ref("cluster_arn")})])])
    doc = plan.to_json()
    assert doc["steps"][0]["calls"] == [
        {"call": "ecs.create_cluster", "params": {"clusterName": "demo"},
         "outputs": {"cluster_arn": "cluster.clusterArn"}},
        {"call": "ecs.tag_resource", "params": {"resourceArn": {"ref": "cluster_arn"}}}]
    assert plan.calls == list(plan.steps[0].calls)
