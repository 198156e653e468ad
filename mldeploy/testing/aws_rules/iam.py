"""IAM rules: role and policy names, role descriptions."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule

_IAM_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)


@rule("iam", "CreateRole", "PutRolePolicy", "AttachRolePolicy", "TagRole", "UpdateRole")
def iam_names(call: Call) -> None:
    # botocore iam CreateRoleRequest.RoleName (max 64) and PutRolePolicyRequest.PolicyName (max 128):
    # pattern [\w+=,.@-]+ "upper and lowercase alphanumeric characters with no spaces ... _+=,.@-".
    # CreateRoleRequest.Description: max 1000, pattern [\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*.
    for member, field in (("RoleName", "roleName"), ("PolicyName", "policyName")):
        value = call.params.get(member)
        if value is not None and not _IAM_NAME.fullmatch(value):
            reject("ValidationError", f"1 validation error detected: Value '{value}' at '{field}' failed to "
                                      "satisfy constraint: Member must satisfy regular expression pattern: "
                                      r"[\w+=,.@-]+")
    desc = call.params.get("Description")
    if desc is not None and not re.fullmatch(r"[\t\n\r\u0020-\u007E\u00A1-\u00FF]*", desc):
        reject("ValidationError", f"1 validation error detected: Value '{desc}' at 'description' failed to satisfy "
                                  "constraint: Member must satisfy regular expression pattern")
