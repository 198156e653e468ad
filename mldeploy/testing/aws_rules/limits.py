"""The service model's maxima (botocore checks only the minima client-side), for every operation."""

from __future__ import annotations

from typing import Any

from mldeploy.testing.aws_rules.core import Call, reject

# The error code AWS's request validation returns for a model constraint, per service (query services answer
# "ValidationError", JSON ones the exception their model declares for bad parameters).
VALIDATION_CODE = {"elbv2": "ValidationError", "iam": "ValidationError", "sns": "InvalidParameter",
                   "cloudwatch": "ValidationError", "ec2": "InvalidParameterValue", "ecs": "InvalidParameterException",
                   "logs": "InvalidParameterException", "ecr": "InvalidParameterException",
                   "ssm": "ValidationException", "application-autoscaling": "ValidationException"}


def _code(call: Call) -> str:
    return VALIDATION_CODE.get(call.service, "ValidationException")


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def model_limits(call: Call) -> None:
    """Run on every request, after the operation's own rules."""
    # botocore validates only the *minimum* of each length/range client-side (botocore/validate.py); AWS also
    # enforces every "max" of the service model, e.g. iam CreateRoleRequest.RoleName max 64, Description max 1000,
    # ecs *.tags max 50, ecs Tag.key max 128 / Tag.value max 256, logs CreateLogGroupRequest.logGroupName max 512,
    # ssm PutParameterRequest.Description max 1024. AWS's message: "1 validation error detected: Value 'x' at
    # 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64".
    if call.model.input_shape is not None:
        _walk_limits(call, call.model.input_shape, call.params, "")


def _walk_limits(call: Call, shape: Any, value: Any, path: str) -> None:
    high = shape.metadata.get("max")
    kind = shape.type_name
    if high is not None:
        if kind in ("string", "list", "map") and hasattr(value, "__len__") and len(value) > high:
            shown = value if kind == "string" else f"[{len(value)} items]"
            reject(_code(call), f"1 validation error detected: Value '{shown}' at '{path}' failed to satisfy "
                                f"constraint: Member must have length less than or equal to {high}")
        if kind in ("integer", "long") and isinstance(value, int) and value > high:
            reject(_code(call), f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
                                f"constraint: Member must have value less than or equal to {high}")
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk_limits(call, member, value[name], f"{path}.{_camel(name)}" if path else _camel(name))
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value, 1):
            _walk_limits(call, shape.member, item, f"{path}.{i}.member")
    elif kind == "map" and isinstance(value, dict):
        for k, v in value.items():
            _walk_limits(call, shape.key, k, f"{path}.{k}.key")
            _walk_limits(call, shape.value, v, f"{path}.{k}.value")
