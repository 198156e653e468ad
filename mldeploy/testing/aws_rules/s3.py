"""S3 rules: bucket names, CreateBucket location constraints."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, reject, rule


@rule("s3", "CreateBucket")
def s3_bucket_name(call: Call) -> None:
    # S3 user guide, "General purpose bucket naming rules" (linked from botocore s3 CreateBucketRequest.Bucket):
    # 3–63 characters; lowercase letters, numbers, dots and hyphens; begin and end with a letter or number; no two
    # adjacent periods; not an IP address; no prefix xn--, sthree-, amzn-s3-demo-; no suffix -s3alias, --ol-s3,
    # .mrap, --x-s3. AWS answers "InvalidBucketName: The specified bucket is not valid."
    name = str(call.params.get("Bucket", ""))
    if (not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) or ".." in name
            or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name) or name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
            or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))):
        reject("InvalidBucketName", f"The specified bucket is not valid. ({name!r})")


@rule("s3", "CreateBucket")
def s3_location_constraint(call: Call) -> None:
    # botocore s3 CreateBucketConfiguration.LocationConstraint: "If you don't specify a Region, the bucket is created
    # in the US East (N. Virginia) Region (us-east-1) by default". AWS's answers, quoted in velero-io/velero#284 and
    # aws/aws-parallelcluster#1190: another region's endpoint without it, "IllegalLocationConstraintException: The
    # unspecified location constraint is incompatible for the region specific endpoint this request was sent to";
    # naming us-east-1, "InvalidLocationConstraint: The specified location-constraint is not valid".
    wanted = ((call.params.get("CreateBucketConfiguration") or {}).get("LocationConstraint")) or None
    region = call.region or "us-east-1"
    if wanted == "us-east-1":
        reject("InvalidLocationConstraint", "The specified location-constraint is not valid")
    if (wanted or "us-east-1") != region:
        reject("IllegalLocationConstraintException", f"The {wanted or 'unspecified'} location constraint is "
                                                     f"incompatible for the region specific endpoint this request "
                                                     f"was sent to ({region}).")
