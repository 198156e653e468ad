"""CloudWatch Logs rules: log group names, retention values."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule

_LOG_GROUP = re.compile(r"[\.\-_/#A-Za-z0-9]+")
_RETENTION = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}


@rule("logs", "CreateLogGroup", "PutRetentionPolicy")
def log_group(call: Call) -> None:
    # botocore logs CreateLogGroupRequest.logGroupName: min 1, max 512, pattern [\.\-_/#A-Za-z0-9]+;
    # PutRetentionPolicyRequest.retentionInDays: "Possible values are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180,
    # 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, and 3653."
    name = call.params.get("logGroupName")
    if name is not None and not _LOG_GROUP.fullmatch(name):
        reject("InvalidParameterException", f"1 validation error detected: Value '{name}' at 'logGroupName' failed "
                                            r"to satisfy constraint: Member must satisfy regular expression pattern: "
                                            r"[\.\-_/#A-Za-z0-9]+")
    days = call.params.get("retentionInDays")
    if days is not None and int(days) not in _RETENTION:
        reject("InvalidParameterException", f"1 validation error detected: Value '{days}' at 'retentionInDays' "
                                            "failed to satisfy constraint: Member must satisfy enum value set")
