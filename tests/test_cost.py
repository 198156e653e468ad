"""Cost arithmetic checked against figures computed by hand from the bundled unit prices (us-east-1 unless noted)."""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any

import pytest
from pydantic import ValidationError

from mldeploy.config.schema import Config
from mldeploy.cost import compare, estimate_for_config, plan_line
from mldeploy.cost.model import lcu_for, tasks_for, tiered_cost
from mldeploy.errors import ConfigError

H = 730  # hours per month
S = H * 3600  # seconds per month


def config(**sections: Any) -> Config:
    data: dict[str, Any] = {"name": "demo", "model": {"path": "m.onnx"}}
    aws = {"region": "us-east-1", "cpu": 512, "memory": 1024, "autoscaling": {"min": 1, "max": 50}}
    aws.update(sections.pop("aws", {}))
    cost = {"capacity_rps_per_task": 50}
    cost.update(sections.pop("cost", {}))
    return Config.model_validate({**data, "aws": aws, "cost": cost, **sections})


def test_fargate_tasks_and_monthly_cost_by_hand():
    # 100 req/s, 50 req/s per task at 100 % CPU, autoscaled to 60 % → 100 / 30 = 3.33 → 4 tasks
    est = estimate_for_config(config(), 100)
    assert (est.tasks_needed, est.tasks, est.saturated) == (4, 4, False)
    fargate = est.component("fargate")
    assert fargate.monthly == pytest.approx(4 * (0.5 * 0.04048 + 1 * 0.004445) * 730)  # $72.0802
    assert fargate.monthly == pytest.approx(72.0802, abs=1e-4)
    assert "4 tasks × (0.5 vCPU × $0.04048 + 1 GB × $0.004445) × 730 h" in fargate.formula


def test_tasks_are_clamped_to_autoscaling_bounds_and_saturation_is_flagged():
    assert tasks_for(0, 50, 0.6, 2, 10) == (0, 2, False)
    assert tasks_for(30, 50, 0.6, 1, 10) == (1, 1, False)  # exactly 30 req/s per task: no extra task
    assert tasks_for(31, 50, 0.6, 1, 10) == (2, 2, False)
    assert tasks_for(1000, 50, 0.6, 1, 10) == (34, 10, True)
    est = estimate_for_config(config(aws={"autoscaling": {"min": 1, "max": 10}}), 1000)
    assert est.saturated and est.tasks == 10 and est.tasks_needed == 34


def test_before_traffic_uses_desired_count_and_no_traffic_costs():
    est = estimate_for_config(config(aws={"desired_count": 3}), None)
    assert est.tasks == 3 and est.rps == 0 and est.per_million is None
    for key in ("alb_lcu", "logs_ingest", "logs_storage", "data_transfer"):
        assert est.component(key).monthly == 0
    # tasks + ALB hours + ECR (1 GB × 10) + public IPv4: 3 tasks + 6 ALB nodes (us-east-1's default subnets)
    fixed = 3 * (0.5 * 0.04048 + 0.004445) * H + 0.0225 * H + 10 * 0.10 + (3 + 6) * H * 0.005
    assert est.total == pytest.approx(fixed)
    assert f"${fixed:,.2f}/month" in plan_line(config(aws={"desired_count": 3}))


@pytest.mark.parametrize(("cpu", "memory", "ok"), [
    (256, 512, True), (256, 4096, False), (512, 4096, True), (1024, 1024, False), (4096, 30720, True),
    (16384, 122880, True), (300, 1024, False), (2048, 16384, True), (2048, 16896, False),
])
def test_fargate_size_validation(cpu: int, memory: int, ok: bool):
    if ok:
        assert config(aws={"cpu": cpu, "memory": memory}).aws.memory == memory
    else:
        with pytest.raises(ValidationError, match=r"Fargate|not valid with cpu"):
            config(aws={"cpu": cpu, "memory": memory})


def test_lcu_bills_the_largest_of_the_four_dimensions():
    # processed bytes: 100 req/s × 1,536 B × 3,600 s = 0.553 GB/h → 0.553 LCU
    lcu = lcu_for(100, 1024, 512, keepalive=100, connection_s=60, rules=1)
    assert lcu.processed_bytes == pytest.approx(0.55296)
    assert lcu.new_connections == pytest.approx(1 / 25)
    assert lcu.active_connections == pytest.approx(60 / 3000)
    assert lcu.rule_evaluations == 0  # the first 10 rules are free
    assert (lcu.billed, lcu.dimension) == (pytest.approx(0.55296), "processed_bytes")
    # new connections: no keep-alive, tiny payloads → 100 new/s = 4 LCU (active 6,000 → 2 LCU)
    lcu = lcu_for(100, 10, 10, keepalive=1, connection_s=60, rules=1)
    assert (lcu.billed, lcu.dimension) == (pytest.approx(4.0), "new_connections")
    assert lcu.active_connections == pytest.approx(2.0)
    # active connections: long-lived connections, 1 new/s × 3,600 s = 3,600 active → 1.2 LCU
    lcu = lcu_for(100, 10, 10, keepalive=100, connection_s=3600, rules=1)
    assert (lcu.billed, lcu.dimension) == (pytest.approx(1.2), "active_connections")
    # rule evaluations: 30 rules, 20 billable × 1,000 req/s = 20,000/s → 20 LCU (bytes 5.5 LCU)
    lcu = lcu_for(1000, 1024, 512, keepalive=100, connection_s=60, rules=30)
    assert (lcu.billed, lcu.dimension) == (pytest.approx(20.0), "rule_evaluations")


def test_alb_cost_is_hours_plus_billed_lcus_not_their_sum():
    est = estimate_for_config(config(cost={"keepalive_requests_per_connection": 1}), 100)
    # new connections 4 LCU beat processed bytes 0.553 LCU: 4 × 730 × 0.008 = $23.36
    assert est.component("alb_lcu").monthly == pytest.approx(4 * H * 0.008)
    assert est.component("alb").monthly == pytest.approx(H * 0.0225)  # $16.425


EMF_GB_PER_TASK = S / 10 * 1800 / 1e9  # one EMF line per task every 10 s: 0.473 GB/month


def test_logs_ingestion_and_storage():
    every = {"log_sample_rate": 1.0, "always_logged_fraction": 0}
    est = estimate_for_config(config(aws={"log_retention_days": 7}, cost=every), 100)  # 4 tasks
    gb = 100 * 300 * S / 1e9 + 4 * EMF_GB_PER_TASK  # 78.84 GB of access log + 1.89 GB of EMF lines
    assert est.component("logs_ingest").quantity == pytest.approx(gb)
    assert est.component("logs_ingest").monthly == pytest.approx((gb - 5) * 0.50)  # after 5 GB free
    assert est.component("logs_storage").monthly == pytest.approx(gb / (H / 24) * 7 * 0.03)
    no_free = estimate_for_config(config(cost={"free_tier": False, **every}), 100)
    assert no_free.component("logs_ingest").monthly == pytest.approx(gb * 0.50)


def test_access_log_sampling_keeps_logs_below_compute():
    # default: 1 % sampled + errors/slow requests (1 %) always → 1.99 % of requests write their 300-byte line
    big = config(aws={"autoscaling": {"min": 1, "max": 1000}})
    est = estimate_for_config(big, 10000)
    access = 10000 * 0.0199 * 300 * S / 1e9
    assert est.component("logs_ingest").quantity == pytest.approx(access + est.tasks * EMF_GB_PER_TASK)
    assert est.assumptions["log_sample_source"] == "runtime.access_log.sample_rate"  # the runtime's own default
    for rps in (100, 1000, 10000):
        e = estimate_for_config(big, rps)
        logs = e.component("logs_ingest").monthly + e.component("logs_storage").monthly
        assert logs < 0.1 * e.component("fargate").monthly, rps
    # every request logged (the pre-sampling behaviour): $3.9k of ingestion at 10k req/s
    full = estimate_for_config(config(aws={"autoscaling": {"min": 1, "max": 1000}},
                                      cost={"log_sample_rate": 1.0, "always_logged_fraction": 0}), 10000)
    assert full.component("logs_ingest").monthly > 3900


def test_log_sampling_reads_the_runtime_section_when_it_has_one():
    from types import SimpleNamespace

    from mldeploy.cost.model import DEFAULT_LOG_SAMPLE_RATE, log_sample_rate

    cfg = config()
    # the runtime samples its access log (runtime/contract/serving.py AccessLog); its default is the cost default
    assert log_sample_rate(cfg) == (DEFAULT_LOG_SAMPLE_RATE, "runtime.access_log.sample_rate")
    fake = cfg.model_copy(update={"runtime": SimpleNamespace(access_log=SimpleNamespace(sample_rate=0.1))})
    assert log_sample_rate(fake) == (0.1, "runtime.access_log.sample_rate")
    off = cfg.model_copy(update={"runtime": SimpleNamespace(access_log=SimpleNamespace(enabled=False))})
    assert log_sample_rate(off)[0] == 0.0
    assert log_sample_rate(config(cost={"log_sample_rate": 0.5})) == (0.5, "cost.log_sample_rate")


def test_data_transfer_out_is_tiered_after_the_free_100_gb():
    assert tiered_cost(20000, ((10240, 0.09), (51200, 0.085), (None, 0.05))) == pytest.approx(
        10240 * 0.09 + 9760 * 0.085)
    est = estimate_for_config(config(aws={"autoscaling": {"min": 1, "max": 1000}}), 10000)
    out = 10000 * 512 * S / 1e9  # 13,455.36 GB
    assert est.component("data_transfer").quantity == pytest.approx(13455.36)
    assert est.component("data_transfer").monthly == pytest.approx((10240 - 100) * 0.09 + (out - 10240) * 0.085)
    small = estimate_for_config(config(cost={"response_bytes": 100}), 100)  # 26.3 GB < 100 GB free
    assert small.component("data_transfer").monthly == 0


def test_monitoring_metrics_dashboards_alarms():
    est = estimate_for_config(config(cost={"custom_metrics": 25}), 10)
    assert est.component("metrics").monthly == pytest.approx(15 * 0.30)  # 10 free
    assert est.component("dashboards").monthly == 0  # 1 dashboard, 3 free
    # billed per alarm metric: 5xx rate (metric math over 3) + p99 (1) + unhealthy (1) + CPU target tracking (2)
    assert est.component("alarms").quantity == 7
    paid = estimate_for_config(config(cost={"free_tier": False},
                                      aws={"autoscaling": {"min": 1, "max": 4, "requests_per_target": 100}}), 10)
    assert paid.component("alarms").quantity == 9 and paid.component("alarms").monthly == pytest.approx(0.9)
    assert paid.component("dashboards").monthly == pytest.approx(3.0)
    quiet = estimate_for_config(config(aws={"alarms": {"enabled": False}}), 10)
    assert quiet.component("alarms").quantity == 2  # the scaling policy's alarms remain
    # the runtime's EMF metrics: 5 names × ([app, env] + [app, env, Version] per version)
    assert estimate_for_config(config(), 10).component("metrics").quantity == 10
    paid_metrics = estimate_for_config(config(cost={"free_tier": False}), 10).component("metrics")
    assert paid_metrics.monthly == pytest.approx(10 * 0.30)


def test_emf_metric_count_matches_what_the_runtime_publishes():
    """Count the distinct (name, dimensions) the runtime's EMF lines create with one and with two versions."""
    import io

    from mldeploy.cost.model import custom_metric_count
    from runtime.telemetry import EmfAggregator

    def published(versions: list[str]) -> int:
        out = io.StringIO()
        emf = EmfAggregator("mldeploy", "demo", 0.5, stream=out)
        for v in versions:
            emf.request(v, 12.0, ok=True)
            emf.confidences(v, [0.9])
        emf.flush()
        metrics = set()
        for line in out.getvalue().splitlines():
            doc = json.loads(line)
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for dims in directive["Dimensions"]:
                    for m in directive["Metrics"]:
                        metrics.add((m["Name"], tuple((d, doc[d]) for d in dims)))
        return len(metrics)

    assert published(["1.0.0"]) == custom_metric_count(config(), 1) == 10
    assert published(["1.0.0", "1.1.0"]) == custom_metric_count(config(), 2) == 15


def test_during_a_canary_extra_tasks_metrics_alarms_and_addresses():
    cfg = config(cost={"free_tier": False})
    base = estimate_for_config(cfg, 100)  # 4 tasks
    can = estimate_for_config(cfg, 100, canary_percent=10)
    rate = 0.5 * 0.04048 + 0.004445
    assert can.canary_tasks == 1 and can.component("fargate_canary").monthly == pytest.approx(rate * H)
    assert can.component("metrics").quantity == 15
    assert can.component("alarms").quantity == base.component("alarms").quantity + 3  # canary 5xx (2) + p99 (1)
    assert can.component("public_ipv4").quantity == base.component("public_ipv4").quantity + H
    assert estimate_for_config(cfg, 100, canary_percent=50).canary_tasks == 2


def test_public_ipv4_per_task_alb_node_and_nat():
    est = estimate_for_config(config(), 100)  # 4 tasks with public IPs, ALB in 6 us-east-1 subnets
    ip = est.component("public_ipv4")
    assert ip.quantity == (4 + 6) * H and ip.monthly == pytest.approx(10 * H * 0.005)  # $36.50
    assert "2024-02-01" in json.loads(resources.files("mldeploy.cost").joinpath("prices.json").read_text())[
        "items"]["public_ipv4_hour"]["source"]
    private = estimate_for_config(config(aws={"assign_public_ip": False}), 100)  # no task IPs, 1 NAT EIP
    assert private.component("public_ipv4").quantity == (6 + 1) * H
    internal = estimate_for_config(config(aws={"internal": True}), 100)
    assert internal.component("public_ipv4").quantity == 4 * H
    subnets = estimate_for_config(config(aws={"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"]}), 100)
    assert subnets.component("public_ipv4").quantity == (4 + 2) * H
    west = estimate_for_config(config(aws={"region": "us-west-2"}), 100)
    assert west.component("public_ipv4").quantity == (4 + 4) * H
    assert estimate_for_config(config(cost={"alb_subnets": 3}), 100).component("public_ipv4").quantity == 7 * H
    assert "public IPv4" in plan_line(config())


def test_container_insights_when_enabled():
    assert not any(c.key == "container_insights" for c in estimate_for_config(config(), 100).components)
    est = estimate_for_config(config(aws={"container_insights": True}, cost={"free_tier": False}), 100)
    ci = est.component("container_insights")
    assert ci.estimate and ci.quantity == 10 + 13 + 9
    assert ci.monthly == pytest.approx(32 * 0.30 + 4 * H * 60 * 2000 / 1e9 * 0.50)


def test_overloaded_levels_have_no_cost_per_million():
    est = estimate_for_config(config(aws={"autoscaling": {"min": 1, "max": 10}}), 1000)
    assert est.overloaded and est.per_million is None and est.to_dict()["overloaded"] is True
    from mldeploy.cost.report import per_million

    assert "overloaded" in per_million(est)


def test_request_count_scaling_policy_can_need_more_tasks():
    # 100 req/s = 6,000 requests/min; 500 per task per minute → 12 tasks (CPU alone would need 4)
    est = estimate_for_config(config(aws={"autoscaling": {"min": 1, "max": 50, "requests_per_target": 500}}), 100)
    assert (est.tasks_needed, est.tasks) == (12, 12)


def test_ecr_and_nat_gateway():
    est = estimate_for_config(config(cost={"image_gb": 2, "images_retained": 10}), 100)
    assert est.component("ecr").monthly == pytest.approx(2.0)
    assert not any(c.key.startswith("nat") for c in est.components)  # public IPs: no NAT
    private = estimate_for_config(config(aws={"assign_public_ip": False}, cost={"image_gb": 2}), 100)
    assert private.component("nat").monthly == pytest.approx(H * 0.045)  # $32.85
    log_gb = private.component("logs_ingest").quantity  # access-log sample + EMF lines go through the NAT
    assert log_gb == pytest.approx(100 * 0.0199 * 300 * S / 1e9 + 4 * EMF_GB_PER_TASK)
    assert private.component("nat_data").monthly == pytest.approx((log_gb + 4 * 2) * 0.045)


def test_arm_and_spot_discounts():
    cfg = config(aws={"spot": {"enabled": False, "base": 1, "weight": 100}})
    by = compare(cfg, 100)  # 4 tasks
    assert list(by) == ["x86", "arm", "x86+spot", "arm+spot"]
    x86, arm = by["x86"].component("fargate").monthly, by["arm"].component("fargate").monthly
    assert arm == pytest.approx(4 * (0.5 * 0.03238 + 0.00356) * H)
    assert 0.19 < 1 - arm / x86 < 0.21  # Graviton ≈ 20 % cheaper
    # Spot: base 1 task on-demand, the other 3 on Spot at the bundled estimate (30 % of on-demand)
    spot = by["x86+spot"].component("fargate")
    assert spot.monthly == pytest.approx(1 * (0.5 * 0.04048 + 0.004445) * H + 3 * (0.5 * 0.012144 + 0.0013335) * H)
    assert spot.estimate and "3 tasks on Spot" in spot.formula
    assert by["arm+spot"].total < by["x86+spot"].total < by["arm"].total < by["x86"].total
    for key in ("alb", "alb_lcu", "logs_ingest", "data_transfer"):  # only compute differs
        assert len({round(e.component(key).monthly, 6) for e in by.values()}) == 1
    half = estimate_for_config(config(aws={"spot": {"enabled": True, "base": 0, "weight": 50}}), 100)
    assert "2 tasks × " in half.component("fargate").formula and "2 tasks on Spot" in half.component("fargate").formula


def test_total_and_cost_per_million_requests():
    est = estimate_for_config(config(), 100)
    assert est.total == pytest.approx(sum(c.monthly for c in est.components))
    assert est.per_million == pytest.approx(est.total / (100 * S / 1e6))
    d = est.to_dict()
    assert d["total"] == round(est.total, 2) and d["lcu"]["dimension"] == "processed_bytes"
    json.dumps(d)


def test_region_prices_and_unknown_region():
    eu = estimate_for_config(config(aws={"region": "eu-central-1"}), 100)
    assert eu.component("fargate").monthly == pytest.approx(4 * (0.5 * 0.04656 + 0.00511) * H)
    assert eu.component("alb").monthly == pytest.approx(0.027 * H)
    with pytest.raises(ConfigError) as info:
        estimate_for_config(config(aws={"region": "sa-east-1"}), 100)
    assert "sa-east-1" in info.value.message and "us-east-1" in info.value.message
    assert "--live" in (info.value.hint or "")


def test_traffic_without_capacity_is_an_actionable_error():
    cfg = Config.model_validate({"name": "demo", "model": {"path": "m.onnx"}})
    with pytest.raises(ConfigError) as info:
        estimate_for_config(cfg, 100)
    assert "capacity_rps_per_task" in info.value.message and "mldeploy bench" in (info.value.hint or "")
    assert estimate_for_config(cfg, 100, capacity=50).tasks == 4


def test_bundled_price_table_has_sources_dates_and_regions():
    table = json.loads(resources.files("mldeploy.cost").joinpath("prices.json").read_text())
    assert table["hours_per_month"] == 730
    for name, item in table["items"].items():
        assert item["source"].startswith("https://aws.amazon.com/"), name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", item["read"]), name
        regions = item.get("regions") or item.get("tiers")
        assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"} <= set(regions), name
        assert item["estimate"] == name.startswith("fargate_spot"), name
    assert table["items"]["fargate_x86_vcpu_hour"]["regions"]["us-east-1"] == 0.04048
    assert table["items"]["fargate_x86_gb_hour"]["regions"]["us-east-1"] == 0.004445


def test_docs_article_scenario_matches_the_tool():
    """docs/cost.md quotes the tool's output for the article's stack: keep the two in step."""
    from pathlib import Path

    from mldeploy.config import parse_text

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cost.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n# article-scenario\n(.*?)```", doc, re.S)
    assert block, "the article-scenario config block is missing from docs/cost.md"
    cfg, _ = parse_text(block.group(1), file="docs/cost.md", environ={})
    totals = [estimate_for_config(cfg, rps).total for rps in (100, 1000, 10000)]
    row = re.search(r"│ Total per month +│(.*)│\n", doc)
    assert row and [f"${t:,.2f}" for t in totals] == row.group(1).replace("│", " ").split()
    assert [f"${t:,.2f}" for t in totals] == ["$269.04", "$1,378.15", "$13,177.50"]


def test_budget_gate_reports_the_delta_and_refuses_over_budget():
    from mldeploy.cost.budget import Deployed, check, deployed_from, enforce
    from mldeploy.errors import ExitCode, OverBudgetError

    cfg = config(aws={"cpu": 256, "memory": 512, "desired_count": 1, "autoscaling": {"min": 1, "max": 4}},
                 cost={"capacity_rps_per_task": 100, "budget_monthly": 40, "expected_rps": 10})
    first = check(cfg)
    assert first.deployed == 0 and first.delta == pytest.approx(first.monthly) and first.over
    assert first.monthly == pytest.approx(52.33, abs=0.01)  # the iris example in docs/cost.md
    assert "cost.budget_monthly $40.00" in first.message and "+$52.33 vs deployed ($0.00)" in first.message
    with pytest.raises(OverBudgetError) as info:
        enforce(first)
    assert info.value.exit_code == ExitCode.OVER_BUDGET == 9 and "--ignore-budget" in (info.value.hint or "")
    enforce(first, ignore=True)
    enforce(first.to_dict() | {"over": False})
    same = check(cfg, deployed=Deployed(tasks=1, cpu=256, memory=512))
    assert same.delta == pytest.approx(0, abs=1e-9)
    bigger = check(cfg.model_copy(update={"cost": cfg.cost.model_copy(update={"budget_monthly": 100})}),
                   deployed=Deployed(tasks=1, cpu=256, memory=512), canary_percent=10)
    assert not bigger.over and bigger.delta == pytest.approx((0.25 * 0.04048 + 0.5 * 0.004445) * H + H * 0.005
                                                             + 5 * 0.30, abs=0.05)  # canary task, IP, 5 metrics, EMF
    assert deployed_from({"desiredCount": 2}, {"cpu": "512", "memory": "1024"}) == Deployed(2, 512, 1024)
    assert deployed_from(None, None) is None
    nothing = check(config(cost={"capacity_rps_per_task": None, "expected_rps": 10}))
    assert nothing.rps is None and "needs a capacity" in nothing.basis


def test_alternatives_ecs_on_ec2_and_lambda():
    from mldeploy.cost import load_prices
    from mldeploy.cost.alternatives import alternatives

    cfg = config(cost={"free_tier": False})
    est = estimate_for_config(cfg, 100)  # 4 × 0.5 vCPU / 1 GB tasks
    ec2, lam = alternatives(est, cfg, load_prices())
    assert ec2.total is not None and "ec2/pricing" in ec2.source and "2026-12-01" in ec2.source
    inst = ec2.components[0]
    assert inst.name == "EC2 c7i.large" and inst.quantity == 2  # 2 tasks per c7i.large (2 vCPU, 4 GiB)
    assert inst.monthly == pytest.approx(2 * 0.08925 * H)
    fargate_only = sum(est.component(k).monthly for k in ("fargate", "public_ipv4"))
    assert ec2.total == pytest.approx(est.total - fargate_only + sum(c.monthly for c in ec2.components))
    requests = 100 * S
    ms = math.ceil(0.5 / 50 * 1000)  # 0.5 vCPU ÷ 50 req/s = 10 ms of CPU per request
    assert lam.components[0].monthly == pytest.approx(requests * 0.0000002)
    assert lam.components[1].monthly == pytest.approx(requests * ms / 1000 * 1769 / 1024 * 0.0000166667)
    assert "lambda/pricing" in lam.source
    assert alternatives(estimate_for_config(config(aws={"region": "eu-west-1"}), 100), cfg,
                        load_prices())[0].total is None  # no bundled EC2 prices there
