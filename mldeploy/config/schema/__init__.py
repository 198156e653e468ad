"""The ``mldeploy.yaml`` schema (pydantic v2), one module per section.

Every model forbids unknown keys so that typos fail early (with a did-you-mean, see ``loader``).
Checks that AWS would only make at deploy time — Fargate CPU/memory pairs, resource name lengths —
are made here, at ``validate`` time.

Layout: ``common`` (the ``Strict`` base, app-name rules), ``model``, ``runtime``, ``image``, ``registry``,
``aws`` (with ``scaling`` + ``cron``, ``fargate`` and ``aws_secrets``), ``release``, ``cost``, ``ci``, and
``project`` (``Config``, the root). Every public name stays importable from ``mldeploy.config.schema``.
"""

from __future__ import annotations

from mldeploy.config.schema.aws import Alarms, AwsSection, HealthCheck, Spot
from mldeploy.config.schema.aws_secrets import SECRET_ENV_HINTS, SECRET_REF, secret_resource_arn
from mldeploy.config.schema.ci import CiSection
from mldeploy.config.schema.common import MAX_BASE_NAME, MIN_NAME, NAME_RE, Strict
from mldeploy.config.schema.cost import CostSection
from mldeploy.config.schema.cron import CRON_FIELDS, parse_cron
from mldeploy.config.schema.fargate import FARGATE_SIZES, fargate_memory_rule
from mldeploy.config.schema.image import ImageSection
from mldeploy.config.schema.model import ConvertTarget, ImageInput, ModelFormat, ModelSection, Parity, TensorSpec
from mldeploy.config.schema.project import Config
from mldeploy.config.schema.registry import RegistrySection
from mldeploy.config.schema.release import ReleaseGates, ReleaseSection
from mldeploy.config.schema.runtime import RuntimeSection
from mldeploy.config.schema.scaling import Autoscaling, ScheduledScaling

__all__ = [
    "CRON_FIELDS",
    "FARGATE_SIZES",
    "MAX_BASE_NAME",
    "MIN_NAME",
    "NAME_RE",
    "SECRET_ENV_HINTS",
    "SECRET_REF",
    "Alarms",
    "Autoscaling",
    "AwsSection",
    "CiSection",
    "Config",
    "ConvertTarget",
    "CostSection",
    "HealthCheck",
    "ImageInput",
    "ImageSection",
    "ModelFormat",
    "ModelSection",
    "Parity",
    "RegistrySection",
    "ReleaseGates",
    "ReleaseSection",
    "RuntimeSection",
    "ScheduledScaling",
    "Spot",
    "Strict",
    "TensorSpec",
    "fargate_memory_rule",
    "parse_cron",
    "secret_resource_arn",
]
