"""EC2 rules: security groups, launch templates (aws.compute: ec2)."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule

_SG_TEXT = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")


@rule("ec2", "CreateSecurityGroup")
def security_group(call: Call) -> None:
    # botocore ec2 CreateSecurityGroupRequest.GroupName: "Up to 255 characters in length. Can't start with sg-.
    # Valid characters: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"; .Description: "Up to 255 characters in
    # length" with the same characters. EC2 tagging guide ("Tag restrictions"): "Maximum number of tags per
    # resource – 50".
    p = call.params
    name, desc = str(p.get("GroupName", "")), str(p.get("Description", ""))
    if name.lower().startswith("sg-"):
        reject("InvalidParameterValue", f"Value ({name}) for parameter GroupName is invalid. Group names may not "
                                        "be in the format sg-*.")
    for field, value in (("GroupName", name), ("GroupDescription", desc)):
        if not _SG_TEXT.fullmatch(value):
            reject("InvalidParameterValue", f"Value ({value}) for parameter {field} is invalid: up to 255 characters "
                                            "of a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*")
    for spec in p.get("TagSpecifications") or []:
        if len(spec.get("Tags") or []) > 50:
            reject("TagLimitExceeded", "The maximum number of tags per resource is 50")


_LAUNCH_TEMPLATE_NAME = re.compile(r"[a-zA-Z0-9().\-/_]{3,128}")


@rule("ec2", "CreateLaunchTemplate", "CreateLaunchTemplateVersion")
def launch_template(call: Call) -> None:
    # botocore ec2 LaunchTemplateName: min 3, max 128, pattern [a-zA-Z0-9\(\)\.\-/_]+; RequestLaunchTemplateData
    # .UserData: "The user data must be base64-encoded" and "limited to 16 KB" (EC2 user guide, "Run commands
    # when you launch an EC2 instance with user data input").
    import base64
    import binascii

    p = call.params
    name = p.get("LaunchTemplateName")
    if name is not None and not _LAUNCH_TEMPLATE_NAME.fullmatch(str(name)):
        reject("InvalidLaunchTemplateName.MalformedException",
               f"A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and "
               f"the following characters: - ( ) . / _; got {name!r}")
    data = p.get("LaunchTemplateData") or {}
    if "UserData" in data:
        try:
            raw = base64.b64decode(str(data["UserData"]), validate=True)
        except binascii.Error:
            reject("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
        if len(raw) > 16 * 1024:
            reject("InvalidParameterValue", "User data is limited to 16384 bytes")
