"""The serving settings shared by ``mldeploy.yaml``'s ``runtime:`` section and the server's ``runtime.json``.

Secrets are never settings: only the *names* of the env vars / files that hold them.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_RATE_RE = re.compile(r"\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*")


def _rate(v: str) -> str:
    if not _RATE_RE.fullmatch(v):
        raise ValueError(f"{v!r} is not a rate like '100/second' or '1000/minute'")
    return v


class Strict(BaseModel):
    """Unknown keys are errors (typos fail early)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Batching(Strict):
    enabled: bool = True
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0


class AuthMode(StrEnum):
    none = "none"
    api_key = "api_key"
    jwt = "jwt"


class Auth(Strict):
    """Authentication. Secrets come from environment variables or files, never from this file."""

    mode: AuthMode = AuthMode.none
    api_keys_env: str = "MLDEPLOY_API_KEYS"
    api_keys_file: str | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret_env: str = "MLDEPLOY_JWT_SECRET"
    jwt_secret_file: str | None = None
    jwt_audience: str | None = Field(default=None, description="Required with mode jwt: the 'aud' tokens must carry.")
    jwt_issuer: str | None = Field(default=None, description="When set, tokens must carry this 'iss'.")
    jwt_max_lifetime_s: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="When set, tokens need 'iat' and 'exp - iat' (and 'exp - now') at most this.")
    failure_limit: str = Field(default="30/minute", description="Failed auth attempts per client IP before 429.")
    sensitive_data: bool = Field(
        default=False, description="Requests carry sensitive data: no input is ever kept in memory for inspection "
        "(shadow evaluation's most-disagreeing sample is off whatever routing.json asks).")

    @field_validator("failure_limit")
    @classmethod
    def _failure_limit(cls, v: str) -> str:
        return _rate(v)

    @model_validator(mode="after")
    def _jwt_needs_audience(self) -> Auth:
        if self.mode == AuthMode.jwt and not self.jwt_audience:
            raise ValueError("jwt_audience is required when auth.mode is jwt (tokens issued for another service "
                             "would otherwise be accepted)")
        return self


class RateLimit(Strict):
    enabled: bool = False
    limit: str = Field(default="100/second", description="Per API key (or client IP), e.g. '100/second'.")

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: str) -> str:
        return _rate(v)


class Cors(Strict):
    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST"])
    allow_headers: list[str] = Field(default_factory=lambda: ["Authorization", "Content-Type", "X-API-Key"])
    allow_credentials: bool = False

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Cors:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("cors.allow_origins '*' cannot be combined with allow_credentials; list the origins")
        return self


class AccessLog(Strict):
    """The JSON access log: every error and slow request, a sample of the rest.

    At 10,000 req/s a ~300-byte line per request is 3 MB/s, 7,884 GB a month: $3,942 of CloudWatch Logs ingestion
    at $0.50/GB, far above the tasks serving it. At the default 1 % it is 78.8 GB, $39.42 a month (plus the
    errors and slow requests, always logged).
    """

    enabled: bool = True
    sample_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.01, description="Share of successful, fast requests that write a line (1.0: every request).")
    slow_ms: Annotated[float, Field(ge=0)] = Field(
        default=1000.0, description="Requests slower than this (ms) are always logged, as are errors (status ≥ 400).")


class ServingConfig(Strict):
    """The ``runtime:`` section of mldeploy.yaml, written to ``runtime.json`` beside the model."""

    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    batching: Batching = Field(default_factory=Batching)
    max_queue: Annotated[int, Field(ge=1, le=100000)] = 256
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    drain_timeout_s: Annotated[int, Field(ge=0, le=120)] = 25
    auth: Auth = Field(default_factory=Auth)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    cors: Cors = Field(default_factory=Cors)
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    low_confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_rows_per_request: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Rows (or images) per request, checked before the array is built (413). "
        "Default: derived from the task memory and the model's row size (runtime.limits.default_max_rows).")
    max_response_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    max_image_pixels: Annotated[int, Field(ge=1)] = 40_000_000
    max_request_pixels: Annotated[int, Field(ge=1)] = 80_000_000
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed (on ECS: the VPC CIDR).")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=9090, description="Prometheus /metrics on its own port (0 = off); never on the main port.")
    drift_min_count: Annotated[int, Field(ge=1)] = 100
    docs: bool = Field(default=True, description="Serve /docs and /openapi.json (Swagger UI from local assets).")
    access_log: AccessLog = Field(default_factory=AccessLog)

    @field_validator("access_log", mode="before")
    @classmethod
    def _access_log_switch(cls, v: object) -> object:
        """``access_log: false`` (or true) is short for ``access_log: {enabled: …}``."""
        if isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in ("true", "false", "0", "1")):
            return {"enabled": v}
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network like 10.0.0.0/16") from None
        return v

    @model_validator(mode="after")
    def _metrics_port_differs(self) -> ServingConfig:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(f"metrics_port {self.metrics_port} must differ from port (metrics stay off the "
                             "public port)")
        return self
