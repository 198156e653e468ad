"""``registry:``: where images are pushed (ECR or another registry) and its pull credentials."""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from mldeploy.config.schema.common import Strict


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
