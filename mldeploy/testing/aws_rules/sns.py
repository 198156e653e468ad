"""SNS rules: topic names."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule


@rule("sns", "CreateTopic")
def sns_topic(call: Call) -> None:
    # botocore sns CreateTopicInput.Name: "Topic names must be made up of only uppercase and lowercase ASCII letters,
    # numbers, underscores, and hyphens, and must be between 1 and 256 characters long. For a FIFO topic, the name
    # must end with the .fifo suffix."
    name = str(call.params.get("Name", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}(\.fifo)?", name) or len(name) > 256:
        reject("InvalidParameter", "Invalid parameter: Topic Name")
