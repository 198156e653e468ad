"""S3 bucket policies: validated as S3 validates them on PutBucketPolicy, and their ``aws:SecureTransport``
conditions evaluated by this layer, since moto cannot evaluate Conditions.

moto 5.2's ``put_bucket_policy``: "Conditions are not taken into account", and its object operations answer 403 to
any Deny statement whose Action and Resource match: a TLS-only Deny (``Bool aws:SecureTransport false``) would refuse
every request, over HTTPS too. So every statement with a Condition reaches moto neutralized (its Action replaced by
one no request has, the original kept beside it in ``MARKER``); GetBucketPolicy through this layer answers the
policy as it was put; and each S3 request to a bucket is checked here against the bucket's conditioned Deny
statements, with ``aws:SecureTransport`` true when the request's endpoint is https, or when
``MLDEPLOY_STRICT_AWS_TLS=1`` says that the (plain-http, local) endpoint stands in for AWS's TLS endpoints.
A denied request gets S3's answer: 403 AccessDenied. The state lives in moto (a moto reset clears it).

Not modelled: identity policies (moto runs without IAM enforcement here, so a conditioned Allow adds nothing),
principals other than ``*`` in conditioned statements, condition keys other than ``aws:SecureTransport`` (both are
refused with ``MldeployStrictLayerUnsupported`` so that a test cannot pass on a policy nobody evaluated), and the
bucket-owner root user's exemption for Get/Put/DeleteBucketPolicy (the layer treats the caller as an IAM identity,
as mldeploy's deploy role is).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from mldeploy.testing.aws_rules.core import Call, reject, rule
from mldeploy.testing.aws_rules.core import answer as on_answer
from mldeploy.testing.aws_rules.core import forward as on_forward

MARKER = "MldeployStrictAwsOriginal"
"""The key, in a statement as moto stores it, that keeps the statement's original Action / NotAction."""
_PLACEHOLDER = "mldeploy-strict-aws:EvaluatedByTheStrictLayer"
TLS_ENV = "MLDEPLOY_STRICT_AWS_TLS"
UNSUPPORTED = "MldeployStrictLayerUnsupported"

# IAM user guide, "IAM JSON policy elements: Version": "2012-10-17" (current) or "2008-10-17"; omitted, the
# version defaults to 2008-10-17. "IAM JSON policy element reference": a policy has Version, Id, Statement; a
# statement has Sid, Effect, Principal/NotPrincipal, Action/NotAction, Resource/NotResource, Condition.
_VERSIONS = ("2012-10-17", "2008-10-17")
_TOP = {"Version", "Id", "Statement"}
_STATEMENT = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
              "Condition"}
# IAM user guide, "IAM JSON policy elements: Condition operators" (each may end in "IfExists"; multivalued keys take
# a "ForAllValues:" / "ForAnyValue:" prefix).
_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
    "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
    "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null"}
# IAM user guide, "AWS global condition context keys" (keys are case-insensitive; the tag keys take a /suffix).
_GLOBAL_KEYS = {k.lower() for k in (
    "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
    "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:PrincipalAccount",
    "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
    "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:Referer",
    "aws:RequestedRegion", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths", "aws:SecureTransport",
    "aws:SourceAccount", "aws:SourceArn", "aws:SourceIdentity", "aws:SourceIp", "aws:SourceOrgID",
    "aws:SourceOrgPaths", "aws:SourceVpc", "aws:SourceVpcArn", "aws:SourceVpce", "aws:TagKeys", "aws:TokenIssueTime",
    "aws:UserAgent", "aws:userid", "aws:username", "aws:ViaAWSService", "aws:VpcSourceIp", "aws:VpceAccount",
    "aws:VpceOrgID", "aws:VpceOrgPaths", "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4",
    "aws:AssumedRoot")}
_TAG_KEYS = ("aws:principaltag/", "aws:requesttag/", "aws:resourcetag/")
_PRINCIPAL_KINDS = {"AWS", "Service", "Federated", "CanonicalUser"}

# Service Authorization Reference, "Actions defined by Amazon S3": the operations authorized as another action
# (the rest as s3:<Operation>), as mldeploy/aws/iam_policy.py grants them.
_ACTIONS = {"HeadObject": "GetObject", "HeadBucket": "ListBucket", "ListObjects": "ListBucket",
            "ListObjectsV2": "ListBucket", "ListObjectVersions": "ListBucketVersions",
            "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
            "UploadPartCopy": "PutObject", "CopyObject": "PutObject", "ListParts": "ListMultipartUploadParts",
            "ListMultipartUploads": "ListBucketMultipartUploads", "DeleteObjects": "DeleteObject",
            "PutBucketEncryption": "PutEncryptionConfiguration", "GetBucketEncryption": "GetEncryptionConfiguration",
            "DeleteBucketEncryption": "PutEncryptionConfiguration",
            "PutPublicAccessBlock": "PutBucketPublicAccessBlock", "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
            "DeletePublicAccessBlock": "PutBucketPublicAccessBlock", "DeleteBucketTagging": "PutBucketTagging",
            "GetObjectAttributes": "GetObject"}


def _malformed(message: str) -> None:
    # S3's answer to a policy it cannot accept: 400 MalformedPolicy (AWS's messages, as quoted in
    # aws-samples/aws-serverless-appsync-app#4 "Policy has invalid resource" and mirrored by versity/versitygw#647-#650:
    # "Invalid effect: hello", "Policy has invalid resource", "Invalid principal in policy", "Policy has invalid
    # action").
    reject("MalformedPolicy", message)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _partition(region: str | None) -> str:
    return "aws-cn" if (region or "").startswith("cn-") else "aws-us-gov" if (region or "").startswith("us-gov-") \
        else "aws"


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM matching: ``*`` any run of characters, ``?`` one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


# ----------------------------------------------------------------------------------------------- validation


def parse_policy(text: str, bucket: str, region: str | None) -> dict[str, Any]:
    """The policy document, or ``Rejected`` (MalformedPolicy) naming what S3 would refuse."""
    # botocore s3 PutBucketPolicyRequest.Policy: "The bucket policy as a JSON document."
    if not text.lstrip().startswith("{"):
        _malformed("Policies must be valid JSON and the first byte must be '{'")
    try:
        doc = json.loads(text)
    except ValueError:
        _malformed("Policies must be valid JSON and the first byte must be '{'")
    if unknown := sorted(set(doc) - _TOP):
        _malformed(f"Unknown field {unknown[0]}")
    if "Version" in doc and doc["Version"] not in _VERSIONS:
        _malformed(f"Invalid policy version {doc['Version']!r}: use 2012-10-17 or 2008-10-17")
    if "Statement" not in doc:
        _malformed("Missing required field Statement")
    statements = _listed(doc["Statement"])
    if not statements or not all(isinstance(s, dict) for s in statements):
        _malformed("Statement must be a statement object or a non-empty list of statement objects")
    bucket_arn = f"arn:{_partition(region)}:s3:::{bucket}"
    for s in statements:
        _check_statement(s, bucket_arn)
    return doc  # type: ignore[no-any-return]


def _check_statement(s: dict[str, Any], bucket_arn: str) -> None:
    if unknown := sorted(set(s) - _STATEMENT):
        _malformed(f"Unknown field {unknown[0]}")
    if s.get("Effect") not in ("Allow", "Deny"):
        _malformed(f"Invalid effect: {s.get('Effect')}")
    # S3 user guide, "Bucket policies for Amazon S3": a bucket policy (a resource-based policy) must name the
    # Principal the statement applies to.
    if ("Principal" in s) == ("NotPrincipal" in s):
        _malformed("Missing required field Principal" if "Principal" not in s else
                   "A statement cannot have both Principal and NotPrincipal")
    principal = s.get("Principal", s.get("NotPrincipal"))
    if principal != "*" and not (isinstance(principal, dict) and principal and set(principal) <= _PRINCIPAL_KINDS):
        _malformed("Invalid principal in policy")
    for yes, no, what in (("Action", "NotAction", "action"), ("Resource", "NotResource", "resource")):
        if (yes in s) == (no in s):
            _malformed(f"Missing required field {yes}" if yes not in s else f"A statement cannot have both {yes} "
                                                                             f"and {no}")
        values = _listed(s.get(yes, s.get(no)))
        if not values or not all(isinstance(v, str) for v in values):
            _malformed(f"Policy has invalid {what}")
        for v in values:
            if what == "action" and not (v == "*" or re.fullmatch(r"s3:[A-Za-z*?]+", v)):
                _malformed("Policy has invalid action")
            # a bucket policy's resources are the bucket or its objects (arn:aws:s3:::NAME, arn:aws:s3:::NAME/KEY)
            if what == "resource" and not (v == bucket_arn or v.startswith(bucket_arn + "/")
                                           or _wildcard(v, bucket_arn) or _wildcard(v, bucket_arn + "/x")):
                _malformed("Policy has invalid resource")
    if "Condition" in s:
        _check_condition(s["Condition"])


def _base_operator(op: str) -> str:
    for prefix in ("ForAllValues:", "ForAnyValue:"):
        op = op.removeprefix(prefix)
    return op.removesuffix("IfExists") if op != "IfExists" else op


def _check_condition(condition: Any) -> None:
    if not isinstance(condition, dict) or not all(isinstance(v, dict) and v for v in condition.values()):
        _malformed("Condition must map each condition operator to an object of condition keys")
    for op, keys in condition.items():
        if _base_operator(op) not in _OPERATORS:
            _malformed(f"Invalid Condition type : {op}")
        for key, value in keys.items():
            low = key.lower()
            if ":" not in key or (low.startswith("aws:") and low not in _GLOBAL_KEYS
                                  and not low.startswith(_TAG_KEYS)):
                _malformed(f"Policy has an invalid condition key: {key}")
            if not all(isinstance(v, str | int | float | bool) for v in _listed(value)):
                _malformed(f"Invalid value for condition key {key}")


# ----------------------------------------------------------------------------------- what moto stores / answers


def _evaluable(s: dict[str, Any]) -> None:
    """Refuse (as the layer, not as AWS) a conditioned statement this layer could not evaluate truthfully."""
    if s.get("Principal") not in ("*", {"AWS": "*"}):
        reject(UNSUPPORTED, f"the strict AWS layer evaluates conditioned bucket-policy statements for Principal '*' "
                            f"only; got {s.get('Principal', s.get('NotPrincipal'))!r}")
    for op, keys in s["Condition"].items():
        for key in keys:
            if _base_operator(op) != "Bool" or op.startswith("For") or key.lower() != "aws:securetransport":
                reject(UNSUPPORTED, f"the strict AWS layer evaluates only Bool aws:SecureTransport conditions; "
                                    f"got {op} {key}")


def for_moto(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as moto may store it: each conditioned statement's Action set to one no request has (the original
    kept under ``MARKER``), so that moto, which ignores Conditions, does not apply it unconditionally."""
    out = dict(doc)
    statements = []
    for s in _listed(doc["Statement"]):
        if "Condition" in s:
            original = {k: s[k] for k in ("Action", "NotAction") if k in s}
            s = {**{k: v for k, v in s.items() if k not in original}, "Action": _PLACEHOLDER, MARKER: original}
        statements.append(s)
    out["Statement"] = statements if isinstance(doc["Statement"], list) else statements[0]
    return out


def as_put(stored: dict[str, Any]) -> dict[str, Any]:
    """Invert ``for_moto``: the policy as the caller put it."""
    out = dict(stored)
    statements = []
    for s in _listed(stored.get("Statement", [])):
        if isinstance(s, dict) and MARKER in s:
            s = {**{k: v for k, v in s.items() if k not in ("Action", MARKER)}, **s[MARKER]}
        statements.append(s)
    out["Statement"] = statements if isinstance(stored.get("Statement"), list) else statements[0]
    return out


@rule("s3", "PutBucketPolicy")
def bucket_policy(call: Call) -> None:
    doc = parse_policy(str(call.params.get("Policy", "")), str(call.params.get("Bucket", "")), call.region)
    for s in _listed(doc["Statement"]):
        if "Condition" in s:
            _evaluable(s)


@on_forward("s3", "PutBucketPolicy")
def store_policy(call: Call, request: dict[str, Any]) -> None:
    """What moto receives: the policy with its conditioned statements neutralized (``for_moto``)."""
    doc = json.loads(str(call.params["Policy"]))
    request["body"] = json.dumps(for_moto(doc)).encode()


@on_answer("s3", "GetBucketPolicy")
def read_policy(call: Call, parsed: dict[str, Any]) -> None:
    """What the caller reads: the policy as it was put (``as_put``)."""
    try:
        stored = json.loads(parsed.get("Policy") or "")
    except ValueError:
        return
    if isinstance(stored, dict) and MARKER in json.dumps(stored):
        parsed["Policy"] = json.dumps(as_put(stored))


# ---------------------------------------------------------------------------------------------- evaluation


def secure_transport(call: Call) -> bool:
    """``aws:SecureTransport`` of the request (IAM user guide, global condition keys: "whether the request was sent
    using TLS"): its endpoint is https (botocore's default endpoints are), or ``MLDEPLOY_STRICT_AWS_TLS=1`` says the
    plain-http test endpoint stands in for AWS's TLS endpoint."""
    return (call.endpoint or "https://").startswith("https://") or os.environ.get(TLS_ENV) == "1"


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    # IAM user guide, "Condition element": all operators and all keys must match (AND); any of a key's values may
    # match (OR). Bool compares "true"/"false" (case-insensitive).
    for op, keys in condition.items():
        for key, wanted in keys.items():
            got = context.get(key.lower())
            if got is None:
                if not op.endswith("IfExists"):
                    return False
                continue
            if got not in {str(v).lower() for v in _listed(wanted)}:
                return False
    return True


def denied(doc: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> str | None:
    """The Sid (or "") of the first conditioned Deny statement of ``doc`` that applies, else None."""
    for s in _listed(doc.get("Statement", [])):
        if s.get("Effect") != "Deny" or "Condition" not in s:
            continue
        if "Action" in s and not any(_wildcard(a, action, True) for a in _listed(s["Action"])):
            continue
        if "NotAction" in s and any(_wildcard(a, action, True) for a in _listed(s["NotAction"])):
            continue
        if "Resource" in s and not any(_wildcard(r, resource) for r in _listed(s["Resource"])):
            continue
        if "NotResource" in s and any(_wildcard(r, resource) for r in _listed(s["NotResource"])):
            continue
        if _condition_holds(s["Condition"], context):
            return str(s.get("Sid", ""))
    return None


@rule("s3", "*")
def bucket_policy_denies(call: Call) -> None:
    # S3 user guide, "Security best practices for Amazon S3" / "Bucket policy examples": a Deny with
    # {"Bool": {"aws:SecureTransport": "false"}} refuses every request sent over plain HTTP; S3 answers 403
    # AccessDenied ("Access Denied"). An explicit Deny wins over any Allow (IAM user guide, "Policy evaluation
    # logic"). Only the statements moto cannot evaluate (conditioned ones, see for_moto) are evaluated here.
    bucket = call.params.get("Bucket")
    if not bucket or call.op in ("CreateBucket", "ListBuckets"):
        return
    from botocore.exceptions import ClientError

    try:
        stored = call.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError:
        return  # no such bucket / no policy: nothing for this layer to evaluate
    doc = as_put(json.loads(stored))
    arn = f"arn:{_partition(call.region)}:s3:::{bucket}"
    has_key = "Key" in (call.model.input_shape.members if call.model.input_shape else {})
    resource = f"{arn}/{call.params.get('Key', '')}" if has_key or call.op == "DeleteObjects" else arn
    action = "s3:" + _ACTIONS.get(call.op, call.op)
    context = {"aws:securetransport": "true" if secure_transport(call) else "false"}
    if (sid := denied(doc, action, resource, context)) is not None:
        reject("AccessDenied", f"Access Denied ({action} on {resource}: explicit deny in the bucket policy"
                               f"{' statement ' + sid if sid else ''}; aws:SecureTransport is "
                               f"{context['aws:securetransport']})", status=403)
