"""``up`` / ``plan`` while the stable tasks shadow a candidate, as data (``release.shadow_up.keep_shadow`` on the
task-definition, service and outputs steps ``stack.plan_up`` makes, against ``FakeRemote``): the shadow is kept
on an unchanged config, re-registered on the new stable revision of a changed one, ended when the config deploys
the candidate itself, and refused by the memory rule ``canary --shadow`` applies. The moto run of the real CLI is
tests/test_shadow_aws.py."""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Plan, Ref, Step, noop
from mldeploy.aws.resources import service, stack_outputs, task_definition
from mldeploy.errors import ConfigError
from mldeploy.release import shadow_up
from mldeploy.release.targets import aws_plans
from tests.unit.aws.test_plan_service import (
    ECS,
    IMAGE_A,
    ecs_service,
    services,
    task_definitions,
    td_arn,
)
from tests.unit.aws.test_plan_service import known_existing as plan_known
from tests.unit.aws.test_plan_service import revision as plan_revision
from tests.unit.fakes import BASE_CONFIG, FakeRemote, project
from tests.unit.fakes import spec as base_spec
from tests.unit.release.test_shadow_aws_plan import STABLE_LOC

MIB = 2**20
S3 = BASE_CONFIG + "  store: s3\n"  # the stable tasks download both artifacts from the S3 model store


def spec(proj: Any = None, **kw: Any) -> Any:
    return base_spec(proj or project(S3), **kw)


def known_existing() -> dict[str, Any]:
    """What the earlier families put in ``known``, with the stable's artifact in the model store (100 MiB)."""
    return {**plan_known(), "model_location": STABLE_LOC}


def revision(s: Any, rev: int, image: str) -> dict[str, Any]:
    return plan_revision(s, rev, image, known_existing())
SHADOW = {"MLDEPLOY_SHADOW_S3_PREFIX": "demo/default/1.1.0/cd/", "MLDEPLOY_SHADOW_INDEX_SHA256": "cd" * 32,
          "MLDEPLOY_SHADOW_VERSION": "1.1.0", "MLDEPLOY_SHADOW_SAMPLE": "0.25",
          "MLDEPLOY_SHADOW_BYTES": str(10 * MIB)}


def shadow_revision(s: Any, rev: int, base: int, env: dict[str, str] = SHADOW) -> dict[str, Any]:
    """The shadow revision ``canary --shadow`` registered: base ``base`` plus the ``MLDEPLOY_SHADOW_*`` variables."""
    found = revision(s, rev, IMAGE_A)
    container = found["taskDefinition"]["containerDefinitions"][0]
    container["environment"] = [*container["environment"], *({"name": k, "value": v} for k, v in env.items())]
    found["tags"] = [*found["tags"], {"key": aws_plans.SHADOW_OF_TAG, "value": td_arn(base)}]
    return found


def shadow_world(s: Any, env: dict[str, str] = SHADOW) -> FakeRemote:
    """``demo:3`` is the stable revision from the config; the stable service runs ``demo:4``, its shadow."""
    base, shadow = revision(s, 3, IMAGE_A), shadow_revision(s, 4, 3, env)
    return FakeRemote({
        ("ecs", "describe_services"): services(ecs_service(s, td_arn(4))),
        ("ecs", "describe_task_definition"): task_definitions({td_arn(3): base, td_arn(4): shadow, "demo": shadow}),
        ("ssm", "get_parameters"): {"Parameters": [
            {"Name": f"/mldeploy/demo/default/{k}", "Value": v}
            for k, v in {"url": "http://demo-1.us-east-1.elb.amazonaws.com", "image": IMAGE_A,
                         "task-definition": td_arn(3), "alb-dns": "demo-1.us-east-1.elb.amazonaws.com"}.items()]},
    })


def up_plan(s: Any, remote: FakeRemote) -> tuple[Plan, dict[str, Any]]:
    """The task definition, service and outputs steps of ``stack.plan_up`` (the families ``keep_shadow`` edits)."""
    known = known_existing()
    plan = Plan()
    plan.add(task_definition.plan(s, remote, known))
    plan.add(service.plan(s, remote, known))
    plan.add(stack_outputs.plan(s, remote, known))
    return plan, known


def test_without_a_shadow_the_plan_is_left_as_it_is() -> None:
    s = spec()
    remote = FakeRemote({("ecs", "describe_services"): services(ecs_service(s, td_arn(3))),
                         ("ecs", "describe_task_definition"): task_definitions({td_arn(3): revision(s, 3, IMAGE_A),
                                                                                "demo": revision(s, 3, IMAGE_A)})})
    plan = Plan([noop("task definition", "demo:3"), noop("ecs service", "demo")])
    assert shadow_up.keep_shadow(s, remote, known_existing(), plan) is None
    assert plan.steps == [noop("task definition", "demo:3"), noop("ecs service", "demo")]


def test_an_unchanged_config_keeps_the_shadow_revision_and_changes_nothing() -> None:
    s = spec(image=IMAGE_A)
    remote = shadow_world(s)
    plan, known = up_plan(s, remote)
    # left alone, `up` would register a revision without the shadow and move the service onto it
    assert [(st.kind, st.action) for st in plan.steps] == [
        ("task definition", Action.update), ("ecs service", Action.update), ("outputs (ssm)", Action.update)]
    assert "MLDEPLOY_SHADOW_BYTES" in " ".join(plan.steps[0].changes)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and (kept.outcome, kept.version, kept.running, kept.memory) == (
        "kept", "1.1.0", td_arn(4), None)
    assert plan.steps == [Step("task definition", "demo:3", Action.noop, note="shadow revision demo:4 of 1.1.0 kept"),
                          noop("ecs service", "demo"), noop("outputs (ssm)", "/mldeploy/demo/default")]
    assert known["task_definition_arn"] == td_arn(4)  # what `up` waits for: the revision the service runs
    assert plan.notes == ["the stable tasks keep shadowing 1.1.0 (their shadow revision is unchanged)"]


def test_a_changed_config_registers_the_new_stable_revision_and_a_shadow_revision_of_it() -> None:
    s = spec(project(S3 + "aws:\n  environment: {FEATURE_FLAG: 'on'}\n"), image=IMAGE_A)
    remote = shadow_world(spec(image=IMAGE_A))
    plan, known = up_plan(s, remote)
    want = task_definition.desired(s, known, IMAGE_A)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and kept.outcome == "re-registered"
    base_step, shadow_step, svc, outputs = plan.steps
    assert (base_step.kind, base_step.name, base_step.action) == ("task definition", "demo", Action.update)
    assert base_step.calls == (ApiCall("ecs", "register_task_definition", want,
                                       outputs=(("task_definition_arn", "taskDefinition.taskDefinitionArn"),)),)
    (register,) = shadow_step.calls
    assert isinstance(register, ApiCall) and register.outputs == (
        ("shadow.task_definition_arn", "taskDefinition.taskDefinitionArn"),)
    env = {e["name"]: e["value"] for e in register.params["containerDefinitions"][0]["environment"]}
    assert env == {**{e["name"]: e["value"] for e in want["containerDefinitions"][0]["environment"]}, **SHADOW,
                   "MLDEPLOY_SHADOW_QUEUE": "64", "MLDEPLOY_SHADOW_QUEUE_BYTES": str(64 * MIB)}  # no release.gates
    assert {"key": aws_plans.SHADOW_OF_TAG, "value": Ref("task_definition_arn")} in register.params["tags"]
    assert {k: v for k, v in register.params.items() if k not in ("containerDefinitions", "tags")} == {
        k: v for k, v in want.items() if k not in ("containerDefinitions", "tags")}
    assert (shadow_step.name, shadow_step.action) == ("demo (shadow of 1.1.0)", Action.create)
    assert "shadow 1.1.0 on 25% of the requests kept" in shadow_step.changes
    # the service onto the new shadow revision; the outputs name the new stable revision
    assert svc.calls[0].params["taskDefinition"] == Ref("shadow.task_definition_arn")  # type: ignore[union-attr]
    assert [c.params for c in outputs.calls] == [  # type: ignore[union-attr]
        {"Name": "/mldeploy/demo/default/task-definition", "Value": Ref("task_definition_arn"), "Type": "String",
         "Overwrite": True}]
    assert known["task_definition_arn"] == Ref("shadow.task_definition_arn")
    # 512 MiB + 2 × (100 + 10) MiB = 732 MiB of 1024 MiB: below 80 %
    assert kept.memory == ("ok", "both artifacts need about 732 MiB (512 MiB + 2 × (100 + 10) MiB) of the task's "
                                 "1024 MiB")


def test_a_re_registered_shadow_revision_takes_the_configured_queue_bounds() -> None:
    """The running shadow was started with other bounds (or before they existed): the config is the source."""
    config = S3 + "aws:\n  environment: {FEATURE_FLAG: 'on'}\nrelease:\n  gates: {queue: 16, queue_bytes: 4096}\n"
    s = spec(project(config), image=IMAGE_A)
    remote = shadow_world(spec(image=IMAGE_A), {**SHADOW, "MLDEPLOY_SHADOW_QUEUE": "64"})
    plan, known = up_plan(s, remote)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and kept.outcome == "re-registered"
    (register,) = plan.steps[1].calls
    env = {e["name"]: e["value"] for e in register.params["containerDefinitions"][0]["environment"]}  # type: ignore[union-attr]
    assert (env["MLDEPLOY_SHADOW_QUEUE"], env["MLDEPLOY_SHADOW_QUEUE_BYTES"]) == ("16", "4096")
    assert env["MLDEPLOY_SHADOW_SAMPLE"] == "0.25"  # the rest of the shadow is kept as it runs


def test_a_killed_up_reuses_the_revisions_it_registered() -> None:
    changed = spec(project(S3 + "aws:\n  environment: {FEATURE_FLAG: 'on'}\n"), image=IMAGE_A)
    s = spec(image=IMAGE_A)
    remote = shadow_world(s)
    tds = {td_arn(3): revision(s, 3, IMAGE_A), td_arn(4): shadow_revision(s, 4, 3),
           td_arn(5): revision(changed, 5, IMAGE_A),  # the killed run wrote the config's queue bounds too
           td_arn(6): shadow_revision(changed, 6, 5, {**SHADOW, **aws_plans.queue_env(changed)})}
    remote.answer("ecs", "describe_task_definition", task_definitions({**tds, "demo": tds[td_arn(6)]}))
    plan, known = up_plan(changed, remote)
    kept = shadow_up.keep_shadow(changed, remote, known, plan)
    assert kept is not None and kept.outcome == "re-registered"
    assert [(st.name, st.action) for st in plan.steps[:3]] == [
        ("demo:5", Action.noop), ("demo:6", Action.noop), ("demo", Action.update)]
    assert plan.steps[2].calls[0].params["taskDefinition"] == td_arn(6)  # type: ignore[union-attr]


def test_deploying_the_candidate_itself_ends_the_shadow() -> None:
    s = spec(project(S3.replace("1.0.0", "1.1.0")), image=IMAGE_A)
    remote = shadow_world(spec(image=IMAGE_A))
    plan, known = up_plan(s, remote)
    before = list(plan.steps)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and kept.outcome == "ended" and plan.steps == before  # a plain revision, no shadow env
    register = plan.steps[0].calls[0].params  # type: ignore[union-attr]
    assert not any(e["name"].startswith("MLDEPLOY_SHADOW_") for e in register["containerDefinitions"][0]["environment"])
    assert "shadow evaluation of 1.1.0 ends" in plan.notes[0]


def test_plan_and_canary_shadow_refuse_with_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """512 MiB + 2 × (100 + 300) MiB > 1024: the re-registered shadow revision is refused by ``memory_check`` —
    the rule ``canary --shadow`` (``AwsTarget.set_shadow``) applies — with the same error (exit 3)."""
    calls: list[tuple[Any, ...]] = []
    real = aws_plans.memory_check
    monkeypatch.setattr(aws_plans, "memory_check", lambda *a: calls.append(a) or real(*a))
    big = {**SHADOW, "MLDEPLOY_SHADOW_BYTES": str(300 * MIB)}
    s = spec(project(S3 + "aws:\n  environment: {FEATURE_FLAG: 'on'}\n"), image=IMAGE_A)
    remote = shadow_world(spec(image=IMAGE_A), big)
    plan, known = up_plan(s, remote)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and kept.memory is not None and kept.memory[0] == "refuse"
    assert calls == [(1024, 100 * MIB, 300 * MIB)]
    with pytest.raises(ConfigError) as e:
        aws_plans.enforce_memory(kept.memory)
    assert e.value.exit_code == 3
    assert ("aws.memory: the stable tasks cannot hold the stable and the shadow model: both "
                               "artifacts need about 1312 MiB (512 MiB + 2 × (100 + 300) MiB) of the task's "
                               "1024 MiB") in e.value.message
    # canary --shadow: the same function, the same refusal before any change
    from mldeploy.aws.model_upload import ModelLocation
    from mldeploy.aws.resources import model_store
    from tests.unit.release import test_shadow_aws_plan as shadow_plans

    cand = shadow_plans.CAND
    monkeypatch.setattr(model_store, "local_location", lambda spec: ModelLocation(
        cand.bucket, cand.prefix, cand.index_sha256, 900 * MIB, cand.owner))
    rec = shadow_plans.Recorder()
    with pytest.raises(ConfigError) as e2:
        shadow_plans.target(shadow_plans.s3_world(), executor=rec).set_shadow("1.1.0", 0.1)
    assert calls[-1] == (2048, 100 * MIB, 900 * MIB) and rec.applied == []
    assert e2.value.exit_code == 3 and "aws.memory: the stable tasks cannot hold the stable and the shadow model: " \
        "both artifacts need about 2512 MiB" in e2.value.message


def test_the_service_arn_is_untouched() -> None:
    s = spec(image=IMAGE_A)
    remote = shadow_world(s)
    plan, known = up_plan(s, remote)
    shadow_up.keep_shadow(s, remote, known, plan)
    assert known["service_arn"] == f"{ECS}:service/demo/demo"


def test_without_the_s3_model_store_the_shadow_ends() -> None:
    s = spec(project(BASE_CONFIG), image=IMAGE_A)
    remote = shadow_world(spec(image=IMAGE_A))
    plan, known = up_plan(s, remote)
    before = list(plan.steps)
    kept = shadow_up.keep_shadow(s, remote, known, plan)
    assert kept is not None and kept.outcome == "ended" and plan.steps == before
    assert "model.store is no longer s3" in plan.notes[0]
