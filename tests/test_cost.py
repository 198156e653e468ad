"""Cost arithmetic checked against figures computed by hand from the bundled unit prices (us-east-1 unless noted)."""

from __future__ import annotations

import json
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
    fixed = 3 * (0.5 * 0.04048 + 0.004445) * H + 0.0225 * H + 10 * 0.10  # tasks + ALB hours + ECR (1 GB × 10)
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


def test_logs_ingestion_and_storage():
    est = estimate_for_config(config(aws={"log_retention_days": 7}), 100)
    gb = 100 * 300 * S / 1e9  # 78.84 GB/month
    assert est.component("logs_ingest").quantity == pytest.approx(78.84)
    assert est.component("logs_ingest").monthly == pytest.approx((gb - 5) * 0.50)  # $36.92 after 5 GB free
    assert est.component("logs_storage").monthly == pytest.approx(gb / (H / 24) * 7 * 0.03)
    no_free = estimate_for_config(config(cost={"free_tier": False}), 100)
    assert no_free.component("logs_ingest").monthly == pytest.approx(gb * 0.50)


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
    assert est.component("alarms").quantity == 5  # 3 service alarms + CPU target tracking (2)
    paid = estimate_for_config(config(cost={"free_tier": False},
                                      aws={"autoscaling": {"min": 1, "max": 4, "requests_per_target": 100}}), 10)
    assert paid.component("alarms").quantity == 7 and paid.component("alarms").monthly == pytest.approx(0.7)
    assert paid.component("dashboards").monthly == pytest.approx(3.0)
    quiet = estimate_for_config(config(aws={"alarms": {"enabled": False}}), 10)
    assert quiet.component("alarms").quantity == 2  # the scaling policy's alarms remain
    assert estimate_for_config(config(), 10).component("metrics").quantity == 5  # the runtime's EMF metrics


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
    log_gb = 100 * 300 * S / 1e9
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
    assert [f"${t:,.2f}" for t in totals] == ["$242.97", "$1,349.99", "$13,125.84"]
