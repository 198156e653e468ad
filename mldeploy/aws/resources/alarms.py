"""CloudWatch alarms per role and their optional SNS e-mail topic.

Stable: 5xx rate (the stable target group's, plus the load balancer's own 5xx), p99 latency, unhealthy hosts on
the stable target group. Canary: 5xx rate and p99 latency on the
canary target group (they drive the release commands' automatic rollback: see ``firing``). Reads ``known``:
``alb_full_name``, ``spec.key("tg_arn")``, ``topic_arn`` (written by ``plan_topic``), and
``canary.service_arn`` for the canary role.
"""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Step, after, is_unknown
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec

KIND = "alarm"
TOPIC_KIND = "sns topic"
STABLE_KINDS = ("5xx-rate", "p99-latency", "unhealthy-hosts")
CANARY_KINDS = ("canary-5xx", "canary-p99")


# --------------------------------------------------------------------------------------------- plan values


def fmt(template: str, **values: Any) -> Any:
    """``template.format(**values)``, or an ``Fn("format", …)`` when a value is known only while applying."""
    if any(is_unknown(v) for v in values.values()):
        return Fn("format", (template,), tuple(sorted(values.items())))
    return template.format(**values)


def tg_dimension(tg_arn: Any) -> Any:
    """CloudWatch's ``TargetGroup`` dimension: the final portion of the ARN, ``targetgroup/NAME/ID``."""
    return fmt("targetgroup/{tg}", tg=after(tg_arn, ":targetgroup/"))


def dimensions(spec: StackSpec, known: Known) -> list[dict[str, Any]]:
    """``LoadBalancer`` (``app/NAME/ID``) and the role's ``TargetGroup`` dimensions."""
    return [{"Name": "LoadBalancer", "Value": known["alb_full_name"]},
            {"Name": "TargetGroup", "Value": tg_dimension(known[spec.key("tg_arn")])}]


# ----------------------------------------------------------------------------------------------- sns topic


def topic_name(spec: StackSpec) -> str:
    return f"mldeploy-{spec.names.base}-alarms"


def topic_arn(spec: StackSpec) -> str:
    """Deterministic (``arn:aws:sns:REGION:ACCOUNT:NAME``), so alarms name it without a ``Ref``."""
    return spec.arn("sns", topic_name(spec))


def _topic_exists(spec: StackSpec, remote: Remote) -> bool:
    return remote.get("sns", "get_topic_attributes", TopicArn=topic_arn(spec), missing=("NotFound",)) is not None


def plan_topic(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The topic with an e-mail subscription when ``alarms.email`` is set; writes ``known["topic_arn"]``."""
    alarms = spec.config.aws.alarms
    email = alarms.email if alarms.enabled else None
    name, arn = topic_name(spec), topic_arn(spec)
    exists = _topic_exists(spec, remote)
    if not email:
        known["topic_arn"] = None
        if not exists:
            return []
        return [Step(TOPIC_KIND, name, Action.delete, ["no alarms.email"], calls=[
            ApiCall("sns", "delete_topic", {"TopicArn": arn}, missing=("NotFound",))])]
    known["topic_arn"] = arn
    subscribe = ApiCall("sns", "subscribe", {"TopicArn": arn, "Protocol": "email", "Endpoint": email})
    if not exists:
        return [Step(TOPIC_KIND, name, Action.create, [f"e-mail {email} (confirm the subscription e-mail)"], calls=[
            ApiCall("sns", "create_topic", {"Name": name, "Tags": spec.tag_list()}), subscribe])]
    subs = remote.get("sns", "list_subscriptions_by_topic", TopicArn=arn)["Subscriptions"]
    if any(s["Protocol"] == "email" and s["Endpoint"] == email for s in subs):
        return [Step(TOPIC_KIND, name, Action.noop)]
    return [Step(TOPIC_KIND, name, Action.update, [f"subscribe {email}"], calls=[subscribe])]


def delete_topic(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not _topic_exists(spec, remote):
        return []
    return [Step(TOPIC_KIND, topic_name(spec), Action.delete, calls=[
        ApiCall("sns", "delete_topic", {"TopicArn": topic_arn(spec)}, missing=("NotFound",))])]


# -------------------------------------------------------------------------------------------------- alarms


def names(spec: StackSpec) -> list[str]:
    """The role's alarm names."""
    return [spec.names.alarm(k) for k in (CANARY_KINDS if spec.canary else STABLE_KINDS)]


def canary_alarm_names(spec: StackSpec) -> list[str]:
    return names(spec.as_role("canary"))


def _metric(mid: str, name: str, dims: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Id": mid, "ReturnData": False, "MetricStat": {"Metric": {
        "Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}


def _stable(spec: StackSpec, known: Known) -> dict[str, dict[str, Any]]:
    cfg, n = spec.config.aws.alarms, spec.names
    actions = [known["topic_arn"]] if known.get("topic_arn") else []
    common = {"ActionsEnabled": True, "AlarmActions": actions, "OKActions": actions,
              "TreatMissingData": "notBreaching", "EvaluationPeriods": 3, "DatapointsToAlarm": 2}
    dims = dimensions(spec, known)
    lb_dim = dims[:1]
    # The targets' 5xx and the request count per target group (TargetGroup + LoadBalancer), so a canary's errors
    # and requests never count here (nor the stable's in the canary's alarm). The load balancer's own 5xx
    # (HTTPCode_ELB_5XX_Count: 502/503/504 it generates, e.g. no healthy target) is published with the
    # LoadBalancer dimension only (ALB guide, "CloudWatch metrics for your Application Load Balancer", Metric
    # dimensions): it stays here, LB-wide, as the outage signal no per-target metric shows; this alarm only
    # notifies, while the canary's (which roll back) never include it.
    return {
        n.alarm("5xx-rate"): {**common,
                              "AlarmDescription": f"{n.base}: more than {cfg.error_rate_percent}% of requests fail "
                                                  "with 5xx",
                              "ComparisonOperator": "GreaterThanThreshold", "Threshold": float(cfg.error_rate_percent),
                              "Metrics": [_metric("t5xx", "HTTPCode_Target_5XX_Count", dims),
                                          _metric("e5xx", "HTTPCode_ELB_5XX_Count", lb_dim),
                                          _metric("req", "RequestCount", dims),
                                          {"Id": "rate", "ReturnData": True, "Label": "5xx %",
                                           "Expression": "100 * (FILL(t5xx,0) + FILL(e5xx,0)) / "
                                                         "IF(FILL(req,0) > 0, req, 1)"}]},
        n.alarm("p99-latency"): {**common,
                                 "AlarmDescription": f"{n.base}: p99 latency above {cfg.p99_latency_ms:g} ms",
                                 "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
                                 "Dimensions": dims, "ExtendedStatistic": "p99", "Period": 60,
                                 "ComparisonOperator": "GreaterThanThreshold",
                                 "Threshold": cfg.p99_latency_ms / 1000.0},
        n.alarm("unhealthy-hosts"): {**common, "AlarmDescription": f"{n.base}: unhealthy targets behind the ALB",
                                     "Namespace": "AWS/ApplicationELB", "MetricName": "UnHealthyHostCount",
                                     "Dimensions": dims, "Statistic": "Maximum", "Period": 60,
                                     "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.0},
    }


def _canary(spec: StackSpec, known: Known) -> dict[str, dict[str, Any]]:
    """One datapoint each: the canary takes little traffic and a bad one must roll back fast."""
    cfg, svc = spec.config.aws.alarms, spec.service_name
    dims = dimensions(spec, known)
    common = {"EvaluationPeriods": 1, "DatapointsToAlarm": 1, "ComparisonOperator": "GreaterThanThreshold",
              "TreatMissingData": "notBreaching"}
    err, p99 = names(spec)
    return {
        err: {**common, "AlarmDescription": f"canary {svc}: 5xx rate above {cfg.error_rate_percent}%",
              "Threshold": float(cfg.error_rate_percent),
              "Metrics": [{"Id": "rate", "Expression": "IF(requests > 0, 100 * errors / requests, 0)",
                           "Label": "5xx %", "ReturnData": True},
                          _metric("errors", "HTTPCode_Target_5XX_Count", dims),
                          _metric("requests", "RequestCount", dims)]},
        p99: {**common, "AlarmDescription": f"canary {svc}: p99 latency above {cfg.p99_latency_ms:g} ms",
              "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime", "Dimensions": dims,
              "ExtendedStatistic": "p99", "Period": 60, "Threshold": cfg.p99_latency_ms / 1000.0},
    }


def definitions(spec: StackSpec, known: Known) -> dict[str, dict[str, Any]]:
    """Alarm name → put_metric_alarm arguments (without ``AlarmName``/``Tags``) for the role."""
    return _canary(spec, known) if spec.canary else _stable(spec, known)


def _norm(a: dict[str, Any]) -> dict[str, Any]:
    keys = ("AlarmDescription", "ComparisonOperator", "Threshold", "EvaluationPeriods", "DatapointsToAlarm",
            "MetricName", "Namespace", "ExtendedStatistic", "Statistic", "Period", "TreatMissingData")
    out = {k: a.get(k) for k in keys}
    out["Dimensions"] = sorted((d["Name"], d["Value"]) for d in a.get("Dimensions") or [])
    out["AlarmActions"] = sorted(a.get("AlarmActions") or [])
    out["Metrics"] = sorted((m["Id"], m.get("Expression") or json.dumps(_norm_stat(m.get("MetricStat")),
                                                                        sort_keys=True))
                            for m in a.get("Metrics") or [])
    return out


def _norm_stat(stat: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``MetricStat`` as compared: its dimensions as a sorted set (DescribeAlarms need not keep their order) and
    only the fields we send (``Unit`` and the query's ``Label``/``AccountId`` are not ours)."""
    if not stat:
        return stat
    metric = stat.get("Metric") or {}
    return {"Namespace": metric.get("Namespace"), "MetricName": metric.get("MetricName"),
            "Dimensions": sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions") or []),
            "Period": stat.get("Period"), "Stat": stat.get("Stat")}


def _current(remote: Remote, alarm_names: list[str]) -> dict[str, dict[str, Any]]:
    found = remote.get("cloudwatch", "describe_alarms", AlarmNames=alarm_names)["MetricAlarms"]
    return {a["AlarmName"]: a for a in found}


def _delete_call(alarm_names: list[str]) -> ApiCall:
    return ApiCall("cloudwatch", "delete_alarms", {"AlarmNames": alarm_names})


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Put the role's alarms that are missing or differ; stable alarms are deleted when ``alarms.enabled`` is off
    (the canary's are not: they guard the release)."""
    wanted = names(spec)
    current = _current(remote, wanted)
    if not spec.canary and not spec.config.aws.alarms.enabled:
        return [Step(KIND, n, Action.delete, ["alarms disabled"], calls=[_delete_call([n])])
                for n in wanted if n in current]
    want = definitions(spec, known)
    # CloudWatch PutMetricAlarm: "When you update an existing alarm, its state is left unchanged". A new canary
    # must not inherit the last one's ALARM state (it would roll back at once): recreate them with the service.
    fresh = spec.canary and is_unknown(known.get(spec.key("service_arn")))
    steps = []
    for n in wanted:
        put = ApiCall("cloudwatch", "put_metric_alarm", {"AlarmName": n, "Tags": spec.tag_list(), **want[n]})
        if n not in current:
            steps.append(Step(KIND, n, Action.create, calls=[put]))
        elif fresh:
            steps.append(Step(KIND, n, Action.replace, ["fresh state for the new canary"],
                              calls=[_delete_call([n]), put]))
        elif not is_unknown(want[n]) and _norm(current[n]) == _norm(want[n]):
            steps.append(Step(KIND, n, Action.noop))
        else:
            steps.append(Step(KIND, n, Action.update, ["threshold / metrics / actions"], calls=[put]))
    return steps


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The role's existing alarms (``down`` runs it for both roles, so canary alarms go too)."""
    current = _current(remote, names(spec))
    return [Step(KIND, n, Action.delete, calls=[_delete_call([n])]) for n in names(spec) if n in current]


def firing(remote: Remote, alarm_names: list[str]) -> list[tuple[str, str]]:
    """(name, reason) of the alarms among ``alarm_names`` in ALARM. Read uncached (``Remote.pages``), so a
    polling loop sees each new state."""
    found = remote.pages("cloudwatch", "describe_alarms", "MetricAlarms", AlarmNames=alarm_names)
    return [(a["AlarmName"], a.get("StateReason", "")) for a in found if a.get("StateValue") == "ALARM"]
