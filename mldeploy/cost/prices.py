"""The unit price table: the bundled ``prices.json`` (offline default) or a ``--live`` refresh from the AWS Pricing API.

Every item carries its unit, source URL, the date it was read and whether it is an estimate (Fargate Spot). A live
refresh only replaces the items it could match in the Pricing API and is cached under ``~/.cache/mldeploy/``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from mldeploy.errors import AwsError, ConfigError

CACHE_TTL_S = 24 * 3600
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class PriceInfo:
    """One unit price in one region, with its provenance."""

    item: str
    region: str
    price: float
    unit: str
    source: str
    read: str
    estimate: bool = False
    free: float = 0.0
    tiers: tuple[tuple[float | None, float], ...] = ()


@dataclass
class PriceTable:
    """Unit prices by item and region (see ``prices.json`` for the item names)."""

    data: dict[str, Any]
    origin: str = "bundled"  # bundled | live | cache
    live_items: list[str] = field(default_factory=list)
    warning: str | None = None  # e.g. --live fell back to the bundled table (no network)

    @property
    def hours_per_month(self) -> float:
        return float(self.data.get("hours_per_month", 730))

    @property
    def read(self) -> str:
        return str(self.data.get("read", "unknown"))

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.data["items"]

    def regions(self) -> list[str]:
        """Regions for which every item has a price."""
        sets = [set(v.get("regions") or v.get("tiers") or {}) for v in self.items.values()]
        return sorted(set.intersection(*sets)) if sets else []

    def get(self, item: str, region: str) -> PriceInfo:
        """The price of ``item`` in ``region``; a clear error for a region the table lacks."""
        entry = self.items.get(item)
        if entry is None:
            raise KeyError(f"unknown price item {item!r}")
        by_region = entry.get("tiers") or entry.get("regions") or {}
        if region not in by_region:
            known = ", ".join(self.regions())
            raise ConfigError(
                f"aws.region: no {entry.get('service', item)} price for region {region!r} in the "
                f"{self.origin} price table (it has: {known})",
                hint=f"`mldeploy cost --live --region {region}` reads that region's prices from the AWS Pricing API "
                     "(needs AWS credentials; items it lacks are priced as in us-east-1 and starred), or pass "
                     "--region with one of those",
            )
        value = by_region[region]
        tiers: tuple[tuple[float | None, float], ...] = ()
        if "tiers" in entry:
            tiers = tuple((None if upto is None else float(upto), float(p)) for upto, p in value)
            price = tiers[0][1]
        else:
            price = float(value)
        return PriceInfo(item=item, region=region, price=price, unit=entry["unit"], source=entry["source"],
                         read=str(entry.get("read", self.read)),
                         estimate=bool(entry.get("estimate")) or region in entry.get("estimated_regions", ()),
                         free=float(entry.get("free", 0)), tiers=tiers)

    def price(self, item: str, region: str) -> float:
        return self.get(item, region).price

    def ec2_instances(self, region: str) -> dict[str, tuple[float, float, float]]:
        """``{type: (vCPU, GiB, USD/h)}`` of the bundled EC2 comparison instances ({} for other regions)."""
        table = (self.data.get("ec2_instances") or {}).get("regions", {}).get(region) or {}
        return {name: (float(v[0]), float(v[1]), float(v[2])) for name, v in table.items()}

    def ec2_source(self) -> tuple[str, str]:
        """(source URL, date read) of the EC2 comparison prices."""
        entry = self.data.get("ec2_instances") or {}
        return str(entry.get("source", "")), str(entry.get("read", self.read))


def bundled() -> PriceTable:
    """The price table shipped with mldeploy."""
    text = resources.files("mldeploy.cost").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable(json.loads(text), origin="bundled")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mldeploy"


def cache_file() -> Path:
    return cache_dir() / "prices-live.json"


def load(live: bool = False, region: str = DEFAULT_REGION, client: Any = None, max_age_s: float = CACHE_TTL_S,
         refresh: bool = False, profile: str | None = None) -> PriceTable:
    """The bundled table, or with ``live`` the bundled table updated from the Pricing API for ``region``.

    A live result is cached for ``max_age_s`` per region; ``refresh`` ignores the cache. ``client`` is a boto3
    ``pricing`` client (tests pass a stubbed one); otherwise one is made for ``profile`` (boto3's chain if None).
    """
    table = bundled()
    if not live:
        return table
    path = cache_file()
    if not refresh and path.exists():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            entry = cached.get(region)
            if entry and time.time() - float(entry["fetched_at"]) < max_age_s:
                return PriceTable(entry["table"], origin="cache", live_items=entry["live_items"])
        except (ValueError, KeyError, TypeError, OSError):
            pass  # a broken cache is simply refreshed
    try:
        fresh = refresh_live(table, region, client, profile)
    except _Offline as e:
        table.warning = (f"--live: the AWS Pricing API is unreachable ({e}); using the bundled prices read "
                         f"{table.read}")
        return table
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cached = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (ValueError, OSError):
        cached = {}
    cached[region] = {"fetched_at": time.time(), "table": fresh.data, "live_items": fresh.live_items}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cached, indent=1), encoding="utf-8")
    tmp.replace(path)
    return fresh


# item → (ServiceCode, productFamily or None, usagetype without the region prefix)
# The Pricing API names usage types "<REGION-PREFIX>-<type>" (us-east-1 often has no prefix), so we filter by
# regionCode on the server and match the type suffix here.
LIVE_ITEMS: dict[str, tuple[str, str | None, str]] = {
    "fargate_x86_vcpu_hour": ("AmazonECS", None, r"Fargate-vCPU-Hours:perCPU"),
    "fargate_x86_gb_hour": ("AmazonECS", None, r"Fargate-GB-Hours"),
    "fargate_arm_vcpu_hour": ("AmazonECS", None, r"Fargate-ARM-vCPU-Hours:perCPU"),
    "fargate_arm_gb_hour": ("AmazonECS", None, r"Fargate-ARM-GB-Hours"),
    "alb_hour": ("AWSELB", "Load Balancer-Application", r"LoadBalancerUsage"),
    "alb_lcu_hour": ("AWSELB", "Load Balancer-Application", r"LCUUsage"),
    "logs_ingest_gb": ("AmazonCloudWatch", None, r"DataProcessing-Bytes"),
    "logs_storage_gb_month": ("AmazonCloudWatch", None, r"TimedStorage-ByteHrs"),
    "custom_metric_month": ("AmazonCloudWatch", None, r"CW:MetricMonitorUsage"),
    "alarm_month": ("AmazonCloudWatch", None, r"CW:AlarmMonitorUsage"),
    "ecr_storage_gb_month": ("AmazonECR", None, r"TimedStorage-ByteHrs"),
    "nat_hour": ("AmazonEC2", "NAT Gateway", r"NatGateway-Hours"),
    "nat_gb": ("AmazonEC2", "NAT Gateway", r"NatGateway-Bytes"),
}
PRICING_ENDPOINT_REGION = "us-east-1"  # the Pricing API answers in us-east-1, eu-central-1 and ap-south-1


def _first_price(product: dict[str, Any]) -> float | None:
    """The first (lowest-tier) non-zero USD price of an on-demand product."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        dims = sorted(term.get("priceDimensions", {}).values(), key=lambda d: float(d.get("beginRange", 0) or 0))
        for dim in dims:
            usd = float(dim.get("pricePerUnit", {}).get("USD", "0") or 0)
            if usd > 0:
                return usd
    return None


class _Offline(Exception):
    """The Pricing API could not be reached (no network): ``load`` falls back to the bundled table."""


def _fill_from_default(data: dict[str, Any], region: str) -> None:
    """Items without a price for ``region`` (not bundled, not found live) take the us-east-1 figure, starred."""
    for entry in data["items"].values():
        key = "tiers" if "tiers" in entry else "regions"
        by_region = entry.setdefault(key, {})
        if region not in by_region and DEFAULT_REGION in by_region:
            by_region[region] = copy.deepcopy(by_region[DEFAULT_REGION])
            entry.setdefault("estimated_regions", []).append(region)


def refresh_live(table: PriceTable, region: str, client: Any = None, profile: str | None = None) -> PriceTable:
    """Replace the items of ``region`` found in the AWS Pricing API; the rest keep their bundled price (for a
    region the table lacks: the us-east-1 price, marked as an estimate)."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if client is None:
        import boto3

        try:
            client = boto3.Session(profile_name=profile).client("pricing", region_name=PRICING_ENDPOINT_REGION)
        except BotoCoreError as e:
            raise AwsError(f"cannot create an AWS Pricing API client: {e}",
                           hint="check --profile / AWS_PROFILE, or drop --live") from e

    data = copy.deepcopy(table.data)
    today = datetime.now(UTC).date().isoformat()
    found: list[str] = []
    products: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    try:
        for item, (service, family, pattern) in LIVE_ITEMS.items():
            key = (service, family)
            if key not in products:
                filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
                if family:
                    filters.append({"Type": "TERM_MATCH", "Field": "productFamily", "Value": family})
                products[key] = []
                for page in client.get_paginator("get_products").paginate(
                        ServiceCode=service, Filters=filters, FormatVersion="aws_v1"):
                    products[key].extend(json.loads(p) if isinstance(p, str) else p for p in page["PriceList"])
            rx = re.compile(rf"^(?:[A-Z0-9]+-)?{re.escape(pattern)}$")
            for product in products[key]:
                usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
                price = _first_price(product) if rx.match(usage) else None
                if price is not None:
                    entry = data["items"][item]
                    entry.setdefault("regions", {})[region] = round(price, 8)
                    entry["source"] = f"AWS Pricing API ({service}, usagetype {usage})"
                    entry["read"] = today
                    found.append(item)
                    break
    except (BotoConnectionError, HTTPClientError) as e:  # no network: not the user's fault to fix here
        raise _Offline(str(e)) from e
    except (BotoCoreError, ClientError) as e:
        raise AwsError(f"could not read prices from the AWS Pricing API: {e}",
                       hint="check network access and AWS credentials (pricing:GetProducts), or drop --live to "
                            f"use the bundled prices read {table.read}") from e
    _fill_from_default(data, region)
    return PriceTable(data, origin="live", live_items=found)
