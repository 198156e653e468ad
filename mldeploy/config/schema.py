"""The ``mldeploy.yaml`` schema (pydantic v2).

Every model forbids unknown keys so that typos fail early (with a did-you-mean, see ``loader``).
Checks that AWS would only make at deploy time — Fargate CPU/memory pairs, resource name lengths —
are made here, at ``validate`` time.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# The serving contract is declared once, in the runtime (which reads runtime.json and cannot import this package).
from runtime.contract.serving import ServingConfig
from runtime.manifest import never_trusted

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
MAX_BASE_NAME = 28  # "<base>-tgc" target-group names must stay within AWS's 32 characters
MIN_NAME = 2  # the default ECR repository is the app name: botocore ecr RepositoryName has "min": 2, "max": 256


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
    xgboost = "xgboost"  # native XGBoost JSON/UBJ (Booster.save_model)
    lightgbm = "lightgbm"  # LightGBM text model (Booster.save_model)
    catboost = "catboost"  # CatBoost .cbm
    mlflow = "mlflow"  # an MLflow model folder (MLmodel file)
    transformers = "transformers"  # a Hugging Face save_pretrained folder (config.json + weights + tokenizer)


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


def _int8_parity() -> Parity:
    # int8 weights move outputs by ~1e-2: the gate is on agreement, with a loose numeric bound
    return Parity(atol=0.05, rtol=0.05, min_argmax_agreement=0.98)


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
    quantize: Literal["none", "int8"] = Field(
        default="none", description="int8: onnxruntime dynamic quantization of the served ONNX model (weights int8), "
        "kept only if it passes model.quantize_parity against the original model.")
    quantize_parity: Parity = Field(
        default_factory=_int8_parity, description="The gate for model.quantize: max abs/rel error and argmax "
        "agreement of the quantized model against the original (defaults: atol 0.05, rtol 0.05, agreement 0.98).")
    store: Literal["image", "s3"] = Field(
        default="image", description="Where the served model lives: 'image' (baked into the container image) or "
        "'s3' (uploaded by `up` to the account's mldeploy bucket and downloaded by each task at start into its "
        "ephemeral storage, every file's sha256 verified before the task reports ready; the image holds only the "
        "runtime).")
    trusted_types: list[str] = Field(
        default_factory=list,
        description="skops only: fully qualified types or functions (as `skops.io.get_untrusted_types` names them, "
        "e.g. 'mypkg.features.Scaler') that the model file may construct beyond scikit-learn, NumPy and SciPy "
        "estimators and containers. Each one runs with the file's data at `mldeploy package` and at server start: "
        "list only code you have read.",
    )
    code_paths: list[str] = Field(
        default_factory=list,
        description="Your own Python modules (`features.py`) or package folders (`src/mypkg`), relative to "
        "mldeploy.yaml, that define classes a pickle/joblib model needs: importable at `mldeploy package`, copied "
        "into the image (/app/code, on the server's sys.path) and on `mldeploy serve`'s sys.path.",
    )

    @field_validator("code_paths")
    @classmethod
    def _code_paths(cls, v: list[str]) -> list[str]:
        for entry in v:
            p = PurePosixPath(entry.replace("\\", "/").rstrip("/"))
            module = p.name[:-3] if p.name.endswith(".py") else p.name
            if p.is_absolute() or ".." in p.parts or not module.isidentifier():
                raise ValueError(f"{entry!r} must be a relative path to a module file (name.py) or a package "
                                 "folder whose name is a Python identifier, inside the project folder")
        return v

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
    cuda_base: str = Field(
        default="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04", description="The base image when aws.gpus > 0 and "
        "image.base is not set: a CUDA runtime image (CUDA 12 + cuDNN 9, what onnxruntime-gpu and the CUDA torch "
        "wheels load); Python is installed on it from the distribution (python3-venv).")

    def base_for(self, gpus: int) -> str:
        """The base image: ``base`` when set (or for CPU), else ``cuda_base`` for a GPU deployment."""
        return self.cuda_base if gpus > 0 and "base" not in self.model_fields_set else self.base

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
    credentials_secret: str | None = None
    """Secrets Manager ARN of ``{"username", "password"}`` for a private non-ECR ``url``: ECS pulls with it
    (task definition ``repositoryCredentials``; "Private registry authentication for tasks", ECS guide)."""

    @field_validator("credentials_secret")
    @classmethod
    def _credentials(cls, v: str | None) -> str | None:
        # ECS RepositoryCredentials.credentialsParameter: "The Amazon Resource Name (ARN) of the secret containing
        # the private repository credentials" (botocore ecs service-2.json); a name only resolves in-region and
        # cannot scope the execution role's IAM statement, so the ARN is required
        if v is not None and not re.fullmatch(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+", v):
            raise ValueError(f"{v!r} is not a Secrets Manager secret ARN "
                             "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)")
        return v

    @model_validator(mode="after")
    def _credentials_need_url(self) -> RegistrySection:
        if self.credentials_secret and not self.url:
            raise ValueError("credentials_secret is for private non-ECR registries: set registry.url too "
                             "(ECS pulls from ECR with the execution role)")
        return self

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*", v):
            raise ValueError(f"{v!r} is not a valid repository name (lowercase letters, digits, . _ - /)")
        if v is not None and len(v) > 256:
            raise ValueError("repository names are at most 256 characters")
        return v


CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_CRON_FIELD = {
    # Application Auto Scaling user guide, "Schedule recurring scaling actions using cron expressions" (the
    # EventBridge cron format): values, ranges a-b, lists a,b, increments a/b, * (all) and ? (any); L and W for
    # day-of-month, L and # for day-of-week
    "minutes": r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "hours": r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "day-of-month": r"\?|L|\d{1,2}W|(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "month": r"(\*|(\d{1,2}|[A-Z]{3})(-(\d{1,2}|[A-Z]{3}))?)(/\d{1,2})?(,(\d{1,2}|[A-Z]{3})(-(\d{1,2}|[A-Z]{3}))?)*",
    "day-of-week": r"\?|[1-7A-Z]{1,3}L|[1-7A-Z]{1,3}#[1-5]|(\*|([1-7]|[A-Z]{3})(-([1-7]|[A-Z]{3}))?)(/\d)?"
                   r"(,([1-7]|[A-Z]{3})(-([1-7]|[A-Z]{3}))?)*",
    "year": r"(\*|\d{4}(-\d{4})?)(/\d{1,3})?(,\d{4}(-\d{4})?)*",
}
_CRON_RANGE = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12),
               "day-of-week": (1, 7), "year": (1970, 2199)}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # day-of-week 1-7 = SUN-SAT


def parse_cron(text: str) -> str:
    """``cron(m h dom mon dow year)`` (the ``cron(...)`` wrapper optional) → the six fields, or ValueError.

    botocore application-autoscaling PutScheduledActionRequest.Schedule: "The cron format consists of six fields
    separated by white spaces: [Minutes] [Hours] [Day_of_Month] [Month] [Day_of_Week] [Year]" (UTC by default);
    the user guide: "You can't specify the Day-of-month and Day-of-week fields in the same cron expression. If you
    specify a value (or a *) in one of the fields, you must use a ? (question mark) in the other"."""
    inner = text.strip()
    if inner.startswith("cron(") and inner.endswith(")"):
        inner = inner[5:-1].strip()
    fields = inner.upper().split()
    if len(fields) != 6:
        raise ValueError(f"{text!r} has {len(fields)} fields; AWS cron has 6: minutes hours day-of-month month "
                         "day-of-week year, e.g. '0 20 ? * MON-FRI *'")
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        if not re.fullmatch(_CRON_FIELD[name], value):
            raise ValueError(f"{text!r}: {name} field {value!r} is not a cron value, range, list or increment")
        names = {"month": _MONTHS, "day-of-week": _DAYS}.get(name, ())
        if bad := [w for w in re.findall(r"[A-Z]{3}", value) if w not in names]:
            raise ValueError(f"{text!r}: {name} {bad[0]} is not one of {', '.join(names) or 'the numbers'}")
        low, high = _CRON_RANGE[name]
        for number in re.findall(r"(?<![/#])\b\d+", value):
            if not low <= int(number) <= high:
                raise ValueError(f"{text!r}: {name} {number} is outside {low}–{high}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"{text!r}: exactly one of day-of-month and day-of-week must be '?' (AWS cron)")
    return " ".join(fields)


class ScheduledScaling(Strict):
    """One Application Auto Scaling scheduled action: from ``cron`` on (UTC), keep min–max tasks."""

    cron: str
    min: Annotated[int, Field(ge=0, le=1000)]
    max: Annotated[int, Field(ge=1, le=1000)]

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return parse_cron(v)

    @model_validator(mode="after")
    def _bounds(self) -> ScheduledScaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Autoscaling(Strict):
    min: Annotated[int, Field(ge=0, le=1000)] = 1
    max: Annotated[int, Field(ge=1, le=1000)] = 4
    cpu_target: Annotated[float, Field(gt=0, le=100)] = 60.0
    requests_per_target: Annotated[int, Field(ge=0)] = 0
    scale_in_cooldown_s: Annotated[int, Field(ge=0)] = 120
    scale_out_cooldown_s: Annotated[int, Field(ge=0)] = 30
    schedule: list[ScheduledScaling] = Field(
        default_factory=list, description="Scheduled changes of min/max tasks (Application Auto Scaling scheduled "
        "actions), e.g. a lower minimum at night: [{cron: '0 20 ? * MON-FRI *', min: 1, max: 2}, …] (UTC).")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        crons = [s.cron for s in self.schedule]
        if dupes := sorted({c for c in crons if crons.count(c) > 1}):
            raise ValueError(f"schedule lists {', '.join(dupes)} more than once")
        return self


class HealthCheck(Strict):
    """One health check for both the ALB target group and the ECS container, so the stricter limits apply."""

    path: str = "/ready"
    # botocore elbv2 CreateTargetGroupInput.HealthCheckIntervalSeconds "The range is 5-300"; ecs HealthCheck.interval
    # "between 5 and 300 seconds"
    interval_s: Annotated[int, Field(ge=5, le=300)] = 10
    # botocore ecs HealthCheck.timeout "You may specify between 2 and 60 seconds" (the ALB's 2–120 is wider)
    timeout_s: Annotated[int, Field(ge=2, le=60)] = 5
    healthy_threshold: Annotated[int, Field(ge=2, le=10)] = 2
    unhealthy_threshold: Annotated[int, Field(ge=2, le=10)] = 3
    grace_period_s: Annotated[int, Field(ge=0, le=7200)] = 60
    deregistration_delay_s: Annotated[int, Field(ge=0, le=3600)] = 30

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        # ELBv2 CreateTargetGroup/ModifyTargetGroup answer "ValidationError: Health check interval must be greater
        # than the timeout." (quoted in hashicorp/terraform-provider-aws#48071 and aws/aws-cdk#29075)
        if self.timeout_s >= self.interval_s:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be less than interval_s ({self.interval_s}): "
                             "AWS rejects a health check whose timeout is not below its interval")
        return self


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


def fargate_memory_rule(cpu: int) -> str:
    """The memory values FARGATE_SIZES allows with ``cpu``, as the table states them: a list where it lists
    values (cpu 256: 512, 1024 or 2048 MiB), else a range and its increment (cpu 2048: 4096–16384 MiB in 1024 steps).

    botocore ecs RegisterTaskDefinitionRequest.memory: "512 (0.5 GB), 1024 (1 GB), 2048 (2 GB) - Available cpu
    values: 256 (.25 vCPU)"; "Between 4096 (4 GB) and 16384 (16 GB) in increments of 1024 (1 GB) - Available cpu
    values: 2048 (2 vCPU)".
    """
    allowed = FARGATE_SIZES[cpu]
    steps = {b - a for a, b in zip(allowed, allowed[1:], strict=False)}
    if len(steps) == 1 and len(allowed) > 7:
        return f"{allowed[0]}–{allowed[-1]} MiB in increments of {steps.pop()}"
    return f"{', '.join(map(str, allowed[:-1]))} or {allowed[-1]} MiB"


SECRET_REF = re.compile(
    r"(?P<secret>arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>[\w/+=.@-]+))"
    r"(?::(?P<json_key>[^:]*)(?::(?P<stage>[^:]*)(?::(?P<version>[^:]*))?)?)?")
"""A Secrets Manager ``valueFrom`` (ECS guide, "Pass Secrets Manager secrets through Amazon ECS environment
variables": ``arn:aws:secretsmanager:region:aws_account_id:secret:secret-name:json-key:version-stage:version-id``).
Secret names are letters, digits and ``/_+=.@-`` (Secrets Manager CreateSecretRequest.Name), so never contain ``:``."""

_RANDOM_SUFFIX = re.compile(r".+-[A-Za-z0-9]{6}")


def secret_resource_arn(value_from: str) -> str:
    """The IAM ``Resource`` that grants ``secretsmanager:GetSecretValue`` on a ``valueFrom``: the secret's ARN without
    the ``:json-key:version-stage:version-id`` suffix. Secrets Manager appends "-" and six random characters to every
    secret's ARN; a partial ARN without them gets the ``-??????`` wildcard the Secrets Manager user guide recommends
    for policies ("auth-and-access_iam-policies": "…:secret:SecretName-??????")."""
    m = SECRET_REF.fullmatch(value_from)
    if m is None:
        return value_from
    arn = m.group("secret")
    return arn if _RANDOM_SUFFIX.fullmatch(m.group("name")) else f"{arn}-??????"


SECRET_ENV_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
"""Substrings of environment variable names that likely hold secrets (``aws.environment`` warns about them)."""


class AwsSection(Strict):
    region: str | None = None
    profile: str | None = None
    vpc_id: str | None = None
    subnet_ids: list[str] = Field(
        default_factory=list, description="Subnets of the tasks (and of the load balancer unless alb_subnet_ids).")
    alb_subnet_ids: list[str] = Field(
        default_factory=list, description="Subnets of the load balancer (one per AZ, two AZs or more), e.g. public "
        "subnets while the tasks run in private ones (subnet_ids). Default: subnet_ids.")
    assign_public_ip: bool = True
    internal: bool = False
    allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    compute: Literal["fargate", "ec2"] = Field(
        default="fargate", description="fargate (default), or ec2: ECS on an Auto Scaling group of instances of "
        "aws.instance_type (an ECS capacity provider; the only way to get GPUs).")
    instance_type: str | None = Field(
        default=None, description="compute ec2: the instance type, e.g. c7i.large or g5.xlarge (validate checks "
        "that the task's cpu, memory and gpus fit it).")
    gpus: Annotated[int, Field(ge=0, le=8)] = Field(
        default=0, description="GPUs per task (compute ec2 on a GPU instance type; the GPU ECS-optimized AMI).")
    cpu: int = 512
    memory: int = 1024
    desired_count: Annotated[int, Field(ge=0, le=1000)] = 2
    deploy_timeout_s: Annotated[int, Field(ge=10, le=7200)] | None = Field(
        default=None, description="Seconds up/canary/promote/rollback wait for an ECS rollout before exiting 8 (the "
        "rollout continues on AWS); 10–7200, default release.stability_timeout_s (900).")
    spot: Spot = Field(default_factory=Spot)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    certificate_arn: str | None = None
    domain: str | None = None
    hosted_zone_id: str | None = Field(
        default=None, description="Route 53 hosted zone for aws.domain (default: the public zone with the longest "
        "name the domain ends with); holds the ACM validation record and the alias to the load balancer."
    )
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                                2192, 2557, 2922, 3288, 3653] = 30
    container_insights: bool = False
    alarms: Alarms = Field(default_factory=Alarms)
    environment: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Container env var → SSM parameter or Secrets Manager ARN (a Secrets "
        "Manager ARN may end in :json-key:version-stage:version-id)."
    )
    secrets_kms_key_arn: str | None = Field(
        default=None, description="The customer managed KMS key that encrypts the secrets (the execution role gets "
        "kms:Decrypt on it); not needed for the AWS managed keys.")
    task_role_policy_arns: list[str] = Field(default_factory=list)
    permissions_boundary: str | None = Field(
        default=None, description="IAM policy ARN set as the permissions boundary of the roles mldeploy creates "
        "(execution and task role); `mldeploy iam-policy` then lets the deploy identity create or widen those roles "
        "only with this boundary. `mldeploy iam-policy --boundary` prints a suggested one.")
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
            if ":secretsmanager:" not in arn:
                continue
            m = SECRET_REF.fullmatch(arn)
            if m is None:
                raise ValueError(f"secret {key}: {arn!r} is not arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME "
                                 "optionally followed by :json-key:version-stage:version-id")
            # ECS guide (secrets-envvar-secrets-manager): "version-stage … If a version stage is specified, you can't
            # specify a version ID" (and vice versa)
            if m.group("stage") and m.group("version"):
                raise ValueError(f"secret {key}: {arn!r} names both a version stage and a version id; give one")
        return v

    @field_validator("permissions_boundary")
    @classmethod
    def _boundary(cls, v: str | None) -> str | None:
        # IAM API reference, CreateRole PermissionsBoundary: "The ARN of the managed policy that is used to set the
        # permissions boundary for the role" (a customer managed policy: arn:aws:iam::ACCOUNT:policy/PATH/NAME)
        if v is not None and not re.fullmatch(r"arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,1000}", v):
            raise ValueError(f"{v!r} is not an IAM managed policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)")
        return v

    @field_validator("secrets_kms_key_arn")
    @classmethod
    def _kms_key(cls, v: str | None) -> str | None:
        # IAM grants kms:Decrypt on key ARNs; an alias ARN in a policy Resource does not match the key (KMS developer
        # guide, "Using aliases to control access to KMS keys": use the kms:ResourceAliases condition instead)
        if v is not None and not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]+", v):
            raise ValueError(f"{v!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; not an alias)")
        return v

    @field_validator("subnet_ids", "alb_subnet_ids")
    @classmethod
    def _unique_subnets(cls, v: list[str]) -> list[str]:
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"{', '.join(dupes)} listed more than once")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.lower().startswith(("aws:", "mldeploy:")):
                raise ValueError(f"tag key {key!r} uses a reserved prefix (aws:, mldeploy:)")
        return v

    @field_validator("spot", mode="before")
    @classmethod
    def _spot_shorthand(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v  # `spot: true` = spot.enabled

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, v: str | None) -> str | None:
        # EC2 instance type names are family.size, e.g. "g5.xlarge", "c7i.large" (EC2 user guide, "Instance type
        # naming conventions")
        if v is not None and not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", v):
            raise ValueError(f"{v!r} is not an EC2 instance type like 'c7i.large' or 'g5.xlarge'")
        return v

    @field_validator("cpu")
    @classmethod
    def _fargate_cpu(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("compute") == "ec2":
            # botocore ecs TaskDefinition.cpu: "If you're using the EC2 launch type … Supported values are between
            # 128 CPU units (0.125 vCPUs) and 196608 CPU units (192 vCPUs)"
            if not 128 <= v <= 196608:
                raise ValueError(f"cpu {v} is outside 128–196608 CPU units (ECS on EC2)")
            return v
        if v not in FARGATE_SIZES:
            raise ValueError(f"cpu {v} is not a Fargate size; choose one of {', '.join(map(str, FARGATE_SIZES))}")
        return v

    @field_validator("memory")
    @classmethod
    def _fargate_memory(cls, v: int, info: ValidationInfo) -> int:
        cpu = info.data.get("cpu")
        if info.data.get("compute") == "ec2":
            if v < 128:  # ECS on EC2 reserves task memory on the instance; below 128 MiB no model server starts
                raise ValueError(f"memory {v} MiB is below 128 MiB")
            return v
        allowed = FARGATE_SIZES.get(cpu) if cpu is not None else None
        if allowed is not None and v not in allowed:
            raise ValueError(f"memory {v} MiB is not valid with cpu {cpu} on Fargate: cpu {cpu} takes "
                             f"{fargate_memory_rule(cpu)} (Fargate task size table, ECS developer guide)")
        return v

    @model_validator(mode="after")
    def _compute(self) -> AwsSection:
        if self.compute == "fargate" and self.gpus:
            raise ValueError(f"gpus {self.gpus} needs compute: ec2 (Fargate has no GPUs); set aws.compute: ec2 and a "
                             "GPU aws.instance_type such as g5.xlarge")
        if self.compute == "fargate" and self.instance_type:
            raise ValueError("instance_type is for compute: ec2 (Fargate picks the hardware)")
        if self.compute == "ec2" and not self.instance_type:
            raise ValueError("compute ec2 needs aws.instance_type, e.g. c7i.large (CPU) or g5.xlarge (GPU)")
        return self

    @model_validator(mode="after")
    def _consistency(self) -> AwsSection:
        if self.subnet_ids and not self.vpc_id:
            raise ValueError("subnet_ids requires vpc_id")
        if self.alb_subnet_ids and not self.vpc_id:
            raise ValueError("alb_subnet_ids requires vpc_id")
        # botocore elbv2 CreateLoadBalancerInput.Subnets: "[Application Load Balancers] You must specify subnets from
        # at least two Availability Zones" (one subnet per AZ is checked at plan time: it needs the subnets' AZs)
        alb = ("alb_subnet_ids", self.alb_subnet_ids) if self.alb_subnet_ids else ("subnet_ids", self.subnet_ids)
        if alb[1] and len(alb[1]) < 2:
            raise ValueError(f"{alb[0]} lists {len(alb[1])} subnet; the load balancer needs subnets in at least two "
                             "availability zones")
        if self.hosted_zone_id is not None and self.domain is None:
            raise ValueError("hosted_zone_id requires domain")
        if self.hosted_zone_id is not None and not re.fullmatch(r"(/hostedzone/)?Z[A-Z0-9]{1,32}", self.hosted_zone_id):
            raise ValueError(f"hosted_zone_id {self.hosted_zone_id!r} is not a Route 53 zone id like 'Z0123456789ABC'")
        return self


class ReleaseGates(Strict):
    """Shadow-evaluation gates for ``canary --auto`` (docs/release-gates.md): unset gates are not checked."""

    min_agreement: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Share of shadowed rows where the candidate gives the stable answer.")
    max_shift: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Largest top-score PSI (overall or per class) of the candidate against stable.")
    max_candidate_p99_ms: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="The candidate's p99 model time on the shadowed requests (ms).")
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=200, description="Shadowed rows needed before the gates are judged.")
    sample: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1, description="Share of stable requests the candidate also answers during the shadow phase.")
    shadow_timeout_s: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=1800, description="How long the shadow phase waits for min_samples before rolling back.")


class ReleaseSection(Strict):
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [10, 25, 50, 100])
    bake_time_s: Annotated[int, Field(ge=0, le=86400)] = 300
    stability_timeout_s: Annotated[int, Field(ge=10, le=7200)] = 900
    gates: ReleaseGates | None = Field(
        default=None, description="Judge the candidate's predictions on shadowed live requests before any traffic.")

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


class CiSection(Strict):
    """The CI workflow ``mldeploy init --ci github`` writes."""

    install: str | None = Field(
        default=None, description="What every workflow job installs: one pip requirement, URL or path, e.g. "
        "'mldeploy==0.1.0', 'mldeploy @ git+https://github.com/ORG/mldeploy@v0.1.0' or "
        "'./wheels/mldeploy-0.1.0-py3-none-any.whl' (default: this mldeploy's version, with the model "
        "format's extra). `init --ci github` checks that pip can resolve it.")

    @field_validator("install")
    @classmethod
    def _one_requirement(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or '"' in v or "\n" in v or any(t.startswith("-") for t in v.split())):
            raise ValueError(f"{v!r} must be one pip requirement, URL or path (no quotes, options or newlines)")
        return v.strip() if v is not None else None

    requirements: str | None = Field(
        default=None, description="A hash-locked requirements file (relative to mldeploy.yaml's folder) that every "
        "workflow job installs with `pip install --require-hashes -r` instead of ci.install: every line pinned "
        "with == and carrying --hash= (e.g. `pip-compile --generate-hashes`). `init --ci github` and `validate` "
        "check it.")

    @field_validator("requirements")
    @classmethod
    def _relative_path(cls, v: str | None) -> str | None:
        # it goes into a `run:` line of the workflow: a plain relative path inside the project, nothing to expand
        if v is not None and (not re.fullmatch(r"[A-Za-z0-9._/-]+", v) or v.startswith("/")
                              or ".." in PurePosixPath(v).parts):
            raise ValueError(f"{v!r} must be a relative path inside the project (letters, digits, '.', '_', '-', "
                             "'/'; no '..')")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> CiSection:
        if self.install is not None and self.requirements is not None:
            raise ValueError("set ci.install or ci.requirements, not both (the requirements file pins mldeploy "
                             "itself)")
        return self


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
    ci: CiSection = Field(default_factory=CiSection)
    environments: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Overlays selected with --env (deep-merged over the top level)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) < MIN_NAME and NAME_RE.fullmatch(v + "x"):
            raise ValueError(f"{v!r} is {len(v)} character; app names need at least {MIN_NAME}, because the ECR "
                             f"repository is named after the app and ECR repository names are {MIN_NAME}–256 "
                             "characters")
        if not NAME_RE.fullmatch(v):
            raise ValueError(
                f"{v!r} must be lowercase letters, digits and hyphens, start with a letter and not end with '-'"
            )
        if len(v) > MAX_BASE_NAME:
            raise ValueError(f"{v!r} is {len(v)} characters; at most {MAX_BASE_NAME} (AWS target-group names)")
        # botocore elbv2 CreateLoadBalancerInput.Name: "must not begin with "internal-"" (the load balancer is named
        # after the app)
        if v.startswith("internal-"):
            raise ValueError(f"{v!r} must not begin with 'internal-': AWS reserves it in load balancer names")
        return v
