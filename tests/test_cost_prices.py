"""``--live`` prices: the Pricing API answer is parsed, merged over the bundled table and cached.

moto does not emulate the AWS Pricing API, so these tests drive a real boto3 ``pricing`` client through botocore's
Stubber with answers shaped like the API's (PriceList entries as JSON strings).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from mldeploy.cost import prices
from mldeploy.errors import AwsError


def product(usagetype: str, usd: str, *tiers: tuple[str, str]) -> str:
    dims = {f"D{i}": {"beginRange": begin, "endRange": "Inf", "unit": "Hrs", "pricePerUnit": {"USD": price}}
            for i, (begin, price) in enumerate(tiers or (("0", usd),))}
    return json.dumps({"product": {"attributes": {"usagetype": usagetype, "regionCode": "eu-west-1"}},
                       "terms": {"OnDemand": {"T": {"priceDimensions": dims}}}})


ANSWERS = [  # one get_products call per (service, product family), in LIVE_ITEMS order
    ("AmazonECS", [product("EU-Fargate-vCPU-Hours:perCPU", "0.05"), product("EU-Fargate-GB-Hours", "0.005"),
                   product("EU-Fargate-ARM-vCPU-Hours:perCPU", "0.04"), product("EU-Fargate-ARM-GB-Hours", "0.004"),
                   product("EU-Fargate-EphemeralStorage-GB-Hours", "0.0001")]),
    ("AWSELB", [product("EU-LoadBalancerUsage", "0.03"), product("EU-LCUUsage", "0.009")]),
    ("AmazonCloudWatch", [product("EU-DataProcessing-Bytes", "0.6"), product("EU-TimedStorage-ByteHrs", "0.031"),
                          product("EU-CW:MetricMonitorUsage", "", ("10000", "0.1"), ("0", "0.33")),
                          product("EU-CW:AlarmMonitorUsage", "0.11")]),
    ("AmazonECR", [product("EU-TimedStorage-ByteHrs", "0.11")]),
    ("AmazonEC2", [product("EU-NatGateway-Hours", "0.05"), product("EU-NatGateway-Bytes", "0.049")]),
]


def filters(service: str, region: str) -> list[dict[str, str]]:
    """What the API must be asked: the region, and the product family where the service needs one."""
    family = {"AWSELB": "Load Balancer-Application", "AmazonEC2": "NAT Gateway"}.get(service)
    out = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    return out + ([{"Type": "TERM_MATCH", "Field": "productFamily", "Value": family}] if family else [])


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def stubbed(answers: list[tuple[str, list[str]]], region: str = "eu-west-1"):
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    for service, items in answers:
        stub.add_response("get_products", {"PriceList": items, "FormatVersion": "aws_v1"},
                          {"ServiceCode": service, "Filters": filters(service, region), "FormatVersion": "aws_v1"})
    stub.activate()
    return client, stub


def test_live_refresh_merges_matched_items_and_caches(cache_home: Path):
    client, stub = stubbed(ANSWERS)
    table = prices.load(live=True, region="eu-west-1", client=client)
    stub.assert_no_pending_responses()
    assert table.origin == "live"
    assert table.price("fargate_x86_vcpu_hour", "eu-west-1") == 0.05
    assert table.price("fargate_arm_gb_hour", "eu-west-1") == 0.004
    assert table.price("alb_lcu_hour", "eu-west-1") == 0.009
    assert table.price("custom_metric_month", "eu-west-1") == 0.33  # the first tier, not the 10,000+ one
    assert table.price("nat_gb", "eu-west-1") == 0.049
    info = table.get("alb_hour", "eu-west-1")
    assert info.source == "AWS Pricing API (AWSELB, usagetype EU-LoadBalancerUsage)"
    assert info.read == datetime.now(UTC).date().isoformat()
    assert set(table.live_items) == set(prices.LIVE_ITEMS)
    # items the API does not cover keep the bundled price and source
    assert table.get("dashboard_month", "eu-west-1").source == "https://aws.amazon.com/cloudwatch/pricing/"
    assert table.get("data_transfer_out_gb", "eu-west-1").tiers[0] == (10240.0, 0.09)
    # cached: a second load makes no API call (the stub has no answers left and would raise)
    cached = prices.load(live=True, region="eu-west-1", client=client)
    assert cached.origin == "cache" and cached.price("fargate_x86_vcpu_hour", "eu-west-1") == 0.05
    assert json.loads((cache_home / "mldeploy" / "prices-live.json").read_text())["eu-west-1"]["live_items"]
    # the bundled table is untouched and remains the default
    assert prices.load().price("fargate_x86_vcpu_hour", "eu-west-1") == 0.04048


def test_live_keeps_bundled_prices_for_unmatched_items(cache_home: Path):
    client, stub = stubbed([(svc, []) for svc, _ in ANSWERS], region="us-east-1")
    table = prices.load(live=True, region="us-east-1", client=client, refresh=True)
    assert table.live_items == []
    assert table.price("fargate_x86_vcpu_hour", "us-east-1") == 0.04048


def test_live_api_failure_is_an_aws_error(cache_home: Path):
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_client_error("get_products", service_error_code="AccessDeniedException", service_message="no")
    stub.activate()
    with pytest.raises(AwsError) as info:
        prices.load(live=True, region="us-east-1", client=client, refresh=True)
    assert "Pricing API" in info.value.message and "pricing:GetProducts" in (info.value.hint or "")


def test_the_unbundled_region_hint_works(cache_home: Path):
    from mldeploy.config.schema import Config
    from mldeploy.cost import estimate_for_config
    from mldeploy.errors import ConfigError

    cfg = Config.model_validate({"name": "demo", "model": {"path": "m.onnx"}, "aws": {"region": "sa-east-1"},
                                 "cost": {"capacity_rps_per_task": 50}})
    with pytest.raises(ConfigError) as info:
        estimate_for_config(cfg, 100)
    assert "mldeploy cost --live --region sa-east-1" in (info.value.hint or "")
    # what the hint runs: the Pricing API for sa-east-1; items it lacks take the us-east-1 price, starred
    answers = [(svc, [p.replace('"eu-west-1"', '"sa-east-1"').replace("EU-", "SAE1-") for p in items])
               for svc, items in ANSWERS]
    client, stub = stubbed(answers, region="sa-east-1")
    table = prices.load(live=True, region="sa-east-1", client=client)
    est = estimate_for_config(cfg, 100, prices=table)
    assert est.component("fargate").unit_price == pytest.approx(0.5 * 0.05 + 1 * 0.005)
    assert est.component("public_ipv4").estimate and not est.component("alb").estimate


def test_live_without_network_warns_and_uses_the_bundled_table(cache_home: Path):
    from botocore.exceptions import EndpointConnectionError

    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

    def offline(*_a, **_k):
        raise EndpointConnectionError(endpoint_url="https://api.pricing.us-east-1.amazonaws.com")

    client.get_paginator = offline  # type: ignore[method-assign]
    table = prices.load(live=True, region="us-east-1", client=client, refresh=True)
    assert table.origin == "bundled" and "unreachable" in (table.warning or "")
    assert table.price("fargate_x86_vcpu_hour", "us-east-1") == 0.04048
