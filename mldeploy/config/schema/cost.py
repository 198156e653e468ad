"""``cost:``: the traffic and sizing assumptions of the cost estimate, and the monthly budget."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mldeploy.config.schema.common import Strict


class CostSection(Strict):
    capacity_rps_per_task: Annotated[float, Field(gt=0)] | None = None
    request_bytes: Annotated[int, Field(ge=0)] = 1024
    response_bytes: Annotated[int, Field(ge=0)] = 512
    log_bytes_per_request: Annotated[int, Field(ge=0)] = 300
    keepalive_requests_per_connection: Annotated[float, Field(ge=1)] = 100.0
    connection_duration_s: Annotated[float, Field(gt=0, le=4000)] = Field(
        default=60.0, description="Average client connection lifetime (ALB active-connections LCU dimension).")
    alb_rules: Annotated[int, Field(ge=0, le=100)] = Field(
        default=1, description="Listener rules evaluated per request (the first 10 are free).")
    image_gb: Annotated[float, Field(gt=0, le=100)] = Field(
        default=1.0, description="Compressed image size in ECR (storage, NAT pulls).")
    images_retained: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=10, description="Image versions kept in ECR (upper bound: shared layers are stored once).")
    custom_metrics: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="CloudWatch custom metrics published by the service (default: what the runtime's "
                                  "EMF lines create: 5 metric names × (the app/env set + one per model version) = "
                                  "10, 15 during a canary; ALB/ECS metrics are free).")
    log_sample_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Share of requests that write an access-log line, for what-if estimates "
                                  "(default: runtime.access_log.sample_rate when the runtime has it, else 0.01); "
                                  "errors and slow requests are always logged (always_logged_fraction).")
    always_logged_fraction: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.01, description="Share of requests logged whatever the sampling (errors, slow requests).")
    alb_subnets: Annotated[int, Field(ge=2, le=32)] | None = Field(
        default=None, description="Subnets (AZs) the ALB spans, one public IPv4 each (default: the configured "
                                  "subnets, else the region's default subnets, e.g. 6 in us-east-1).")
    budget_monthly: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="USD per month: plan/up/canary refuse (exit 9) when the estimate exceeds it "
                                  "(--ignore-budget overrides).")
    expected_rps: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Steady request rate the budget gate prices (default: the cost before traffic).")
    nat_gateways: Annotated[int, Field(ge=0, le=10)] | None = Field(
        default=None, description="NAT gateways paid for this service (default: 1 when aws.assign_public_ip "
                                  "is false, else 0).")
    free_tier: bool = Field(
        default=True, description="Subtract AWS's always-free allowances (account-wide: 3 dashboards, 10 metrics, "
                                  "10 alarms, 5 GB logs, 100 GB data transfer out).")
