"""CloudWatch: alarms (5xx rate, p99 latency, unhealthy hosts; optional SNS e-mail) and a dashboard."""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action, Step, is_pending

EMF_NAMESPACE = "mldeploy"


def topic_name(ctx: DeployContext) -> str:
    return f"mldeploy-{ctx.names.base}-alarms"


def _dims(ctx: DeployContext) -> list[dict[str, str]]:
    tg = ctx.outputs["tg_arn"].split(":", 5)[5]  # "targetgroup/name/id"
    return [{"Name": "LoadBalancer", "Value": ctx.outputs["alb_full_name"]}, {"Name": "TargetGroup", "Value": tg}]


def _pending(ctx: DeployContext) -> bool:
    return is_pending(ctx.outputs.get("alb_full_name")) or is_pending(ctx.outputs.get("tg_arn"))


def alarms(ctx: DeployContext) -> dict[str, dict[str, Any]]:
    """Alarm name → put_metric_alarm arguments."""
    cfg = ctx.config.aws.alarms
    n = ctx.names
    actions = [ctx.outputs["topic_arn"]] if ctx.outputs.get("topic_arn") else []
    common = {"ActionsEnabled": True, "AlarmActions": actions, "OKActions": actions,
              "TreatMissingData": "notBreaching", "EvaluationPeriods": 3, "DatapointsToAlarm": 2}
    dims = _dims(ctx)
    lb_dim = dims[:1]

    def metric(mid: str, name: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
        return {"Id": mid, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dimensions},
            "Period": 60, "Stat": "Sum"}}

    return {
        n.alarm("5xx-rate"): {**common,
                              "AlarmDescription": f"{n.base}: more than {cfg.error_rate_percent}% of requests fail "
                                                  "with 5xx",
                              "ComparisonOperator": "GreaterThanThreshold", "Threshold": float(cfg.error_rate_percent),
                              "Metrics": [metric("t5xx", "HTTPCode_Target_5XX_Count", lb_dim),
                                          metric("e5xx", "HTTPCode_ELB_5XX_Count", lb_dim),
                                          metric("req", "RequestCount", lb_dim),
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


def _norm(a: dict[str, Any]) -> dict[str, Any]:
    keys = ("AlarmDescription", "ComparisonOperator", "Threshold", "EvaluationPeriods", "DatapointsToAlarm",
            "MetricName", "Namespace", "ExtendedStatistic", "Statistic", "Period", "TreatMissingData")
    out = {k: a.get(k) for k in keys}
    out["Dimensions"] = sorted((d["Name"], d["Value"]) for d in a.get("Dimensions") or [])
    out["AlarmActions"] = sorted(a.get("AlarmActions") or [])
    out["Metrics"] = sorted((m["Id"], m.get("Expression") or json.dumps(m.get("MetricStat"), sort_keys=True))
                            for m in a.get("Metrics") or [])
    return out


def plan_topic(ctx: DeployContext) -> list[Step]:
    email = ctx.config.aws.alarms.email if ctx.config.aws.alarms.enabled else None
    sns = ctx.aws.sns
    name = topic_name(ctx)
    arn = ctx.arn("sns", name)
    exists = call(sns.get_topic_attributes, TopicArn=arn, missing=("NotFound",)) is not None
    if not email:
        ctx.outputs["topic_arn"] = None
        if not exists:
            return []
        return [Step("sns topic", name, Action.delete, ["no alarms.email"],
                     apply=lambda c: call(sns.delete_topic, TopicArn=arn))]
    ctx.outputs["topic_arn"] = arn

    def subscribe(c: DeployContext) -> None:
        call(sns.subscribe, TopicArn=arn, Protocol="email", Endpoint=email)

    if not exists:
        def create(c: DeployContext) -> None:
            c.outputs["topic_arn"] = call(sns.create_topic, Name=name, Tags=c.tag_list())["TopicArn"]
            subscribe(c)

        return [Step("sns topic", name, Action.create, [f"e-mail {email} (confirm the subscription e-mail)"],
                     apply=create)]
    subs = call(sns.list_subscriptions_by_topic, TopicArn=arn)["Subscriptions"]
    if any(s["Protocol"] == "email" and s["Endpoint"] == email for s in subs):
        return [Step("sns topic", name, Action.noop)]
    return [Step("sns topic", name, Action.update, [f"subscribe {email}"], apply=subscribe)]


def plan_alarms(ctx: DeployContext) -> list[Step]:
    cw = ctx.aws.cloudwatch
    names = [ctx.names.alarm(k) for k in ("5xx-rate", "p99-latency", "unhealthy-hosts")]
    current = {a["AlarmName"]: a for a in call(cw.describe_alarms, AlarmNames=names)["MetricAlarms"]}
    if not ctx.config.aws.alarms.enabled:
        return [Step("alarm", n, Action.delete, ["alarms disabled"],
                     apply=lambda c, n=n: call(cw.delete_alarms, AlarmNames=[n])) for n in names if n in current]
    want = None if _pending(ctx) else alarms(ctx)
    steps = []
    for n in names:

        def put(c: DeployContext, n: str = n) -> None:
            call(cw.put_metric_alarm, AlarmName=n, Tags=c.tag_list(), **alarms(c)[n])

        if n not in current:
            steps.append(Step("alarm", n, Action.create, [], apply=put))
        elif want is not None and _norm(current[n]) == _norm(want[n]):
            steps.append(Step("alarm", n, Action.noop))
        else:
            steps.append(Step("alarm", n, Action.update, ["threshold / metrics / actions"], apply=put))
    return steps


def dashboard(ctx: DeployContext) -> dict[str, Any]:
    n, region = ctx.names, ctx.aws.region
    lb = ctx.outputs["alb_full_name"]
    tg = ctx.outputs["tg_arn"].split(":", 5)[5]
    svc = ["AWS/ECS", "{m}", "ClusterName", n.cluster, "ServiceName", n.service]

    def widget(title: str, metrics: list, x: int, y: int, stat: str = "Average", **extra: Any) -> dict[str, Any]:
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries",
                               "metrics": metrics, **extra}}

    return {"widgets": [
        widget("CPU / memory utilisation (%)", [[*svc[:1], "CPUUtilization", *svc[2:]],
                                               [*svc[:1], "MemoryUtilization", *svc[2:]]], 0, 0),
        widget("ALB latency (s)", [["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb,
                                    {"stat": "p50", "label": "p50"}],
                                   ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb,
                                    {"stat": "p99", "label": "p99"}]], 12, 0),
        widget("Responses", [["AWS/ApplicationELB", "HTTPCode_Target_2XX_Count", "LoadBalancer", lb],
                             ["AWS/ApplicationELB", "HTTPCode_Target_4XX_Count", "LoadBalancer", lb],
                             ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", lb],
                             ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", lb]], 0, 6, stat="Sum"),
        widget("Targets", [["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", tg, "LoadBalancer", lb],
                           ["AWS/ApplicationELB", "UnHealthyHostCount", "TargetGroup", tg, "LoadBalancer", lb]],
               12, 6, stat="Maximum"),
        widget("Model metrics (EMF)", [[{"expression": f"SEARCH('{{{EMF_NAMESPACE},app,env}} app=\"{n.app}\" "
                                                       f"env=\"{n.env}\"', 'Average', 60)", "id": "emf"}]], 0, 12),
    ]}


def plan_dashboard(ctx: DeployContext) -> list[Step]:
    cw = ctx.aws.cloudwatch
    name = ctx.names.dashboard
    got = call(cw.get_dashboard, DashboardName=name, missing=("ResourceNotFound", "ResourceNotFoundException"))

    def put(c: DeployContext) -> None:
        call(cw.put_dashboard, DashboardName=name, DashboardBody=json.dumps(dashboard(c)))

    if got is None:
        return [Step("dashboard", name, Action.create, ["CPU/memory, latency p50/p99, 2xx/4xx/5xx, targets, EMF"],
                     apply=put)]
    if not _pending(ctx) and json.loads(got["DashboardBody"]) == dashboard(ctx):
        return [Step("dashboard", name, Action.noop)]
    return [Step("dashboard", name, Action.update, ["widgets"], apply=put)]


def delete(ctx: DeployContext) -> list[str]:
    """Delete alarms, dashboard and topic; returns what was deleted."""
    cw, sns = ctx.aws.cloudwatch, ctx.aws.sns
    done = []
    names = [ctx.names.alarm(k) for k in ("5xx-rate", "p99-latency", "unhealthy-hosts")]
    existing = [a["AlarmName"] for a in call(cw.describe_alarms, AlarmNames=names)["MetricAlarms"]]
    if existing:
        call(cw.delete_alarms, AlarmNames=existing)
        done += [f"alarm {a}" for a in existing]
    if call(cw.get_dashboard, DashboardName=ctx.names.dashboard,
            missing=("ResourceNotFound", "ResourceNotFoundException")) is not None:
        call(cw.delete_dashboards, DashboardNames=[ctx.names.dashboard])
        done.append(f"dashboard {ctx.names.dashboard}")
    arn = ctx.arn("sns", topic_name(ctx))
    if call(sns.get_topic_attributes, TopicArn=arn, missing=("NotFound",)) is not None:
        call(sns.delete_topic, TopicArn=arn)
        done.append(f"sns topic {topic_name(ctx)}")
    return done
