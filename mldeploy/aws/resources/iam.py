"""IAM roles: the task execution role (ECR pull + logs + the configured secrets only) and the optional task role.

Role ARNs are deterministic (``arn:aws:iam::ACCOUNT:role/NAME``), so later steps use them without a ``Ref``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.aws.resources import model_store
from mldeploy.config.schema import secret_resource_arn

KIND = "iam role"
EXEC_POLICY_NAME = "mldeploy-execution"


def trust_policy(spec: StackSpec, *, task_role: bool) -> dict[str, Any]:
    """Who may assume the role: ECS tasks of this account only. ECS guide, "Amazon ECS task IAM role": "we
    recommend that you use the aws:SourceAccount or aws:SourceArn condition keys … to prevent the confused deputy
    security issue" (SourceArn ``arn:aws:ecs:REGION:ACCOUNT:*``). The execution role (assumed by ECS for the image
    pull, logs and secrets) gets aws:SourceAccount only."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": spec.account}}
    if task_role:
        condition["ArnLike"] = {"aws:SourceArn": spec.arn("ecs", "*")}
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole",
         "Condition": condition}]}


def _document(value: Any) -> Any:
    """A policy document as IAM answers it: a dict (boto3 decodes it) or (URL-encoded) JSON text."""
    if isinstance(value, str):
        from urllib.parse import unquote

        return json.loads(unquote(value) if value.startswith("%") else value)
    return value


def role_changes(spec: StackSpec, name: str, role: dict[str, Any], *,
                 task_role: bool) -> tuple[list[str], list[ApiCall]]:
    """The boundary (``aws.permissions_boundary``) and trust policy of an existing role: what differs and the calls
    that fix it. The boundary comes first: the deploy policy (``mldeploy iam-policy``) lets PutRolePolicy and
    AttachRolePolicy through only once the role carries it. A role whose boundary config no longer names keeps it
    (the deploy policy grants no DeleteRolePermissionsBoundary)."""
    changes: list[str] = []
    calls: list[ApiCall] = []
    boundary = spec.config.aws.permissions_boundary
    current = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if boundary and current != boundary:
        changes.append(f"permissions boundary {current or '(none)'} → {boundary}")
        calls.append(ApiCall("iam", "put_role_permissions_boundary", {"RoleName": name,
                                                                       "PermissionsBoundary": boundary}))
    want = trust_policy(spec, task_role=task_role)
    have = role.get("AssumeRolePolicyDocument")  # GetRole always answers it (a canned answer may leave it out)
    if have is not None and _document(have) != want:
        changes.append("trust policy: ECS tasks of this account only (aws:SourceAccount)")
        calls.append(ApiCall("iam", "update_assume_role_policy", {"RoleName": name,
                                                                   "PolicyDocument": json.dumps(want)}))
    return changes, calls


def execution_policy(spec: StackSpec) -> dict[str, Any]:
    """Least privilege for pulling the image, writing logs and reading the configured secrets."""
    log_arn = spec.arn("logs", f"log-group:{spec.names.log_group}")
    statements: list[dict[str, Any]] = [
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_arn, f"{log_arn}:*"]},
    ]
    if spec.uses_ecr:
        statements += [
            {"Sid": "EcrAuth", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "EcrPull", "Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": spec.arn("ecr", f"repository/{spec.ecr_repository}")},
        ]
    aws = spec.config.aws
    secrets = aws.secrets.values()
    ssm = sorted({a for a in secrets if ":ssm:" in a})
    # a valueFrom may end in :json-key:version-stage:version-id (ECS guide, secrets-envvar-secrets-manager); IAM
    # matches the secret's own ARN, so the policy names the secret without that suffix
    sm = sorted({secret_resource_arn(a) for a in secrets if ":secretsmanager:" in a})
    if ssm:
        statements.append({"Sid": "SsmSecrets", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": ssm})
    if sm:
        statements.append({"Sid": "SecretsManager", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": sm})
    if (ssm or sm) and aws.secrets_kms_key_arn:
        # ECS guide, "Amazon ECS task execution IAM role" (secrets): "kms:Decrypt — Required only if your key uses a
        # custom KMS key and not the default key"; the same for SSM SecureString parameters
        statements.append({"Sid": "SecretsKms", "Effect": "Allow", "Action": "kms:Decrypt",
                           "Resource": aws.secrets_kms_key_arn})
    statements += registry_credentials_statements(spec)
    return {"Version": "2012-10-17", "Statement": statements}


def registry_credentials_statements(spec: StackSpec) -> list[dict[str, Any]]:
    """GetSecretValue on ``registry.credentials_secret`` (private non-ECR registries): "the task execution role
    … must have … secretsmanager:GetSecretValue" on the secret ("Private registry authentication for tasks", ECS
    developer guide). An ARN without Secrets Manager's 6-character suffix gets ``-??????``, which IAM matches
    against the full ARN (Secrets Manager user guide, "Resource: reference a secret by its partial ARN")."""
    arn = spec.config.registry.credentials_secret
    if not arn or spec.uses_ecr:
        return []
    resource = arn if re.search(r"-[A-Za-z0-9]{6}$", arn) else f"{arn}-??????"
    return [{"Sid": "RegistryCredentials", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": resource}]


def role_arn(spec: StackSpec, name: str) -> str:
    return spec.arn("iam", f"role/{name}", region=False)


def read_role(spec: StackSpec, remote: Remote, name: str) -> dict | None:
    got = remote.get("iam", "get_role", RoleName=name, missing=("NoSuchEntity",))
    return got["Role"] if got else None


def _create_role(spec: StackSpec, name: str, description: str, *, task_role: bool) -> ApiCall:
    params: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(trust_policy(
        spec, task_role=task_role)), "Description": description, "Tags": spec.tag_list(), "MaxSessionDuration": 3600}
    if spec.config.aws.permissions_boundary:
        params["PermissionsBoundary"] = spec.config.aws.permissions_boundary
    return ApiCall("iam", "create_role", params)


def _put_exec_policy(spec: StackSpec) -> ApiCall:
    return ApiCall("iam", "put_role_policy", {"RoleName": spec.names.execution_role, "PolicyName": EXEC_POLICY_NAME,
                                              "PolicyDocument": json.dumps(execution_policy(spec))})


def plan_execution_role(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.execution_role
    role = read_role(spec, remote, name)
    known["execution_role_arn"] = role["Arn"] if role else role_arn(spec, name)
    if role is None:
        what = "execution role: ECR pull + logs" + (" + secrets" if spec.config.aws.secrets else "")
        return [Step(KIND, name, Action.create, [what], calls=[
            _create_role(spec, name, "mldeploy task execution role (ECR pull, logs)", task_role=False),
            _put_exec_policy(spec)])]
    spec.check_owned("IAM role", name, tag_dict(role.get("Tags")))
    changes, calls = role_changes(spec, name, role, task_role=False)
    got = remote.get("iam", "get_role_policy", RoleName=name, PolicyName=EXEC_POLICY_NAME, missing=("NoSuchEntity",))
    current = _document(got["PolicyDocument"]) if got else None
    if current != execution_policy(spec):
        changes.append("execution policy")
        calls.append(_put_exec_policy(spec))
    if not calls:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def _attach(name: str, arn: str) -> ApiCall:
    return ApiCall("iam", "attach_role_policy", {"RoleName": name, "PolicyArn": arn})


def plan_task_role(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.task_role
    wanted = sorted(spec.config.aws.task_role_policy_arns)
    role = read_role(spec, remote, name)
    if role is not None:
        spec.check_owned("IAM role", name, tag_dict(role.get("Tags")))
    # read only with model.store: s3 (a switch back to image leaves the policy until `down` removes the role)
    model_have = _inline(remote, name, MODEL_POLICY_NAME) if role is not None and model_store.enabled(spec) else None
    model_want = model_store.task_role_policy(spec, model_have, known.get("model_location"))
    model_calls = _model_policy_calls(name, model_have, model_want)
    if not wanted and model_want is None:
        known["task_role_arn"] = None
        if role is None:
            return []
        return [Step(KIND, name, Action.delete, ["no task_role_policy_arns configured"],
                     calls=delete_role_calls(remote, name))]
    known["task_role_arn"] = role["Arn"] if role else role_arn(spec, name)
    model_change = [] if not model_calls else ["no model artifacts"] if model_want is None else [
        "s3:GetObject on the model's prefix (known after upload)"] if is_unknown(model_want) else [
        f"s3:GetObject on {len(model_store.granted_prefixes(model_want, spec))} model version prefix(es)"]
    if role is None:
        what = ", ".join(wanted) if wanted else "the model artifacts"
        return [Step(KIND, name, Action.create, [f"task role with {what}", *model_change], calls=[
            _create_role(spec, name, "mldeploy task role (the model's own AWS access)", task_role=True),
            *(_attach(name, arn) for arn in wanted), *model_calls])]
    role_change, calls = role_changes(spec, name, role, task_role=True)
    attached = remote.get("iam", "list_attached_role_policies", RoleName=name)["AttachedPolicies"]
    current = sorted(p["PolicyArn"] for p in attached)
    add, remove = sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))
    if not calls and not add and not remove and not model_calls:
        return [noop(KIND, name)]
    calls += [_attach(name, a) for a in add] + [
        ApiCall("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": r}) for r in remove] + model_calls
    return [Step(KIND, name, Action.update, role_change + [f"attach {a}" for a in add]
                 + [f"detach {r}" for r in remove] + model_change, calls=calls)]


MODEL_POLICY_NAME = "mldeploy-model-artifacts"
"""The task role's inline policy for ``model.store: s3`` (``model_store.task_role_policy``)."""


def _inline(remote: Remote, role: str, policy: str) -> dict[str, Any] | None:
    got = remote.get("iam", "get_role_policy", RoleName=role, PolicyName=policy, missing=("NoSuchEntity",))
    return _document(got["PolicyDocument"]) if got else None


def _model_policy_calls(role: str, have: dict[str, Any] | None, want: Any) -> list[ApiCall]:
    """Put the model-artifacts policy when it differs; delete it when the model is no longer in S3."""
    if want is None:
        return [] if have is None else [ApiCall("iam", "delete_role_policy", {
            "RoleName": role, "PolicyName": MODEL_POLICY_NAME}, missing=("NoSuchEntity",))]
    if want == have:
        return []
    doc = want if is_unknown(want) else json.dumps(want)
    return [ApiCall("iam", "put_role_policy", {"RoleName": role, "PolicyName": MODEL_POLICY_NAME,
                                               "PolicyDocument": doc})]


def delete_role_calls(remote: Remote, name: str) -> list[ApiCall]:
    """Detach and delete its policies, then the role (IAM refuses to delete a role that still has policies)."""
    calls = [ApiCall("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": p["PolicyArn"]},
                     missing=("NoSuchEntity",))
             for p in remote.get("iam", "list_attached_role_policies", RoleName=name)["AttachedPolicies"]]
    calls += [ApiCall("iam", "delete_role_policy", {"RoleName": name, "PolicyName": p}, missing=("NoSuchEntity",))
              for p in remote.get("iam", "list_role_policies", RoleName=name)["PolicyNames"]]
    return [*calls, ApiCall("iam", "delete_role", {"RoleName": name}, missing=("NoSuchEntity",))]


def _delete(spec: StackSpec, remote: Remote, name: str) -> list[Step]:
    role = read_role(spec, remote, name)
    if role is None or not spec.owns(tag_dict(role.get("Tags"))):
        return []
    return [Step(KIND, name, Action.delete, calls=delete_role_calls(remote, name))]


def delete_execution_role(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    return _delete(spec, remote, spec.names.execution_role)


def delete_task_role(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    return _delete(spec, remote, spec.names.task_role)
