"""The AWS shadow phase as data (``AwsTarget.plan_shadow`` / ``plan_unshadow`` against ``FakeRemote``): the task
role's grant of the candidate's prefix, the stable task definition's shadow revision (its ``MLDEPLOY_SHADOW_*``
environment and ``mldeploy:shadow-of`` tag), the stable service moved onto it, and back on removal; the memory
rule; the refusal without ``model.store: s3``. The moto run of the real CLI is tests/test_shadow_aws.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mldeploy.aws.engine.model import ApiCall, Ref, Step, Wait
from mldeploy.aws.model_upload import ModelLocation, prefix_for
from mldeploy.aws.resources import model_store
from mldeploy.errors import ConfigError, MldeployError
from mldeploy.release.history import Outcome, Record
from mldeploy.release.targets import aws_plans
from mldeploy.release.targets.aws import AwsTarget
from mldeploy.ui import NULL_UI
from tests.unit.fakes import ACCOUNT, BASE_CONFIG, owned_tags, project
from tests.unit.release.fakes import MemoryHistory
from tests.unit.release.test_aws_plans import TD, ops, task_definition, world

S3 = BASE_CONFIG + "  store: s3\n"
BUCKET = f"mldeploy-{ACCOUNT}-us-east-1"
STABLE_LOC = ModelLocation(BUCKET, prefix_for("demo", "default", "1.0.0", "ab" * 32), "ab" * 32, 100 * 2**20, ACCOUNT)
CAND = ModelLocation(BUCKET, prefix_for("demo", "default", "1.1.0", "cd" * 32), "cd" * 32, 200 * 2**20, ACCOUNT)
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/demo-task"


def s3_td(rev: int, extra: dict[str, str] | None = None) -> dict[str, Any]:
    td = task_definition(rev, "img:v1", "1.0.0")
    td["containerDefinitions"][0]["environment"] += [{"name": k, "value": v} for k, v in {
        **STABLE_LOC.environment(), **(extra or {})}.items()]
    return td


def s3_world(*, shadow: bool = False, canary: int | None = None) -> Any:
    """``demo:1`` with model.store s3 on the stable service; ``shadow``: it runs ``demo:3``, the shadow of 1."""
    tds = {1: s3_td(1)}
    tags = {1: {"mldeploy:version": "1.0.0"}}
    if shadow:
        tds[3] = s3_td(3, {"MLDEPLOY_SHADOW_S3_PREFIX": CAND.prefix, "MLDEPLOY_SHADOW_INDEX_SHA256": CAND.index_sha256,
                           "MLDEPLOY_SHADOW_VERSION": "1.1.0", "MLDEPLOY_SHADOW_SAMPLE": "0.25"})
        tags[3] = {"mldeploy:version": "1.0.0", aws_plans.SHADOW_OF_TAG: TD.format(1)}
    remote = world(tds=tds, canary=canary)
    if canary is not None:
        tags[2] = {"mldeploy:version": "1.1.0"}
    if shadow:
        running = remote.answers[("ecs", "describe_services")]

        def services(cluster: str, services: list[str], include: Any = None) -> dict[str, Any]:
            found = running(cluster, services, include)
            for s in found["services"]:
                if s["serviceName"] == "demo":
                    s["taskDefinition"] = TD.format(3)
            return found

        remote.answer("ecs", "describe_services", services)

    def describe_td(taskDefinition: str, include: list[str] | None = None) -> dict[str, Any]:  # noqa: N803
        rev = max(tds) if taskDefinition == "demo" else int(taskDefinition.rsplit(":", 1)[1])
        return {"taskDefinition": tds[rev], "tags": [{"key": k, "value": v} for k, v in tags[rev].items()]}

    remote.answer("ecs", "describe_task_definition", describe_td)
    earlier = model_store.task_role_policy(aws_spec(), None, STABLE_LOC)
    remote.answer("iam", "get_role", {"Role": {"Arn": ROLE_ARN, "Tags": owned_tags()}})
    remote.answer("iam", "get_role_policy", {"PolicyDocument": earlier})
    remote.answer("iam", "list_attached_role_policies", {"AttachedPolicies": []})
    return remote


def aws_spec() -> Any:
    from tests.unit.fakes import spec

    return spec(project(S3))


@pytest.fixture(autouse=True)
def packaged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidate's packaged artifact (``mldeploy package`` output) is at ``CAND``."""
    monkeypatch.setattr(model_store, "local_location", lambda spec: CAND)


def target(remote: Any, config: str = S3, executor: Any = None) -> AwsTarget:
    return AwsTarget(project(config), clients=None, ui=NULL_UI, remote=remote,  # type: ignore[arg-type]
                     executor=executor)


def env_of(step: Step) -> dict[str, str]:
    (call,) = step.calls
    assert isinstance(call, ApiCall)
    return {e["name"]: e["value"] for e in call.params["containerDefinitions"][0]["environment"]}


def test_shadow_grants_the_prefix_registers_the_shadow_revision_and_rolls_the_stable_service() -> None:
    aws = target(s3_world())
    known: dict[str, Any] = {}
    steps = aws.plan_shadow(aws.snapshot(), "1.1.0", 0.25, known)
    assert ops(steps) == [
        ("iam role", "demo-task", "update", ["put_role_policy"]),
        ("task definition", "demo", "create", ["register_task_definition"]),
        ("ecs service", "demo", "update", ["update_service"]),
        ("ecs service", "demo", "update", ["wait service_stable"])]
    grant = json.loads(steps[0].calls[-1].params["PolicyDocument"])["Statement"][0]["Resource"]
    assert grant == [f"arn:aws:s3:::{BUCKET}/{STABLE_LOC.prefix}*", f"arn:aws:s3:::{BUCKET}/{CAND.prefix}*"]
    env = env_of(steps[1])
    assert {k: v for k, v in env.items() if k.startswith("MLDEPLOY_SHADOW_")} == {
        "MLDEPLOY_SHADOW_S3_PREFIX": CAND.prefix, "MLDEPLOY_SHADOW_INDEX_SHA256": CAND.index_sha256,
        "MLDEPLOY_SHADOW_VERSION": "1.1.0", "MLDEPLOY_SHADOW_SAMPLE": "0.25",
        "MLDEPLOY_SHADOW_BYTES": str(CAND.total_bytes),
        "MLDEPLOY_SHADOW_QUEUE": "64", "MLDEPLOY_SHADOW_QUEUE_BYTES": str(64 * 2**20)}  # no release.gates: defaults
    # the stable model is unchanged: same version, same prefix
    assert (env["MLDEPLOY_MODEL_VERSION"], env["MLDEPLOY_MODEL_S3_PREFIX"]) == ("1.0.0", STABLE_LOC.prefix)
    register = steps[1].calls[0].params
    assert {"key": aws_plans.SHADOW_OF_TAG, "value": TD.format(1)} in register["tags"]
    assert register["containerDefinitions"][0]["image"] == "img:v1"  # the stable image loads both
    ref = Ref("shadow.task_definition_arn")
    assert steps[2].calls[0].params["taskDefinition"] == ref and steps[2].calls[0].params["service"] == "demo"
    assert steps[3].calls == (Wait("service_stable", {"cluster": "demo", "service": "demo", "task_definition": ref,
                                                      "tg_arn": steps[3].calls[0].params["tg_arn"]},
                                   timeout_s=steps[3].calls[0].timeout_s),)
    # 512 MiB + 2 × (100 + 200) MiB = 1112 MiB of 2048: above nothing, below 80 %
    assert aws.memory_verdict is not None and aws.memory_verdict[0] == "ok"
    assert "1112 MiB" in aws.memory_verdict[1]


def test_the_shadow_revision_carries_the_configured_queue_bounds() -> None:
    """``release.gates.queue`` / ``queue_bytes`` reach the stable tasks as ``MLDEPLOY_SHADOW_QUEUE*``."""
    config = S3 + "release:\n  gates:\n    sample: 0.5\n    queue: 8\n    queue_bytes: 1048576\n"
    aws = target(s3_world(), config)
    steps = aws.plan_shadow(aws.snapshot(), "1.1.0", 0.5, {})
    env = env_of(steps[1])
    assert (env["MLDEPLOY_SHADOW_SAMPLE"], env["MLDEPLOY_SHADOW_QUEUE"], env["MLDEPLOY_SHADOW_QUEUE_BYTES"]) == (
        "0.5", "8", "1048576")


@pytest.mark.parametrize("gates, field", [("queue: 0", "queue"), ("queue: 10001", "queue"),
                                          ("queue_bytes: 1023", "queue_bytes"),
                                          (f"queue_bytes: {2**40 + 1}", "queue_bytes")])
def test_queue_bounds_outside_the_runtime_ranges_are_refused_naming_the_field(gates: str, field: str) -> None:
    from runtime.contract import shadow as limits

    assert (limits.QUEUE_MIN, limits.QUEUE_MAX, limits.QUEUE_BYTES_MIN, limits.QUEUE_BYTES_MAX) == (
        1, 10_000, 1024, 2**40)  # the ranges runtime.shadow.ShadowConfig.parse applies to routing.json
    with pytest.raises(ConfigError, match=rf"release\.gates\.{field}"):
        project(S3 + f"release:\n  gates:\n    {gates}\n")


def test_a_running_shadow_is_the_base_revision_to_the_history_and_is_removed_onto_it() -> None:
    aws = target(s3_world(shadow=True))
    snap = aws.snapshot()
    assert snap.stable == TD.format(1) and snap.detail.stable_td == TD.format(3)  # the lineage sees demo:1
    assert aws.shadow() == {"version": "1.1.0", "sample": 0.25, "task_definition": TD.format(3),
                            "base_task_definition": TD.format(1), "prefix": CAND.prefix}
    steps = aws.plan_unshadow(snap)
    assert ops(steps) == [("ecs service", "demo", "update", ["update_service"]),
                          ("ecs service", "demo", "update", ["wait service_stable"])]
    assert steps[0].calls[0].params["taskDefinition"] == TD.format(1)
    assert target(s3_world()).plan_unshadow(target(s3_world()).snapshot()) == []  # no shadow: nothing
    # a canary started during the shadow is copied from demo:1: no shadow variables reach it
    canary = aws.plan_canary(snap, "img:v2", "1.1.0", 10)[1]
    assert canary.kind == "task definition" and not any(k.startswith("MLDEPLOY_SHADOW_") for k in env_of(canary))
    assert "copy of revision 1" in str(canary.note)


class Recorder:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {"shadow.task_definition_arn": TD.format(3)}
        self.applied: list[str] = []

    def apply(self, steps: list[Step]) -> None:
        self.applied += [f"{s.kind} {s.name} {s.action}" for s in steps]

    def run_wait(self, wait: Wait) -> None:
        self.applied.append(f"wait {wait.params['service']}")


def test_set_shadow_records_it_and_promote_swap_and_canary_removal_close_it() -> None:
    rec = Recorder()
    aws = target(s3_world(), executor=rec)
    aws.history = history = MemoryHistory([Record(action="up", version="1.0.0", task_definition=TD.format(1),
                                                  revision=1, outcome=Outcome.succeeded)])
    assert aws.set_shadow("1.1.0", 0.25) == TD.format(3)
    shadow = history.list()[-1]
    assert (shadow.action, shadow.version, shadow.outcome, shadow.task_definition, shadow.from_revision) == (
        "shadow", "1.1.0", Outcome.active, TD.format(3), 1)
    assert "wait demo" in rec.applied
    # the canary is removed (rollback, a failed gate) while the stable tasks shadow: back onto demo:1, closed
    rec2 = Recorder()
    aws2 = target(s3_world(shadow=True, canary=0), executor=rec2)
    aws2.history = history
    aws2.remove_canary(aws2.snapshot())
    assert "ecs service demo update" in rec2.applied and rec2.applied[-1] == "wait demo"
    # (the fake keeps answering demo:3, so the record is closed only once the service left it: not here)
    assert history.list()[-1].outcome == Outcome.active
    aws3 = target(s3_world(), executor=Recorder())  # the service now runs demo:1
    aws3.history = history
    aws3.swap_stable(aws3.snapshot(), TD.format(1))
    assert history.list()[-1].outcome == Outcome.succeeded and "ended" in str(history.list()[-1].reason)


def test_no_wait_applies_the_shadow_and_names_the_rollout_it_did_not_wait_for() -> None:
    rec = Recorder()
    aws = AwsTarget(project(S3), clients=None, ui=NULL_UI, remote=s3_world(), executor=rec,  # type: ignore[arg-type]
                    wait=False)
    aws.set_shadow("1.1.0", 0.1)
    assert "ecs service demo update" in rec.applied and not any(a.startswith("wait") for a in rec.applied)
    assert aws.skipped == ["demo"]


def test_the_task_memory_must_hold_both_artifacts() -> None:
    mib = 2 ** 20
    assert aws_plans.memory_check(2048, 100 * mib, 200 * mib)[0] == "ok"
    level, why = aws_plans.memory_check(2048, 400 * mib, 400 * mib)  # 512 + 1600 = 2112 > 2048
    assert level == "refuse" and "2112 MiB" in why and "2048 MiB" in why
    assert aws_plans.memory_check(2048, 300 * mib, 400 * mib)[0] == "warn"  # 1912 > 80 %
    assert aws_plans.memory_check(2048, None, 10 * mib)[0] == "warn"  # the stable's size unknown: said so
    assert "taken as the candidate's" in aws_plans.memory_check(2048, None, 10 * mib)[1]


def test_set_shadow_refuses_before_any_change_when_the_task_cannot_hold_both_models(
        monkeypatch: pytest.MonkeyPatch) -> None:
    big = ModelLocation(BUCKET, CAND.prefix, CAND.index_sha256, 900 * 2**20, ACCOUNT)
    monkeypatch.setattr(model_store, "local_location", lambda spec: big)
    rec = Recorder()
    aws = target(s3_world(), executor=rec)
    aws.history = history = MemoryHistory()
    with pytest.raises(ConfigError, match=r"aws\.memory: .*2512 MiB") as e:  # 512 + 2 × (100 + 900) MiB > 2048
        aws.set_shadow("1.1.0", 0.1)
    assert e.value.exit_code == 3 and rec.applied == [] and history.list() == []


def test_without_the_s3_model_store_the_shadow_is_refused_naming_model_store() -> None:
    aws = target(world(), config=BASE_CONFIG)
    with pytest.raises(MldeployError, match=r"model\.store: s3") as e:
        aws.plan_shadow(aws.snapshot(), "1.1.0", 0.1, {})
    assert e.value.exit_code == 2


class StepRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []

    def apply(self, steps: list[Step]) -> None:
        self.steps += steps
        super().apply(steps)


def test_no_wait_requests_the_canary_deletion_without_its_drain_wait() -> None:
    """``--no-wait``: the canary service is scaled to 0 and deleted, the ``services_inactive`` wait is not run;
    the service is remembered as draining (``workflows.release`` records the removal as not verified)."""
    rec = StepRecorder()
    aws = AwsTarget(project(S3), clients=None, ui=NULL_UI, remote=s3_world(canary=10),  # type: ignore[arg-type]
                    executor=rec, wait=False)
    aws.apply(aws.plan_remove(aws.snapshot()))
    (deletion,) = [s for s in rec.steps if s.kind == "ecs service" and s.name == "demo-canary"]
    assert [c.op for c in deletion.calls] == ["update_service", "delete_service"]  # type: ignore[union-attr]
    assert not any(isinstance(c, Wait) for s in rec.steps for c in s.calls)
    assert not any(a.startswith("wait") for a in rec.applied)
    assert aws.draining == ["demo-canary"] and aws.skipped == []
    # waiting (the default): the same step with its wait
    rec2 = StepRecorder()
    target(s3_world(canary=10), executor=rec2).apply(target(s3_world(canary=10)).plan_remove(
        target(s3_world(canary=10)).snapshot()))
    (deletion,) = [s for s in rec2.steps if s.kind == "ecs service" and s.name == "demo-canary"]
    assert isinstance(deletion.calls[-1], Wait) and deletion.calls[-1].what == "services_inactive"


def test_promote_during_a_shadow_without_a_canary_says_what_runs_and_what_fits() -> None:
    from mldeploy.release.state import TransitionError
    from mldeploy.workflows.release import _refuse_promoting_a_shadow

    with pytest.raises(TransitionError) as e:
        _refuse_promoting_a_shadow(target(s3_world(shadow=True)))
    assert e.value.exit_code == 10
    assert e.value.message == (
        "no canary is active for demo: 1.1.0 runs only as a shadow (the stable tasks of demo, task definition "
        "revision 3, evaluate it on 25% of their requests; it answers no client), so there is nothing to promote")
    assert "`mldeploy canary --percent N`" in str(e.value.hint) and "`mldeploy canary --report`" in str(e.value.hint)
    assert "`mldeploy rollback` ends the shadow" in str(e.value.hint)
    _refuse_promoting_a_shadow(target(s3_world(shadow=True, canary=10)))  # a canary: promote applies
    _refuse_promoting_a_shadow(target(s3_world()))  # neither: the generic "no canary" of ops.promote
