"""The ``mldeploy.yaml`` schema (pydantic v2).

Every model forbids unknown keys so that typos fail early (with a did-you-mean, see ``loader``).
Checks that AWS would only make at deploy time — Fargate CPU/memory pairs, resource name lengths —
are made here, at ``validate`` time.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# The serving contract is declared once, in the runtime (which reads runtime.json and cannot import this package).
from runtime.contract.serving import ServingConfig
from runtime.manifest import never_trusted

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
MAX_BASE_NAME = 28  # "<base>-tgc" target-group names must stay within AWS's 32 characters


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class ModelFormat(StrEnum):
    auto = "auto"
    pickle = "pickle"
    joblib = "joblib"
    skops = "skops"
    onnx = "onnx"
    torchscript = "torchscript"
    savedmodel = "savedmodel"
    torch = "torch"


class ConvertTarget(StrEnum):
    auto = "auto"  # ONNX where conversion succeeds and passes parity, else serve natively
    onnx = "onnx"  # ONNX or fail
    torchscript = "torchscript"
    none = "none"  # serve the original format


class TensorSpec(Strict):
    """One named input or output tensor; ``-1``/``null`` in ``shape`` marks a dynamic axis."""

    name: str
    dtype: Literal["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool", "string"] = "float32"
    shape: list[int | None] = Field(default_factory=lambda: [None])


class ImageInput(Strict):
    """Decoding of uploaded JPEG/PNG images for image models."""

    width: Annotated[int, Field(gt=0, le=8192)] = 224
    height: Annotated[int, Field(gt=0, le=8192)] = 224
    channels: Literal[1, 3] = 3
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = 1 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])


class Parity(Strict):
    """Tolerances for the original-vs-converted output comparison."""

    atol: Annotated[float, Field(ge=0)] = 1e-4
    rtol: Annotated[float, Field(ge=0)] = 1e-3
    min_argmax_agreement: Annotated[float, Field(ge=0, le=1)] = 0.99
    samples: Annotated[int, Field(gt=0, le=10000)] = 64


class ModelSection(Strict):
    path: str
    format: ModelFormat = ModelFormat.auto
    convert: ConvertTarget = ConvertTarget.auto
    version: str = "0.1.0"
    task: Literal["auto", "classification", "regression", "image-classification", "other"] = "auto"
    class_labels: list[str] | None = None
    feature_names: list[str] | None = None
    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None
    sample_input: str | None = Field(default=None, description="A .json or .npy file with example inputs.")
    image: ImageInput | None = None
    torch_class: str | None = Field(
        default=None, description="'module:Class' for a PyTorch state dict (format: torch)."
    )
    torch_class_kwargs: dict[str, Any] = Field(default_factory=dict)
    parity: Parity = Field(default_factory=Parity)
    trusted_types: list[str] = Field(
        default_factory=list,
        description="skops only: fully qualified types or functions (as `skops.io.get_untrusted_types` names them, "
        "e.g. 'mypkg.features.Scaler') that the model file may construct beyond scikit-learn, NumPy and SciPy "
        "estimators and containers. Each one runs with the file's data at `mldeploy package` and at server start: "
        "list only code you have read.",
    )

    @field_validator("trusted_types")
    @classmethod
    def _trusted_types(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", name):
                raise ValueError(f"{name!r} is not a fully qualified name like 'package.module.Class'")
            if never_trusted(name):
                raise ValueError(f"{name!r} can run arbitrary code or reach files, processes or the network; "
                                 "mldeploy never trusts it")
        return sorted(set(v))

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", v):
            raise ValueError(f"{v!r} is not a semantic version like 1.2.3")
        return v

    @field_validator("torch_class")
    @classmethod
    def _torch_class(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"{v!r} must look like 'package.module:ClassName'")
        return v


class RuntimeSection(ServingConfig):
    """Settings of the model server, written to runtime.json in the image (declared in runtime.contract)."""

    model_config = ConfigDict(validate_default=True)


class ImageSection(Strict):
    base: str = "python:3.11-slim"
    python_version: str = "3.11"
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    pip_packages: list[str] = Field(default_factory=list)
    system_packages: list[str] = Field(default_factory=list)
    wheelhouse: str | None = Field(default=None, description="A folder of wheels to install from (offline).")

    @field_validator("python_version")
    @classmethod
    def _py(cls, v: str) -> str:
        if not re.fullmatch(r"3\.(9|1[0-9])", str(v)):
            raise ValueError(f"{v!r} is not a supported Python version (3.9 … 3.19)")
        return str(v)


class RegistrySection(Strict):
    """Where images are pushed: ECR (default) or any registry URL such as ``ghcr.io/org``."""

    url: str | None = None
    repository: str | None = None

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*", v):
            raise ValueError(f"{v!r} is not a valid repository name (lowercase letters, digits, . _ - /)")
        if v is not None and len(v) > 256:
            raise ValueError("repository names are at most 256 characters")
        return v


class Autoscaling(Strict):
    min: Annotated[int, Field(ge=0, le=1000)] = 1
    max: Annotated[int, Field(ge=1, le=1000)] = 4
    cpu_target: Annotated[float, Field(gt=0, le=100)] = 60.0
    requests_per_target: Annotated[int, Field(ge=0)] = 0
    scale_in_cooldown_s: Annotated[int, Field(ge=0)] = 120
    scale_out_cooldown_s: Annotated[int, Field(ge=0)] = 30

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class HealthCheck(Strict):
    path: str = "/ready"
    interval_s: Annotated[int, Field(ge=5, le=300)] = 10
    timeout_s: Annotated[int, Field(ge=2, le=120)] = 5
    healthy_threshold: Annotated[int, Field(ge=2, le=10)] = 2
    unhealthy_threshold: Annotated[int, Field(ge=2, le=10)] = 3
    grace_period_s: Annotated[int, Field(ge=0, le=7200)] = 60
    deregistration_delay_s: Annotated[int, Field(ge=0, le=3600)] = 30


class Alarms(Strict):
    enabled: bool = True
    error_rate_percent: Annotated[float, Field(gt=0, le=100)] = 5.0
    p99_latency_ms: Annotated[float, Field(gt=0)] = 1000.0
    email: str | None = None


class Spot(Strict):
    """Fargate Spot: ``weight`` percent of tasks on FARGATE_SPOT, ``base`` tasks always on FARGATE."""

    enabled: bool = False
    weight: Annotated[int, Field(ge=0, le=100)] = 100
    base: Annotated[int, Field(ge=0)] = 1


# CPU units → allowed memory (MiB), from the Fargate task size table.
FARGATE_SIZES: dict[int, list[int]] = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}


class AwsSection(Strict):
    region: str | None = None
    profile: str | None = None
    vpc_id: str | None = None
    subnet_ids: list[str] = Field(default_factory=list)
    assign_public_ip: bool = True
    internal: bool = False
    allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    cpu: int = 512
    memory: int = 1024
    desired_count: Annotated[int, Field(ge=0, le=1000)] = 2
    spot: Spot = Field(default_factory=Spot)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    certificate_arn: str | None = None
    domain: str | None = None
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                                2192, 2557, 2922, 3288, 3653] = 30
    container_insights: bool = False
    alarms: Alarms = Field(default_factory=Alarms)
    environment: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Container env var → SSM parameter or Secrets Manager ARN."
    )
    task_role_policy_arns: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    read_only_root_filesystem: bool = Field(
        default=True, description="Run the container with a read-only root filesystem (a writable /tmp volume is "
        "mounted); set false only for models whose libraries write outside /tmp."
    )

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", v):
            raise ValueError(f"{v!r} is not an AWS region name like 'us-east-1'")
        return v

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+", v):
            raise ValueError(f"{v!r} is not an ACM certificate ARN")
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: dict[str, str]) -> dict[str, str]:
        for key, arn in v.items():
            if not re.fullmatch(r"arn:aws[a-z-]*:(ssm|secretsmanager):.+", arn):
                raise ValueError(f"secret {key}: {arn!r} must be an SSM parameter or Secrets Manager ARN")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.lower().startswith(("aws:", "mldeploy:")):
                raise ValueError(f"tag key {key!r} uses a reserved prefix (aws:, mldeploy:)")
        return v

    @field_validator("cpu")
    @classmethod
    def _fargate_cpu(cls, v: int) -> int:
        if v not in FARGATE_SIZES:
            raise ValueError(f"cpu {v} is not a Fargate size; choose one of {', '.join(map(str, FARGATE_SIZES))}")
        return v

    @field_validator("memory")
    @classmethod
    def _fargate_memory(cls, v: int, info: ValidationInfo) -> int:
        cpu = info.data.get("cpu")
        allowed = FARGATE_SIZES.get(cpu) if cpu is not None else None
        if allowed is not None and v not in allowed:
            step = allowed[1] - allowed[0]
            raise ValueError(
                f"memory {v} MiB is not valid with cpu {cpu} on Fargate; "
                f"allowed: {allowed[0]}–{allowed[-1]} MiB in steps of {step}"
            )
        return v

    @model_validator(mode="after")
    def _consistency(self) -> AwsSection:
        if self.subnet_ids and not self.vpc_id:
            raise ValueError("subnet_ids requires vpc_id")
        if self.certificate_arn is None and self.domain is not None:
            raise ValueError("domain requires certificate_arn (HTTPS)")
        return self


class ReleaseSection(Strict):
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [10, 25, 50, 100])
    bake_time_s: Annotated[int, Field(ge=0, le=86400)] = 300
    stability_timeout_s: Annotated[int, Field(ge=10, le=7200)] = 900

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if v != sorted(set(v)):
            raise ValueError("steps must be strictly increasing percentages, e.g. [10, 25, 50, 100]")
        return v


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
    custom_metrics: Annotated[int, Field(ge=0)] = Field(
        default=5, description="CloudWatch custom metrics published by the service (the runtime's EMF metrics: "
                               "latency, requests, errors, low confidence, confidence per model version; "
                               "ALB/ECS metrics are free).")
    nat_gateways: Annotated[int, Field(ge=0, le=10)] | None = Field(
        default=None, description="NAT gateways paid for this service (default: 1 when aws.assign_public_ip "
                                  "is false, else 0).")
    free_tier: bool = Field(
        default=True, description="Subtract AWS's always-free allowances (account-wide: 3 dashboards, 10 metrics, "
                                  "10 alarms, 5 GB logs, 100 GB data transfer out).")


class Config(Strict):
    """Root of ``mldeploy.yaml`` (after the ``--env`` overlay is applied)."""

    name: str
    model: ModelSection
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    image: ImageSection = Field(default_factory=ImageSection)
    registry: RegistrySection = Field(default_factory=RegistrySection)
    aws: AwsSection = Field(default_factory=AwsSection)
    release: ReleaseSection = Field(default_factory=ReleaseSection)
    cost: CostSection = Field(default_factory=CostSection)
    environments: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Overlays selected with --env (deep-merged over the top level)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError(
                f"{v!r} must be lowercase letters, digits and hyphens, start with a letter and not end with '-'"
            )
        if len(v) > MAX_BASE_NAME:
            raise ValueError(f"{v!r} is {len(v)} characters; at most {MAX_BASE_NAME} (AWS target-group names)")
        return v
