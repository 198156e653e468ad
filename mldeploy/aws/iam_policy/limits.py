"""IAM's policy size quotas, the actions allowed on ``"*"`` and the checks of a finished document."""

from __future__ import annotations

import json
import re
from typing import Any

from mldeploy.aws.iam_policy.scope import ANY

ROLE_POLICY_LIMIT = 10_240
MANAGED_POLICY_LIMIT = 6_144
"""IAM user guide, "IAM and AWS STS quotas": a role's inline policies "cannot exceed 10,240 characters" in all, a
managed policy 6,144; "IAM does not count white space" (:func:`size`)."""

STAR_OK_PREFIXES = ("Describe", "List", "Get")
"""Read-only verbs that may stay on ``*`` (they change nothing); every other action on ``*`` is in UNSCOPED."""

UNSCOPED: dict[str, str] = {
    # action -> why it is granted on "*" (the unit test allows exactly these mutating/credential actions on "*")
    "sts:GetCallerIdentity": "SAR STS: no resource type; names the caller's own account",
    "ecr:GetAuthorizationToken": "SAR ECR: no resource type; the token is scoped by the repository grants",
    "ecs:CreateCluster": "SAR ECS: no resource type; conditioned on aws:RequestTag (our tags on create)",
    "ecs:RegisterTaskDefinition": "SAR ECS: no resource type; conditioned on aws:RequestTag, and running it needs "
                                  "CreateService/UpdateService on our services and iam:PassRole on our roles",
    "ecs:DeregisterTaskDefinition": "SAR ECS: no resource type (only down and keep-N cleanup call it)",
    "acm:RequestCertificate": "SAR ACM: no resource type; conditioned on aws:RequestTag and acm:DomainNames",
    "servicequotas:GetServiceQuota": "read-only: plan's Fargate vCPU preflight (aws/preflight.py)",
    "tag:GetResources": "SAR Resource Groups Tagging: no resource type (read-only)",
}


MANAGED_POLICIES_PER_ROLE = 10
"""IAM user guide, "IAM and AWS STS quotas": "Managed policies attached to an IAM role": 10 by default."""


def managed_policies(policy: dict[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """``policy`` as managed policies of at most ``limit`` characters each (statements kept whole, in order): for a
    policy over a role's inline quota (``ROLE_POLICY_LIMIT``, e.g. ``compute: ec2`` with a domain and a boundary).
    A Deny applies whichever attached policy holds it. Raises ``ValueError`` when the parts exceed
    ``MANAGED_POLICIES_PER_ROLE`` or one statement alone exceeds ``limit``."""
    parts: list[dict[str, Any]] = []
    for st in policy["Statement"]:
        one = {"Version": policy.get("Version", "2012-10-17"), "Statement": [st]}
        if size(one) > limit:
            raise ValueError(f"statement {st.get('Sid')} alone is {size(one)} characters, over {limit}")
        if parts and size({**parts[-1], "Statement": [*parts[-1]["Statement"], st]}) <= limit:
            parts[-1]["Statement"].append(st)
        else:
            parts.append(one)
    if len(parts) > MANAGED_POLICIES_PER_ROLE:
        raise ValueError(f"{len(parts)} managed policies: a role holds {MANAGED_POLICIES_PER_ROLE} by default")
    return parts


def unscoped_mutations(policy: dict[str, Any]) -> list[str]:
    """Allowed actions on ``"*"`` that are neither read-only nor listed in :data:`UNSCOPED` (should be none)."""
    out = []
    for st in policy["Statement"]:
        if st["Effect"] != "Allow" or st.get("Resource") not in (ANY, [ANY]):
            continue
        for action in [st["Action"]] if isinstance(st["Action"], str) else st["Action"]:
            verb = action.split(":", 1)[1]
            if action not in UNSCOPED and not verb.startswith(STAR_OK_PREFIXES):
                out.append(action)
    return out


def size(policy: dict[str, Any]) -> int:
    """The characters IAM counts against its policy size quotas (no white space)."""
    return len(re.sub(r"\s", "", json.dumps(policy)))
