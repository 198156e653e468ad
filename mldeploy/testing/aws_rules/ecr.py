"""ECR rules: repository names."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule

_ECR_REPO = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


@rule("ecr", "CreateRepository")
def ecr_repository(call: Call) -> None:
    # botocore ecr CreateRepositoryRequest.repositoryName: min 2, max 256, pattern
    # [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*.
    name = str(call.params.get("repositoryName", ""))
    if not _ECR_REPO.fullmatch(name):
        reject("InvalidParameterException", f"Invalid parameter at 'repositoryName' failed to satisfy constraint: "
                                            f"'must satisfy regular expression '{_ECR_REPO.pattern}'' ({name!r})")
