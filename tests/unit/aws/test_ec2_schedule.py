"""``aws.autoscaling.schedule`` → Application Auto Scaling scheduled actions, as data; the cron validation."""

from __future__ import annotations

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Step
from mldeploy.aws.resources import autoscaling
from mldeploy.config.schema import parse_cron
from mldeploy.errors import ConfigError
from tests.unit.fakes import BASE_CONFIG, FakeRemote, project, spec

SCHEDULED = BASE_CONFIG + """aws:
  autoscaling:
    min: 2
    max: 6
    schedule:
      - {cron: '0 20 ? * MON-FRI *', min: 1, max: 2}
      - {cron: 'cron(0 7 ? * MON-FRI *)', min: 2, max: 6}
"""
TARGET = {"ServiceNamespace": "ecs", "ResourceId": "service/demo/demo", "ScalableDimension": "ecs:service:DesiredCount"}
KNOWN = {"alb_full_name": "app/demo/abc", "tg_arn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/demo-tg/1"}


def put(name: str, cron: str, lo: int, hi: int) -> ApiCall:
    return ApiCall("application-autoscaling", "put_scheduled_action", {
        "ScheduledActionName": name, **TARGET, "Schedule": f"cron({cron})",
        "ScalableTargetAction": {"MinCapacity": lo, "MaxCapacity": hi}},
        retry=autoscaling.POLICY_RETRY, retry_timeout_s=autoscaling.PROPAGATION_S)


def remote(target: tuple[int, int] | None, actions: list[dict]) -> FakeRemote:
    s = spec(project(SCHEDULED))
    return FakeRemote({
        ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": [] if target is None else [
            {"MinCapacity": target[0], "MaxCapacity": target[1]}]},
        ("application-autoscaling", "describe_scaling_policies"): {"ScalingPolicies": [
            {"PolicyName": n, "TargetTrackingScalingPolicyConfiguration": c}
            for n, c in autoscaling.policies(s, KNOWN).items()]},
        ("application-autoscaling", "describe_scheduled_actions"): {"ScheduledActions": actions},
    })


def test_new_target_gets_one_scheduled_action_per_entry() -> None:
    steps = autoscaling.plan(spec(project(SCHEDULED)), remote(None, []), dict(KNOWN))
    scheduled = [st for st in steps if st.kind == "scheduled action"]
    assert scheduled == [
        Step("scheduled action", "demo-schedule-1", Action.create,
             ["cron(0 20 ? * MON-FRI *) UTC → min 1, max 2"],
             calls=[put("demo-schedule-1", "0 20 ? * MON-FRI *", 1, 2)]),
        Step("scheduled action", "demo-schedule-2", Action.create,
             ["cron(0 7 ? * MON-FRI *) UTC → min 2, max 6"],
             calls=[put("demo-schedule-2", "0 7 ? * MON-FRI *", 2, 6)]),
    ]


def test_in_sync_schedule_is_a_noop_even_while_a_scheduled_range_holds() -> None:
    actions = [{"ScheduledActionName": "demo-schedule-1", "Schedule": "cron(0 20 ? * MON-FRI *)",
                "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 2}},
               {"ScheduledActionName": "demo-schedule-2", "Schedule": "cron(0 7 ? * MON-FRI *)",
                "ScalableTargetAction": {"MinCapacity": 2, "MaxCapacity": 6}}]
    # at night the night action set the target to 1–2: not drift to undo
    steps = autoscaling.plan(spec(project(SCHEDULED)), remote((1, 2), actions), dict(KNOWN))
    assert all(st.action is Action.noop for st in steps), [st.message for st in steps]
    # a range no entry names is drift
    steps = autoscaling.plan(spec(project(SCHEDULED)), remote((3, 3), actions), dict(KNOWN))
    assert steps[0].action is Action.update


def test_changed_and_removed_entries_update_and_delete() -> None:
    actions = [{"ScheduledActionName": "demo-schedule-1", "Schedule": "cron(0 21 ? * MON-FRI *)",
                "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 2}},
               {"ScheduledActionName": "demo-schedule-9", "Schedule": "cron(0 1 ? * * *)",
                "ScalableTargetAction": {"MinCapacity": 0, "MaxCapacity": 1}}]
    steps = [st for st in autoscaling.plan(spec(project(SCHEDULED)), remote((2, 6), actions), dict(KNOWN))
             if st.kind == "scheduled action"]
    assert [(st.name, st.action) for st in steps] == [
        ("demo-schedule-1", Action.update), ("demo-schedule-2", Action.create), ("demo-schedule-9", Action.delete)]
    assert steps[2].calls == (ApiCall("application-autoscaling", "delete_scheduled_action",
                                      {"ScheduledActionName": "demo-schedule-9", **TARGET},
                                      missing=("ObjectNotFoundException",)),)


@pytest.mark.parametrize(("cron", "message"), [
    ("0 20 * * MON-FRI *", "exactly one of day-of-month and day-of-week must be '?'"),
    ("0 20 ? * ? *", "exactly one of day-of-month and day-of-week must be '?'"),
    ("0 24 ? * * *", "hours 24 is outside 0–23"),
    ("60 1 ? * * *", "minutes 60 is outside 0–59"),
    ("0 1 ? * 8 *", "day-of-week field '8' is not a cron value"),
    ("0 1 ? * FUN *", "day-of-week FUN is not one of SUN"),
    ("0 20 * *", "has 4 fields; AWS cron has 6"),
    ("0 20 ? * MON-FRI", "has 5 fields"),
])
def test_bad_cron_is_refused_naming_the_entry(cron: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        project(BASE_CONFIG + f"aws:\n  autoscaling:\n    schedule: [{{cron: '{cron}', min: 1, max: 2}}]\n")
    assert "aws.autoscaling.schedule[0].cron" in str(e.value) and message in str(e.value)


def test_cron_forms_aws_documents_are_accepted() -> None:
    for cron in ("0 20 ? * MON-FRI *", "cron(15 10 ? * 6L 2027-2029)", "0/15 * * * ? *", "0 8 1 * ? *",
                 "0 18 ? * 2#1 *", "0 0 L * ? *", "0 9 ? JAN,JUL MON *"):
        assert parse_cron(cron)
    with pytest.raises(ConfigError, match="min \\(3\\) is greater than max \\(2\\)"):
        project(BASE_CONFIG + "aws:\n  autoscaling:\n    schedule: [{cron: '0 1 ? * * *', min: 3, max: 2}]\n")
