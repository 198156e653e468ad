"""The root of ``mldeploy.yaml``: the app name and one field per section."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from mldeploy.config.schema.aws import AwsSection
from mldeploy.config.schema.ci import CiSection
from mldeploy.config.schema.common import MAX_BASE_NAME, MIN_NAME, NAME_RE, Strict
from mldeploy.config.schema.cost import CostSection
from mldeploy.config.schema.image import ImageSection
from mldeploy.config.schema.model import ModelSection
from mldeploy.config.schema.registry import RegistrySection
from mldeploy.config.schema.release import ReleaseSection
from mldeploy.config.schema.runtime import RuntimeSection


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
