"""``aws:``: compute (Fargate or EC2), network, load balancer and domain, health checks, alarms, secrets."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mldeploy.config.schema.aws_secrets import SECRET_REF
from mldeploy.config.schema.common import Strict
from mldeploy.config.schema.fargate import FARGATE_SIZES, fargate_memory_rule
from mldeploy.config.schema.scaling import Autoscaling


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
