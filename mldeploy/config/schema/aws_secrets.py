"""``aws.secrets`` references: Secrets Manager ``valueFrom`` parsing and the IAM resource it grants."""

from __future__ import annotations

import re

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
