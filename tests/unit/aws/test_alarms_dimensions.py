"""Each role's alarms see only its own target group (TargetGroup + LoadBalancer dimensions); the load balancer's own
5xx stays LB-wide in the stable alarm only; alarms put with the old LB-only dimensions are updated on re-run; and a
describe_alarms answer shaped like a real account's (extra fields, dimensions in another order) is a no-op."""

from __future__ import annotations

import copy
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.resources import alarms
from tests.unit.aws.test_plan_service import ALB_ARN, CANARY_TG_ARN, TG_ARN, known_existing
from tests.unit.fakes import ACCOUNT, FakeRemote, spec

LB = {"Name": "LoadBalancer", "Value": "app/demo/abc"}
STABLE_TG = {"Name": "TargetGroup", "Value": "targetgroup/demo-tg/111"}
CANARY_TG = {"Name": "TargetGroup", "Value": "targetgroup/demo-tgc/222"}


def _metrics(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Metric id → (name, dimensions) of a metric-math alarm's MetricStat queries."""
    return {m["Id"]: {"name": m["MetricStat"]["Metric"]["MetricName"],
                      "dims": m["MetricStat"]["Metric"]["Dimensions"]}
            for m in definition["Metrics"] if "MetricStat" in m}


def _known(role: str = "stable") -> dict[str, Any]:
    return {**known_existing(), "topic_arn": None, **({"canary.service_arn": "arn:svc"} if role == "canary" else {})}


def test_stable_5xx_rate_counts_its_own_target_group_and_the_lb_own_5xx() -> None:
    s = spec()
    defs = alarms.definitions(s, _known())
    got = _metrics(defs["mldeploy-demo-5xx-rate"])
    assert got == {"t5xx": {"name": "HTTPCode_Target_5XX_Count", "dims": [LB, STABLE_TG]},
                   "e5xx": {"name": "HTTPCode_ELB_5XX_Count", "dims": [LB]},  # no TargetGroup dimension exists
                   "req": {"name": "RequestCount", "dims": [LB, STABLE_TG]}}
    assert defs["mldeploy-demo-p99-latency"]["Dimensions"] == [LB, STABLE_TG]
    assert defs["mldeploy-demo-unhealthy-hosts"]["Dimensions"] == [LB, STABLE_TG]


def test_canary_alarms_see_only_the_canary_target_group_and_never_the_lb_5xx() -> None:
    c = spec(role="canary", version="2.0.0")
    defs = alarms.definitions(c, _known("canary"))
    got = _metrics(defs["mldeploy-demo-canary-5xx"])
    assert got == {"errors": {"name": "HTTPCode_Target_5XX_Count", "dims": [LB, CANARY_TG]},
                   "requests": {"name": "RequestCount", "dims": [LB, CANARY_TG]}}
    assert defs["mldeploy-demo-canary-p99"]["Dimensions"] == [LB, CANARY_TG]
    # neither role's queries carry the other's target group
    stable = alarms.definitions(spec(), _known())
    assert CANARY_TG["Value"] not in str(stable) and STABLE_TG["Value"] not in str(defs)


def _described(s: Any, known: dict[str, Any]) -> list[dict[str, Any]]:
    """describe_alarms' MetricAlarms for alarms put from ``definitions``, shaped like a real account's answer
    (botocore cloudwatch MetricAlarm: AlarmArn, state fields, InsufficientDataActions, an empty top-level
    Dimensions on metric-math alarms; MetricDataQuery Label/ReturnData; dimensions in another order)."""
    out = []
    for name, d in alarms.definitions(s, known).items():
        a = copy.deepcopy(d)
        for m in a.get("Metrics") or []:
            if "MetricStat" in m:
                m["MetricStat"]["Metric"]["Dimensions"].reverse()
                m.setdefault("Label", m["Id"])
        if "Dimensions" in a:
            a["Dimensions"] = list(reversed(a["Dimensions"]))
        out.append({"AlarmName": name, "AlarmArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{name}",
                    "AlarmConfigurationUpdatedTimestamp": "2026-01-01T00:00:00Z", "StateValue": "OK",
                    "StateReason": "Threshold Crossed", "StateUpdatedTimestamp": "2026-01-01T00:00:00Z",
                    "InsufficientDataActions": [], "OKActions": a.get("OKActions", []),
                    "AlarmActions": a.get("AlarmActions", []), "ActionsEnabled": True,
                    "Dimensions": a.get("Dimensions", []), "StateTransitionedTimestamp": "2026-01-01T00:00:00Z",
                    **{k: v for k, v in a.items() if k not in ("Dimensions",)}})
    return out


def test_real_shaped_describe_is_a_noop_for_both_roles() -> None:
    for s, known in ((spec(), _known()), (spec(role="canary", version="2.0.0"), _known("canary"))):
        remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": _described(s, known)}})
        assert alarms.plan(s, remote, known) == [noop("alarm", n) for n in alarms.names(s)]


def test_an_alarm_with_the_old_lb_only_dimensions_is_updated_on_rerun() -> None:
    s, known = spec(), _known()
    described = _described(s, known)
    old = next(a for a in described if a["AlarmName"] == "mldeploy-demo-5xx-rate")
    for m in old["Metrics"]:  # as the previous release put it: every query on the LoadBalancer only
        if "MetricStat" in m:
            m["MetricStat"]["Metric"]["Dimensions"] = [LB]
    remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": described}})
    want = alarms.definitions(s, known)["mldeploy-demo-5xx-rate"]
    assert alarms.plan(s, remote, known) == [
        Step("alarm", "mldeploy-demo-5xx-rate", Action.update, ["threshold / metrics / actions"], calls=[
            ApiCall("cloudwatch", "put_metric_alarm", {"AlarmName": "mldeploy-demo-5xx-rate",
                                                       "Tags": s.tag_list(), **want})]),
        noop("alarm", "mldeploy-demo-p99-latency"), noop("alarm", "mldeploy-demo-unhealthy-hosts")]


def test_the_stable_and_canary_target_groups_give_distinct_dimensions() -> None:
    assert alarms.tg_dimension(TG_ARN) == "targetgroup/demo-tg/111"
    assert alarms.tg_dimension(CANARY_TG_ARN) == "targetgroup/demo-tgc/222"
    assert ALB_ARN.endswith(":loadbalancer/app/demo/abc")
