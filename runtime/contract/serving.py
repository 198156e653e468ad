"""The serving settings shared by ``mldeploy.yaml``'s ``runtime:`` section and the server's ``runtime.json``.

Secrets are never settings: only the *names* of the env vars / files that hold them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_RATE_RE = re.compile(r"\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*")


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
    jwt_audience: str | None = None
    jwt_issuer: str | None = None


class RateLimit(Strict):
    enabled: bool = False
    limit: str = Field(default="100/second", description="Per API key (or client IP), e.g. '100/second'.")

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: str) -> str:
        if not _RATE_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a rate like '100/second' or '1000/minute'")
        return v


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
