"""SSM Parameter Store rules: parameter names, hierarchy depth, value size per tier."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule

_SSM_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")


@rule("ssm", "PutParameter")
def ssm_parameter(call: Call) -> None:
    # botocore ssm PutParameterRequest.Name: "can't be prefixed with "aws" or "ssm" (case-insensitive)", "can include
    # only the following symbols and letters: a-zA-Z0-9_.-" plus "/" for hierarchies, "can't contain spaces",
    # "Parameter hierarchies are limited to a maximum depth of fifteen levels". PutParameterRequest.Value / Tier:
    # "Standard parameters have a value limit of 4 KB. Advanced parameters have a value limit of 8 KB."
    p = call.params
    name, value = str(p.get("Name", "")), str(p.get("Value", ""))
    if not _SSM_NAME.fullmatch(name):
        reject("ValidationException", f"Parameter name {name!r}: only a-zA-Z0-9_.- and / are allowed")
    if name.lstrip("/").lower().startswith(("aws", "ssm")):
        reject("ValidationException", f"Parameter name {name!r}: can't be prefixed with \"aws\" or \"ssm\" "
                                      "(case-insensitive)")
    if name.startswith("/") and name.count("/") > 15:
        reject("HierarchyLevelLimitExceededException", "Parameter hierarchies are limited to a maximum depth of "
                                                       f"fifteen levels: {name!r}")
    limit = 8192 if p.get("Tier") == "Advanced" else 4096
    if len(value.encode()) > limit:
        reject("ValidationException", f"1 validation error detected: Value at 'value' failed to satisfy constraint: "
                                      f"Member must have length less than or equal to {limit}")
