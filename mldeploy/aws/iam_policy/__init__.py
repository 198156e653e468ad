"""``mldeploy iam-policy``: the least-privilege policy of the identity that runs plan/up/status/logs/down/canary/
promote/rollback, and (``--boundary``) the permissions boundary of the roles mldeploy creates.

Every statement is scoped to one app/env: by ARN where the resource's ARN holds a name mldeploy chooses
(``project.names``: ECR repository, ECS cluster/service/task-definition family, load balancer and target groups and
their listeners/rules, log group, alarms, dashboard, SNS topic, SSM path, IAM roles), and by the ``mldeploy:app`` /
``mldeploy:env`` tags where the ARN is an id AWS picks (security groups, scalable targets, ACM certificates):
``aws:RequestTag`` on the create call (the tags mldeploy sends there, :meth:`Scope.tag_keys`), ``aws:ResourceTag``
afterwards. Only the calls AWS authorizes on ``"*"`` (no resource type in the Service Authorization Reference) and
read-only Describe/List calls stay on ``"*"``; each is listed with its reason in :data:`UNSCOPED`.

The tables are data: a service is a list of :class:`Grant` in :data:`GRANTS` (its ARN patterns use the
:meth:`Scope.values` placeholders; ``merge`` folds grants into one statement to stay under IAM's size quota), so a
new resource module adds its actions with one entry (``GRANTS["autoscaling"] = [...]``) and the unit test
(tests/unit/aws/test_iam_policy.py, whose ``authorizations`` models each API call) checks them like the rest.

``aws.compute: ec2`` adds the container instances' role and profile, launch template, Auto Scaling group and
capacity provider (:data:`GRANTS` ``"compute"``, :func:`instance_role_grants`), ``model.store: s3`` the shared model
bucket (``"s3"``); outside a project neither is printed (the default stays under the inline quota). With ec2 the
document is over a role's inline quota (``ROLE_POLICY_LIMIT``): :func:`managed_policies` splits it. A project that
goes back from ec2 to Fargate needs the ec2 policy until the ``up`` that removes the EC2 capacity
(``capacity.plan_cleanup``) has run.

Facts from the Service Authorization Reference ("Actions, resources, and condition keys for <service>") are cited
per grant as "SAR <service>".

Layout: ``scope`` (:class:`Scope`, :class:`Grant`, placeholders and tag conditions), ``arns`` (ARN patterns),
``grants`` (:data:`GRANTS`: a new resource module adds its entry there), ``roles`` (the statements on the app's
roles), ``document`` (:func:`policy_for`, :func:`boundary_policy`), ``limits`` (size quotas, :data:`UNSCOPED`,
:func:`managed_policies`). Every public name stays importable from ``mldeploy.aws.iam_policy``.
"""

from __future__ import annotations

from mldeploy.aws.iam_policy.arns import (
    CERTIFICATE,
    CW,
    EC2,
    ECR,
    ECS,
    ECS_INSTANCE_POLICY,
    ELB,
    ELB_OURS,
    INSTANCE_PROFILE,
    INSTANCE_ROLE,
    LAUNCH_TEMPLATE,
    LOGS,
    MODEL_BUCKET,
    ROLES,
    SCALABLE_TARGET,
    SG,
    SSM,
    TASK_ROLE,
)
from mldeploy.aws.iam_policy.document import boundary_name, boundary_policy, policy_for, scope_for
from mldeploy.aws.iam_policy.grants import GRANTS, MERGED_SIDS
from mldeploy.aws.iam_policy.limits import (
    MANAGED_POLICIES_PER_ROLE,
    MANAGED_POLICY_LIMIT,
    ROLE_POLICY_LIMIT,
    STAR_OK_PREFIXES,
    UNSCOPED,
    managed_policies,
    size,
    unscoped_mutations,
)
from mldeploy.aws.iam_policy.roles import instance_role_grants, role_grants
from mldeploy.aws.iam_policy.scope import (
    ANY,
    Condition,
    Grant,
    Scope,
    alarm_names,
    expand,
    fill,
    owned,
    tagged_on_create,
)

__all__ = [
    "ANY",
    "CERTIFICATE",
    "CW",
    "Condition",
    "EC2",
    "ECR",
    "ECS",
    "ECS_INSTANCE_POLICY",
    "ELB",
    "ELB_OURS",
    "GRANTS",
    "Grant",
    "INSTANCE_PROFILE",
    "INSTANCE_ROLE",
    "LAUNCH_TEMPLATE",
    "LOGS",
    "MANAGED_POLICIES_PER_ROLE",
    "MANAGED_POLICY_LIMIT",
    "MERGED_SIDS",
    "MODEL_BUCKET",
    "ROLES",
    "ROLE_POLICY_LIMIT",
    "SCALABLE_TARGET",
    "SG",
    "SSM",
    "STAR_OK_PREFIXES",
    "Scope",
    "TASK_ROLE",
    "UNSCOPED",
    "alarm_names",
    "boundary_name",
    "boundary_policy",
    "expand",
    "fill",
    "instance_role_grants",
    "managed_policies",
    "owned",
    "policy_for",
    "role_grants",
    "scope_for",
    "size",
    "tagged_on_create",
    "unscoped_mutations",
]
