"""What every section shares: the ``Strict`` base model and the app-name rules."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
MAX_BASE_NAME = 28  # "<base>-tgc" target-group names must stay within AWS's 32 characters
MIN_NAME = 2  # the default ECR repository is the app name: botocore ecr RepositoryName has "min": 2, "max": 256


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)
