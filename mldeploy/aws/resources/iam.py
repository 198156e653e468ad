"""IAM roles: the task execution role (ECR pull + logs + the configured secrets only) and the optional task role.

Role ARNs are deterministic (``arn:aws:iam::ACCOUNT:role/NAME``), so later steps use them without a ``Ref``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.config.schema import secret_resource_arn

KIND = "iam role"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
EXEC_POLICY_NAME = "mldeploy-execution"


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


def _create_role(spec: StackSpec, name: str, description: str) -> ApiCall:
    return ApiCall("iam", "create_role", {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(TRUST),
                                          "Description": description, "Tags": spec.tag_list(),
                                          "MaxSessionDuration": 3600})


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
            _create_role(spec, name, "mldeploy task execution role (ECR pull, logs)"), _put_exec_policy(spec)])]
    spec.check_owned("IAM role", name, tag_dict(role.get("Tags")))
    got = remote.get("iam", "get_role_policy", RoleName=name, PolicyName=EXEC_POLICY_NAME, missing=("NoSuchEntity",))
    current = got["PolicyDocument"] if got else None
    if isinstance(current, str):
        current = json.loads(current)
    if current == execution_policy(spec):
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, ["execution policy"], calls=[_put_exec_policy(spec)])]


def _attach(name: str, arn: str) -> ApiCall:
    return ApiCall("iam", "attach_role_policy", {"RoleName": name, "PolicyArn": arn})


def plan_task_role(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.task_role
    wanted = sorted(spec.config.aws.task_role_policy_arns)
    role = read_role(spec, remote, name)
    if role is not None:
        spec.check_owned("IAM role", name, tag_dict(role.get("Tags")))
    if not wanted:
        known["task_role_arn"] = None
        if role is None:
            return []
        return [Step(KIND, name, Action.delete, ["no task_role_policy_arns configured"],
                     calls=delete_role_calls(remote, name))]
    known["task_role_arn"] = role["Arn"] if role else role_arn(spec, name)
    if role is None:
        return [Step(KIND, name, Action.create, [f"task role with {', '.join(wanted)}"], calls=[
            _create_role(spec, name, "mldeploy task role (the model's own AWS access)"),
            *(_attach(name, arn) for arn in wanted)])]
    attached = remote.get("iam", "list_attached_role_policies", RoleName=name)["AttachedPolicies"]
    current = sorted(p["PolicyArn"] for p in attached)
    add, remove = sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))
    if not add and not remove:
        return [noop(KIND, name)]
    calls = [_attach(name, a) for a in add] + [
        ApiCall("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": r}) for r in remove]
    return [Step(KIND, name, Action.update, [f"attach {a}" for a in add] + [f"detach {r}" for r in remove],
                 calls=calls)]


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
