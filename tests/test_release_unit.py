"""Release internals: the transition rules, the stable lineage, the waits (stubbed clients), and history/lock
against the moto server in-process."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mldeploy.aws import waiters
from mldeploy.aws.engine.executor import Executor
from mldeploy.aws.resources import service
from mldeploy.errors import AwsError, ExitCode, LockHeldError, NotReadyError, RolledBackError
from mldeploy.release.history import Outcome, Record, stable_lineage
from mldeploy.release.progressive import steps_from
from mldeploy.release.state import (
    CanaryMove,
    ReleaseState,
    TransitionError,
    check_percent,
    check_promote,
    check_rollback_to,
    plan_canary,
)
from mldeploy.release.targets import aws_plans
from mldeploy.release.targets.aws_read import Fleet, listener_weights
from mldeploy.ui import NULL_UI
from tests.release_helpers import write_project

STABLE = ReleaseState(target="app", stable="img:v1")
CANARY = ReleaseState(target="app", stable="img:v1", canary="img:v2", canary_percent=10)


def test_transitions():
    assert plan_canary(STABLE, "img:v2", 10) is CanaryMove.start
    assert plan_canary(STABLE, None, 0) is CanaryMove.start  # image built later
    assert plan_canary(CANARY, None, 50) is CanaryMove.shift
    assert plan_canary(CANARY, "img:v2", 100) is CanaryMove.shift
    with pytest.raises(TransitionError, match="already active .* with img:v2 .*another one with img:v3"):
        plan_canary(CANARY, "img:v3", 50)
    with pytest.raises(TransitionError, match="img:v1 is already the stable version"):
        plan_canary(STABLE, "img:v1", 10)
    with pytest.raises(TransitionError, match="nothing is deployed"):
        plan_canary(ReleaseState(target="app", stable=None), "img:v2", 10)
    for bad in (-1, 101):
        with pytest.raises(TransitionError, match="outside 0–100") as e:
            check_percent(bad)
        assert e.value.exit_code == ExitCode.USAGE
    check_percent(None, required=False)
    with pytest.raises(TransitionError, match="nothing to promote"):
        check_promote(STABLE)
    check_promote(CANARY)
    with pytest.raises(TransitionError, match="roll it back before"):
        check_rollback_to(CANARY, "1.0.0")
    check_rollback_to(STABLE, "1.0.0")


def rec(i: int, action: str, td: str, outcome: str = Outcome.succeeded) -> Record:
    return Record(id=i, action=action, version=td, task_definition=td, outcome=outcome)


def test_stable_lineage_is_a_stack():
    records = [rec(1, "up", "v1"), rec(2, "canary", "v2", Outcome.promoted), rec(3, "promote", "v2"),
               rec(4, "up", "v3"), rec(5, "canary", "v4", Outcome.rolled_back), rec(6, "rollback", "v3"),
               rec(7, "up", "v5", Outcome.failed)]
    assert [r.version for r in stable_lineage(records)] == ["v1", "v2", "v3"]
    records.append(rec(8, "rollback", "v2"))  # previous of v3
    assert [r.version for r in stable_lineage(records)] == ["v1", "v2"]  # no ping-pong back to v3
    records.append(rec(9, "rollback", "v5"))  # --to a version off the stack is pushed
    assert [r.version for r in stable_lineage(records)] == ["v1", "v2", "v5"]
    assert Record(version="1.2.0", revision=7).matches("7") and Record(version="1.2.0").matches("1.2.0")


def test_steps_from():
    assert steps_from([10, 25, 50, 100], None) == [10, 25, 50, 100]
    assert steps_from([10, 25, 50, 100], 5) == [5, 10, 25, 50, 100]
    assert steps_from([10, 25, 50, 100], 30) == [30, 50, 100]


# ---------------------------------------------------------------------------------- waits (moto runs no tasks)


class StubClients:
    """ECS/ELBv2 answers in sequence (the last one repeats)."""

    def __init__(self, rollouts: list[str], create_errors: int = 0) -> None:
        self.rollouts, self.create_errors, self.created = rollouts, create_errors, 0
        self.ecs = SimpleNamespace(describe_services=self._services, create_service=self._create)
        self.elbv2 = SimpleNamespace(describe_target_health=lambda **_: {"TargetHealthDescriptions": []})

    def get(self, name: str) -> Any:
        return getattr(self, name)

    def _services(self, **_: Any) -> dict[str, Any]:
        state = self.rollouts.pop(0) if len(self.rollouts) > 1 else self.rollouts[0]
        return {"services": [{"serviceName": "app", "status": "ACTIVE", "taskDefinition": "td:2",
                              "desiredCount": 2, "runningCount": 2 if state == "COMPLETED" else 1,
                              "deployments": [{"status": "PRIMARY", "rolloutState": state, "taskDefinition": "td:2"}]}]}

    def _create(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if self.created < self.create_errors:
            self.created += 1
            raise ClientError({"Error": {"Code": "InvalidParameterException",
                                         "Message": "Unable to Start a service that is still Draining."}},
                              "CreateService")
        return {"service": {"serviceName": kwargs["serviceName"], "taskDefinition": kwargs["taskDefinition"]}}


def canary_spec(timeout: int = 10) -> Any:
    """A canary-role spec of app ``demo`` (cluster ``demo``) with ``release.stability_timeout_s: timeout``."""
    from tests.unit.fakes import BASE_CONFIG, project, spec

    return spec(project(BASE_CONFIG + f"release:\n  stability_timeout_s: {timeout}\n"), role="canary",
                desired_count=1)


def run_steps(stub: StubClients, steps: list[Any]) -> None:
    Executor(stub, NULL_UI, waiters=waiters.WAITERS).apply(steps)  # type: ignore[arg-type]


@pytest.fixture
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_POLL_S", "0.01")
    monkeypatch.delenv("MLDEPLOY_SKIP_HEALTH_WAIT", raising=False)


def wait_step(timeout: int = 10) -> Any:
    spec = canary_spec(timeout)
    known = {"canary.task_definition_arn": "td:2", "canary.tg_arn": "arn:tgc"}
    return aws_plans.waiting(spec, service.wait_stable(spec, known))


def test_waits_poll_until_the_rollout_completes(fast_poll: None):
    stub = StubClients(rollouts=["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"])
    run_steps(stub, [wait_step()])
    assert stub.rollouts == ["COMPLETED"]  # polled until the rollout completed
    stub = StubClients(rollouts=["IN_PROGRESS", "COMPLETED"])
    run_steps(stub, [wait_step()])
    assert stub.rollouts == ["COMPLETED"]
    with pytest.raises(RolledBackError, match="circuit breaker"):
        run_steps(StubClients(rollouts=["FAILED"]), [wait_step()])


def test_wait_times_out(fast_poll: None, monkeypatch: pytest.MonkeyPatch):
    clock = iter(range(0, 1000, 3))
    monkeypatch.setattr("mldeploy.polling.time.monotonic", lambda: next(clock))
    with pytest.raises(NotReadyError, match="not stable after 10s"):
        run_steps(StubClients(rollouts=["IN_PROGRESS"]), [wait_step()])


def test_canary_service_creation_waits_for_a_draining_predecessor(fast_poll: None):
    from tests.unit.fakes import FakeRemote

    known = {"canary.task_definition_arn": "td:3", "canary.tg_arn": "arn:tgc", "subnet_ids": ["s-1"],
             "task_sg_id": "sg-1"}
    remote = FakeRemote({("ecs", "describe_services"): {"services": []}})
    (create,) = service.plan(canary_spec(), remote, known)
    stub = StubClients(rollouts=["COMPLETED"], create_errors=2)
    run_steps(stub, [create])
    assert stub.created == 2
    impatient = replace(create, calls=[replace(create.calls[0], retry_timeout_s=0.0)])
    with pytest.raises(AwsError, match="still Draining"):
        run_steps(StubClients(rollouts=["COMPLETED"], create_errors=99), [impatient])


def test_weights_parsing():
    arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{}/abc"
    plain = {"DefaultActions": [{"Type": "forward", "TargetGroupArn": arn.format("app-tg")}]}
    assert listener_weights(plain) == {"app-tg": 1}
    weighted = {"DefaultActions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": arn.format("app-tg"), "Weight": 75}, {"TargetGroupArn": arn.format("app-tgc"),
                                                                  "Weight": 25}]}}]}
    fleet = Fleet(cluster="app", canary={"taskDefinition": "x"}, canary_tg={"TargetGroupName": "app-tgc"},
                  listeners=[weighted])
    assert fleet.canary_percent == 25
    assert Fleet(cluster="a", stable={"desiredCount": 6}).canary_count(10) == 1
    assert Fleet(cluster="a", stable={"desiredCount": 6}).canary_count(50) == 3


# ------------------------------------------------------------------------------ history and lock on SSM (moto)


@pytest.fixture
def ctx(tmp_path: Path, aws: dict[str, str]) -> Any:
    """The project, its clients and the SSM client (what the release commands get from the CLI)."""
    from mldeploy.aws.clients import clients
    from mldeploy.config import load_project

    project = load_project(write_project(tmp_path / "p") / "mldeploy.yaml")
    aws_clients = clients(project)
    return SimpleNamespace(project=project, clients=aws_clients, names=project.names, ssm=aws_clients.get("ssm"),
                           ecs=aws_clients.get("ecs"))


def ssm_history(ctx: Any) -> Any:
    from mldeploy.release.stores import SsmHistory

    return SsmHistory(ctx.clients, ctx.names, ctx.names.tags(), git_commit=None)


def lock(ctx: Any, command: str, **kwargs: Any) -> Any:
    from mldeploy.release.lock import DeployLock

    return DeployLock(ctx.clients, ctx.names, command, **kwargs)


def test_history_ids_collisions_and_pruning(ctx: Any, monkeypatch: pytest.MonkeyPatch):
    from mldeploy.release import stores

    h = ssm_history(ctx)
    first = h.add(Record(action="up", version="1.0.0", task_definition="td:1", outcome=Outcome.succeeded))
    # a second writer that read the history before `first` existed still gets a fresh id
    second = h.add(Record(action="canary", version="1.1.0", task_definition="td:2"), existing=[])
    assert (first.id, second.id) == (1, 2)
    h.update(second, outcome=Outcome.rolled_back, reason="alarm")
    stored = h.list()
    assert [(r.id, r.outcome) for r in stored] == [(1, "succeeded"), (2, "rolled_back")]
    assert stored[1].finished_at and stored[1].reason == "alarm" and stored[0].actor
    tags = ctx.ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/mldeploy/app/default/"
                                                    "releases/000001")["TagList"]
    assert {"Key": "mldeploy:app", "Value": "app"} in tags
    monkeypatch.setattr(stores, "MAX_RECORDS", 3)
    for v in ("1.2.0", "1.3.0"):
        h.add(Record(action="up", version=v, task_definition=v, outcome=Outcome.succeeded))
    assert [r.id for r in h.list()] == [2, 3, 4]


def test_lock_conditional_write_refresh_and_force(ctx: Any):
    with lock(ctx, "canary --percent 10", ttl_s=60) as held:
        value = json.loads(ctx.ssm.get_parameter(Name=held.name)["Parameter"]["Value"])
        assert value["command"] == "canary --percent 10" and value["expires_at"] > time.time() + 50
        with pytest.raises(LockHeldError, match="in progress: the lock is held by .*canary --percent 10") as e:
            lock(ctx, "promote").acquire()
        assert e.value.exit_code == ExitCode.LOCKED
        breaker = lock(ctx, "rollback", force_unlock=True)
        breaker.acquire()  # explicit --force-unlock takes it over
        assert breaker.broken is not None and breaker.broken.token == held.info.token
        with pytest.raises(LockHeldError, match="lost the deployment lock"):
            held.refresh()
    # the original holder's exit must not delete the breaker's lock
    assert lock(ctx, "x").read().token == breaker.info.token
    breaker.release()
    assert lock(ctx, "x").read() is None


def test_lock_left_by_a_killed_process_on_this_machine_is_broken_automatically(ctx: Any):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited and been reaped
    name = lock(ctx, "x").name
    for host, pid, breaks in ((socket.gethostname(), dead_pid, True), ("ci-runner-9", dead_pid, False),
                              (socket.gethostname(), 1, False)):
        info = {"holder": "job", "pid": pid, "host": host, "command": "up", "token": "t",
                "acquired_at": time.time(), "expires_at": time.time() + 600}
        ctx.ssm.put_parameter(Name=name, Value=json.dumps(info), Type="String", Overwrite=True)
        taker = lock(ctx, "up")
        if breaks:
            taker.acquire()  # no --force-unlock needed: the holder is gone from this very machine
            assert taker.broken is not None and taker.broken.pid == dead_pid
            taker.release()
        else:  # another machine's process (unknowable) or a live local one (pid 1): still held
            with pytest.raises(LockHeldError, match="in progress"):
                taker.acquire()
    ctx.ssm.delete_parameter(Name=name)


def test_load_reconciles_interrupted_commands_unless_locked(ctx: Any):
    from mldeploy.release import ops
    from mldeploy.workflows.release import aws_release, sync
    from mldeploy.workflows.release import history as read_history

    def load() -> Any:
        return ops.load(*aws_release(ctx.project, ctx.clients, NULL_UI))

    ecs = ctx.ecs
    ecs.create_cluster(clusterName="app")
    tds = [ecs.register_task_definition(family="app", containerDefinitions=[{
        "name": "model", "image": f"r/app:v{i}", "memory": 512, "environment": [{"name": "MLDEPLOY_MODEL_VERSION",
                                                                    "value": f"1.{i}.0"}]}])["taskDefinition"]
           ["taskDefinitionArn"] for i in (1, 2, 3)]
    ecs.create_service(cluster="app", serviceName="app", taskDefinition=tds[1], desiredCount=1)
    h = ssm_history(ctx)
    h.add(Record(action="up", version="1.1.0", task_definition=tds[0], outcome=Outcome.succeeded))
    h.add(Record(action="promote", version="1.2.0", task_definition=tds[1]))  # killed after update_service
    h.add(Record(action="canary", version="1.3.0", task_definition=tds[2]))  # killed; its service is gone
    with lock(ctx, "promote"):  # a running command's records are left alone
        assert [r["outcome"] for r in read_history(ctx.project, ctx.clients)] == ["succeeded", "in_progress",
                                                                                 "in_progress"]
    records = load().records
    assert [(r.action, r.outcome) for r in records] == [("up", "succeeded"), ("promote", "succeeded"),
                                                        ("canary", "failed")]
    ecs.update_service(cluster="app", service="app", taskDefinition=tds[2])  # `up` deployed without a record
    sync(ctx.project, ctx.clients)
    records = h.list()
    assert (records[-1].action, records[-1].version, records[-1].revision) == ("up", "1.3.0", 3)
