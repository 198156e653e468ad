"""CloudWatch dashboard: CPU/memory, ALB latency p50/p99, responses by class, target health, the model's EMF metrics.

Reads ``known``: ``alb_full_name``, ``tg_arn``. The body is JSON: built with ``Fn("json", …)`` when it names a load
balancer or target group this plan creates.
"""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Step, is_unknown
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources.alarms import tg_dimension

KIND = "dashboard"
EMF_NAMESPACE = "mldeploy"
MISSING = ("ResourceNotFound", "ResourceNotFoundException")


def body(spec: StackSpec, known: Known) -> dict[str, Any]:
    n, region = spec.names, spec.region
    lb = known["alb_full_name"]
    tg = tg_dimension(known["tg_arn"])
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


def encode(value: dict[str, Any]) -> Any:
    """DashboardBody: compact sorted JSON now, or ``Fn("json", …)`` (the same encoding) once refs resolve."""
    if is_unknown(value):
        return Fn("json", (value,))
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def read(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    return remote.get("cloudwatch", "get_dashboard", DashboardName=spec.names.dashboard, missing=MISSING)


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.dashboard
    want = body(spec, known)
    got = read(spec, remote)
    put = ApiCall("cloudwatch", "put_dashboard", {"DashboardName": name, "DashboardBody": encode(want)})
    if got is None:
        return [Step(KIND, name, Action.create, ["CPU/memory, latency p50/p99, 2xx/4xx/5xx, targets, EMF"],
                     calls=[put])]
    if not is_unknown(want) and json.loads(got["DashboardBody"]) == want:
        return [Step(KIND, name, Action.noop)]
    return [Step(KIND, name, Action.update, ["widgets"], calls=[put])]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if read(spec, remote) is None:
        return []
    return [Step(KIND, spec.names.dashboard, Action.delete, calls=[
        ApiCall("cloudwatch", "delete_dashboards", {"DashboardNames": [spec.names.dashboard]}, missing=MISSING)])]
