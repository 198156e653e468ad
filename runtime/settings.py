"""Server settings: ``runtime.json`` (the ``runtime:`` section of mldeploy.yaml) overridden by ``MLDEPLOY_*`` env vars.

The serving fields are ``runtime.contract.serving.ServingConfig`` (also the base of mldeploy.yaml's ``runtime:``).
Secrets are never read from here: only the *names* of the env vars / files that hold them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from runtime.contract.serving import ServingConfig

RUNTIME_FILE = "runtime.json"
ROUTING_FILE = "routing.json"


class Settings(ServingConfig):
    """Everything the server process needs: the shared serving settings plus process knobs.

    ``model_dir``/``models_dir`` come from the CLI or env; the other knobs are not in mldeploy.yaml.
    """

    model_dir: str | None = None
    models_dir: str | None = None
    host: str = "0.0.0.0"
    emf_namespace: str = "mldeploy"
    emf_interval_s: Annotated[float, Field(gt=0)] = 10.0
    threads: Annotated[int, Field(ge=0)] = 0  # inference threads per worker; 0 = CPU quota / workers
    memory_mib: Annotated[int, Field(ge=64)] | None = None  # the task's memory; default: cgroup memory.max
    # seconds an idle keep-alive connection stays open (uvicorn timeout_keep_alive). Above the ALB's idle timeout
    # (default 60 s) so the ALB, not the server, closes idle connections: "we recommend that you configure the idle
    # timeout of your application to be larger than the idle timeout configured for the load balancer" (ALB
    # guide, "Connection idle timeout"); ``mldeploy up`` sets MLDEPLOY_KEEP_ALIVE_S when it raises the ALB's.
    # 4000 s is the ALB's maximum (botocore elbv2 LoadBalancerAttribute.Key idle_timeout "1-4000"), plus a margin.
    keep_alive_s: Annotated[int, Field(ge=1, le=4100)] = 75

    @model_validator(mode="after")
    def _one_model_source(self) -> Settings:
        if not self.model_dir and not self.models_dir:
            raise ValueError("set MLDEPLOY_MODEL_DIR (one artifact folder) or MLDEPLOY_MODELS_DIR (one per version)")
        return self


# env var -> dotted settings path
ENV_MAP: dict[str, str] = {
    "MLDEPLOY_MODEL_DIR": "model_dir",
    "MLDEPLOY_MODELS_DIR": "models_dir",
    "MLDEPLOY_HOST": "host",
    "MLDEPLOY_PORT": "port",
    "MLDEPLOY_WORKERS": "workers",
    "MLDEPLOY_BATCHING": "batching.enabled",
    "MLDEPLOY_MAX_BATCH_SIZE": "batching.max_batch_size",
    "MLDEPLOY_MAX_WAIT_MS": "batching.max_wait_ms",
    "MLDEPLOY_MAX_QUEUE": "max_queue",
    "MLDEPLOY_MAX_BODY_BYTES": "max_body_bytes",
    "MLDEPLOY_REQUEST_TIMEOUT_S": "request_timeout_s",
    "MLDEPLOY_DRAIN_TIMEOUT_S": "drain_timeout_s",
    "MLDEPLOY_AUTH_MODE": "auth.mode",
    "MLDEPLOY_API_KEYS_FILE": "auth.api_keys_file",
    "MLDEPLOY_JWT_ALGORITHM": "auth.jwt_algorithm",
    "MLDEPLOY_JWT_SECRET_FILE": "auth.jwt_secret_file",
    "MLDEPLOY_JWT_AUDIENCE": "auth.jwt_audience",
    "MLDEPLOY_JWT_ISSUER": "auth.jwt_issuer",
    "MLDEPLOY_RATE_LIMIT": "rate_limit.limit",
    "MLDEPLOY_RATE_LIMIT_ENABLED": "rate_limit.enabled",
    "MLDEPLOY_CORS_ORIGINS": "cors.allow_origins",
    "MLDEPLOY_CORS_CREDENTIALS": "cors.allow_credentials",
    "MLDEPLOY_TOP_K": "top_k",
    "MLDEPLOY_LOW_CONFIDENCE": "low_confidence_threshold",
    "MLDEPLOY_LOG_LEVEL": "log_level",
    "MLDEPLOY_ACCESS_LOG": "access_log.enabled",
    "MLDEPLOY_ACCESS_LOG_SAMPLE_RATE": "access_log.sample_rate",
    "MLDEPLOY_ACCESS_LOG_SLOW_MS": "access_log.slow_ms",
    "MLDEPLOY_EMF_NAMESPACE": "emf_namespace",
    "MLDEPLOY_EMF_INTERVAL_S": "emf_interval_s",
    "MLDEPLOY_THREADS": "threads",
    "MLDEPLOY_MEMORY_MIB": "memory_mib",
    "MLDEPLOY_KEEP_ALIVE_S": "keep_alive_s",
    "MLDEPLOY_MAX_ROWS": "max_rows_per_request",
    "MLDEPLOY_MAX_RESPONSE_BYTES": "max_response_bytes",
    "MLDEPLOY_MAX_IMAGE_PIXELS": "max_image_pixels",
    "MLDEPLOY_TRUSTED_PROXIES": "trusted_proxies",
    "MLDEPLOY_METRICS_PORT": "metrics_port",
    "MLDEPLOY_DOCS": "docs",
    "MLDEPLOY_JWT_MAX_LIFETIME_S": "auth.jwt_max_lifetime_s",
    "MLDEPLOY_AUTH_FAILURE_LIMIT": "auth.failure_limit",
}
_LISTS = {"cors.allow_origins", "trusted_proxies"}


class SettingsError(Exception):
    """Bad settings: the message names the env var or runtime.json field."""


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        nxt = data.get(p)
        if not isinstance(nxt, dict):  # ``access_log: false`` in runtime.json, then MLDEPLOY_ACCESS_LOG_SLOW_MS
            nxt = data[p] = {} if nxt is None else {"enabled": nxt}
        data = nxt
    data[leaf] = value


def _known(data: Any, model: type[BaseModel], where: str) -> Any:
    """Drop (and log) runtime.json keys this runtime does not know: a newer CLI must not stop an older server."""
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            logging.getLogger("mldeploy.settings").warning("%s: ignoring unknown setting %r", where, key)
            continue
        sub = field.annotation
        out[key] = _known(value, sub, f"{where}:{key}") if isinstance(sub, type) and issubclass(sub, BaseModel) \
            else value
    return out


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Merge runtime.json (next to model.json, or in MLDEPLOY_MODELS_DIR), env vars and explicit overrides."""
    env = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    model_dir = overrides.get("model_dir") or env.get("MLDEPLOY_MODEL_DIR")
    models_dir = overrides.get("models_dir") or env.get("MLDEPLOY_MODELS_DIR")
    data: dict[str, Any] = {}
    for folder in (models_dir, model_dir):
        path = Path(folder) / RUNTIME_FILE if folder else None
        if path and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise SettingsError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
            data = _known(data, Settings, path.name)
            break
    for var, dotted in ENV_MAP.items():
        if var in env and env[var] != "":
            raw = env[var]
            _set(data, dotted, [s.strip() for s in raw.split(",") if s.strip()] if dotted in _LISTS else raw)
    for key, value in overrides.items():
        _set(data, key, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        env_of = {v: k for k, v in ENV_MAP.items()}
        lines = []
        for err in e.errors():
            dotted = ".".join(str(p) for p in err["loc"])
            where = f"{dotted} ({env_of[dotted]})" if dotted in env_of else dotted or "settings"
            lines.append(f"{where}: {err['msg']}")
        raise SettingsError("invalid runtime settings: " + "; ".join(lines)) from None


def cpu_quota() -> int:
    """CPUs this container may use: cgroup v2 ``cpu.max`` / v1 quota, else the affinity mask (not host cores)."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if q > 0:
            return max(1, math.ceil(q / p))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def inference_threads(settings: Settings) -> int:
    """Inference threads per worker: ``threads``, else the CPU quota shared among the workers."""
    return settings.threads or max(1, cpu_quota() // settings.workers)
