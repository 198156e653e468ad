"""``ci:``: what the generated CI workflow installs."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import Field, field_validator, model_validator

from mldeploy.config.schema.common import Strict


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
