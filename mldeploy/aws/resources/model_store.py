"""The model bucket (``model.store: s3``): one per account and region, shared by every app and environment.

``mldeploy-<account>-<region>`` (``bucket_name``), created with versioning, default encryption (SSE-S3), a
public access block, a bucket policy denying requests without TLS, and mldeploy's tags. Each app/env writes
under ``<app>/<env>/`` only (``mldeploy.aws.model_upload``); every task role reads its own versions' prefixes
only (``task_role_statement``).

Deletion (decided): the bucket belongs to no single app, so ``down`` deletes *this* app/env's objects (every
object version and delete marker under ``<app>/<env>/``: in a versioned bucket a plain delete only adds a
marker and keeps paying for the bytes) and then the bucket only when nothing else is left in it; while another
app or environment still has objects there, the bucket is kept and ``down`` says so. Should another app upload
between the plan and the delete, S3 answers ``BucketNotEmpty`` and the bucket stays (tolerated as "kept").

The name is predictable, so someone else could create it first: every call passes ``ExpectedBucketOwner``
(S3 answers 403 for a bucket of another account; "Verifying bucket ownership with bucket owner condition", S3
user guide) and a bucket of ours without mldeploy's purpose tag is refused.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict
from mldeploy.errors import AwsError, ConfigError

KIND = "s3 bucket"
PURPOSE_TAG = ("mldeploy:purpose", "model-store")
DELETE_BATCH = 1000
"""S3 DeleteObjects: "The request can contain a list of up to 1,000 keys" (botocore s3 service-2.json)."""
MAX_GRANTED_PREFIXES = 40
"""Version prefixes a task role may read (the newest): the stable, a canary and the rollback targets. Each ARN
is ~90 characters; IAM's inline policies of a role total at most 10,240 characters (IAM user guide, "IAM and
AWS STS quotas": "Role policy size")."""
DEFAULT_EPHEMERAL_GIB = 20
"""Fargate's task storage without ``ephemeralStorage`` (ECS developer guide, "Fargate task ephemeral storage":
"20 GiB of ephemeral storage by default")."""
MIN_EPHEMERAL_GIB, MAX_EPHEMERAL_GIB = 21, 200
"""botocore ecs EphemeralStorage.sizeInGiB: "The minimum supported value is 21 GiB and the maximum supported
value is 200 GiB"."""
IMAGE_RESERVE_GIB = 5
"""Room kept for the image layers, which Fargate also unpacks into the task's ephemeral storage, and /tmp use."""

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def check_bucket_name(name: str) -> str:
    """S3 general purpose bucket naming rules (S3 user guide, "General purpose bucket naming rules"): 3–63
    characters; lowercase letters, numbers, dots and hyphens; begin and end with a letter or number; no two
    adjacent periods; not an IP address; not starting with ``xn--``, ``sthree-`` or ``amzn-s3-demo-``; not
    ending with ``-s3alias``, ``--ol-s3``, ``.mrap`` or ``--x-s3``. Returns ``name`` or raises ``ValueError``."""
    problems = []
    if not _NAME.fullmatch(name):
        problems.append("3–63 lowercase letters, numbers, dots and hyphens, beginning and ending with a letter or "
                        "number")
    if ".." in name:
        problems.append("no two adjacent periods")
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        problems.append("not formatted as an IP address")
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        problems.append("no prefix xn--, sthree- or amzn-s3-demo-")
    if name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3")):
        problems.append("no suffix -s3alias, --ol-s3, .mrap or --x-s3")
    if problems:
        raise ValueError(f"S3 bucket name {name!r} breaks the naming rules: {'; '.join(problems)}")
    return name


def bucket_name(account: str, region: str) -> str:
    """``mldeploy-<account>-<region>``: 9 + 12 + 1 + at most ~15 characters, within S3's 63."""
    return check_bucket_name(f"mldeploy-{account}-{region}")


def enabled(spec: StackSpec) -> bool:
    return spec.config.model.store == "s3"


def bucket_arn(spec: StackSpec, name: str | None = None) -> str:
    return f"arn:{spec.partition}:s3:::{name or bucket_name(spec.account, spec.region)}"


# ------------------------------------------------------------------------------------------ desired state

PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}
VERSIONING = "Enabled"
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}
"""SSE-S3: encrypted at rest with no KMS key to grant the task role (an SSE-KMS key would need kms:Decrypt)."""


def tags(spec: StackSpec) -> dict[str, str]:
    """Not the app/env tags: the bucket is shared (``down`` of one app must not list it as its leftover)."""
    return {"mldeploy:managed-by": "mldeploy", PURPOSE_TAG[0]: PURPOSE_TAG[1]}


def bucket_policy(spec: StackSpec, name: str) -> dict[str, Any]:
    """Deny every request not sent over TLS (S3 user guide, "Security best practices for Amazon S3": enforce
    encryption of data in transit with the ``aws:SecureTransport`` condition)."""
    arn = bucket_arn(spec, name)
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def _calls_create(spec: StackSpec, name: str) -> list[ApiCall]:
    owner = spec.account
    create: dict[str, Any] = {"Bucket": name}
    if spec.region != "us-east-1":
        # botocore s3 CreateBucketConfiguration.LocationConstraint: "If you don't specify a Region, the bucket is
        # created in the US East (N. Virginia) Region (us-east-1)"; us-east-1 itself must not be named
        create["CreateBucketConfiguration"] = {"LocationConstraint": spec.region}
    return [ApiCall("s3", "create_bucket", create),
            _pab(name, owner), _versioning(name, owner), _encryption(name, owner), _tagging(spec, name),
            _policy(spec, name)]


def _pab(name: str, owner: str) -> ApiCall:
    return ApiCall("s3", "put_public_access_block", {"Bucket": name, "ExpectedBucketOwner": owner,
                                                     "PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK})


def _versioning(name: str, owner: str) -> ApiCall:
    return ApiCall("s3", "put_bucket_versioning", {"Bucket": name, "ExpectedBucketOwner": owner,
                                                   "VersioningConfiguration": {"Status": VERSIONING}})


def _encryption(name: str, owner: str) -> ApiCall:
    return ApiCall("s3", "put_bucket_encryption", {"Bucket": name, "ExpectedBucketOwner": owner,
                                                   "ServerSideEncryptionConfiguration": ENCRYPTION})


def _tagging(spec: StackSpec, name: str) -> ApiCall:
    return ApiCall("s3", "put_bucket_tagging", {"Bucket": name, "ExpectedBucketOwner": spec.account, "Tagging": {
        "TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags(spec).items())]}})


def _policy(spec: StackSpec, name: str) -> ApiCall:
    return ApiCall("s3", "put_bucket_policy", {"Bucket": name, "ExpectedBucketOwner": spec.account,
                                               "Policy": json.dumps(bucket_policy(spec, name))})


# ------------------------------------------------------------------------------------------------ reading


def exists(spec: StackSpec, remote: Remote, name: str) -> bool:
    try:
        found = remote.get("s3", "head_bucket", Bucket=name, ExpectedBucketOwner=spec.account,
                           missing=("404", "NoSuchBucket", "NotFound"))
    except AwsError as e:
        if "(403)" in str(e) or "Forbidden" in str(e):
            # HeadBucket has no error body: S3 answers 403 alike for a bucket of another account (the
            # ExpectedBucketOwner check) and for a caller refused s3:ListBucket by its policy or the bucket's (botocore
            # s3 HeadBucket: "If the bucket doesn't exist or you don't have permission to access it, the HEAD request
            # returns a generic 400 Bad Request, 403 Forbidden, or 404 Not Found … A message body isn't included")
            raise AwsError(f"S3 bucket {name!r}: HeadBucket answered 403 Forbidden: either the bucket belongs to "
                           f"another account than {spec.account}, or this identity may not read it (s3:ListBucket "
                           f"on arn:aws:s3:::{name}, refused by its IAM policy or by the bucket's policy)",
                           hint="compare the caller's policy with `mldeploy iam-policy`; if the bucket is someone "
                                "else's (S3 bucket names are global), use model.store: image or deploy from another "
                                "account/region") from None
        raise
    return found is not None


def _owned(spec: StackSpec, remote: Remote, name: str) -> dict[str, str]:
    got = remote.get("s3", "get_bucket_tagging", Bucket=name, ExpectedBucketOwner=spec.account,
                     missing=("NoSuchTagSet", "NoSuchTagSetError"))
    return tag_dict((got or {}).get("TagSet"))


def _policy_doc(remote: Remote, spec: StackSpec, name: str) -> Any:
    got = remote.get("s3", "get_bucket_policy", Bucket=name, ExpectedBucketOwner=spec.account,
                     missing=("NoSuchBucketPolicy",))
    return json.loads(got["Policy"]) if got else None


def drift(spec: StackSpec, remote: Remote, name: str) -> tuple[list[str], list[ApiCall]]:
    """What differs from the desired configuration, and the calls that fix it."""
    owner = spec.account
    changes: list[str] = []
    calls: list[ApiCall] = []
    pab = remote.get("s3", "get_public_access_block", Bucket=name, ExpectedBucketOwner=owner,
                     missing=("NoSuchPublicAccessBlockConfiguration",))
    if (pab or {}).get("PublicAccessBlockConfiguration") != PUBLIC_ACCESS_BLOCK:
        changes.append("public access block")
        calls.append(_pab(name, owner))
    ver = remote.get("s3", "get_bucket_versioning", Bucket=name, ExpectedBucketOwner=owner)
    if (ver or {}).get("Status") != VERSIONING:
        changes.append(f"versioning {(ver or {}).get('Status') or 'off'} → {VERSIONING}")
        calls.append(_versioning(name, owner))
    enc = remote.get("s3", "get_bucket_encryption", Bucket=name, ExpectedBucketOwner=owner,
                     missing=("ServerSideEncryptionConfigurationNotFoundError",))
    rules = ((enc or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    if not any((r.get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules):
        changes.append("default encryption")
        calls.append(_encryption(name, owner))
    if _policy_doc(remote, spec, name) != bucket_policy(spec, name):
        changes.append("bucket policy (deny non-TLS)")
        calls.append(_policy(spec, name))
    return changes, calls


# ------------------------------------------------------------------------------------------------ planning


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The bucket (only with ``model.store: s3``) and the artifact's location in ``known["model_location"]``."""
    if not enabled(spec):
        return []
    name = bucket_name(spec.account, spec.region)
    known["model_bucket"] = name
    if spec.role == "stable" and "model_location" not in known:
        known["model_location"] = local_location(spec)
    if not exists(spec, remote, name):
        return [Step(KIND, name, Action.create, ["versioned", "encrypted (SSE-S3)", "public access blocked",
                                                 "TLS only"], note="shared by this account's apps in "
                                                                   f"{spec.region}", calls=_calls_create(spec, name))]
    have = _owned(spec, remote, name)
    if have.get(PURPOSE_TAG[0]) != PURPOSE_TAG[1]:
        raise AwsError(f"S3 bucket {name!r} exists but is not mldeploy's model store (no {PURPOSE_TAG[0]}="
                       f"{PURPOSE_TAG[1]} tag)", hint="rename or tag that bucket, or use model.store: image")
    changes, calls = drift(spec, remote, name)
    if any(have.get(k) != v for k, v in tags(spec).items()):
        changes.append("tags")
        calls.append(_tagging(spec, name))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def local_location(spec: StackSpec) -> Any:
    """The packaged artifact's ``ModelLocation`` (``mldeploy package`` output), or ``Ref("model_location")``
    when nothing is packaged yet (``up`` packages and uploads before it plans)."""
    from mldeploy.aws.model_upload import location
    from mldeploy.workspace import Workspace

    folder = Workspace.of(spec.project).artifact_dir
    if not (folder / "model.json").is_file():
        return Ref("model_location")
    return location(spec.project, spec.account, spec.region, folder)[0]


def ephemeral_gib(total_bytes: int) -> int | None:
    """``ephemeralStorage.sizeInGiB`` for an artifact of ``total_bytes`` (None: the default 20 GiB fits)."""
    need = math.ceil(total_bytes / 2**30 + IMAGE_RESERVE_GIB)
    if need <= DEFAULT_EPHEMERAL_GIB:
        return None
    if need > MAX_EPHEMERAL_GIB:
        raise ConfigError(f"model.store: s3: the artifact is {total_bytes / 2**30:.1f} GiB; with the image it needs "
                          f"{need} GiB of task storage, more than Fargate's {MAX_EPHEMERAL_GIB} GiB")
    return max(MIN_EPHEMERAL_GIB, need)


def task_role_statement(spec: StackSpec, prefixes: list[str]) -> dict[str, Any]:
    """``s3:GetObject`` on exactly these version prefixes of the bucket (no ListBucket, no other app's keys)."""
    arn = bucket_arn(spec)
    return {"Sid": "ModelArtifacts", "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": [f"{arn}/{p}*" for p in prefixes]}


def granted_prefixes(current: dict[str, Any] | None, spec: StackSpec) -> list[str]:
    """The prefixes an existing task-role policy grants (oldest first)."""
    arn = bucket_arn(spec) + "/"
    out: list[str] = []
    for st in (current or {}).get("Statement") or []:
        res = st.get("Resource") or []
        for r in [res] if isinstance(res, str) else res:
            if isinstance(r, str) and r.startswith(arn) and r.endswith("*"):
                out.append(r[len(arn):-1])
    return out


def merged_prefixes(existing: list[str], new: str) -> list[str]:
    """Earlier versions stay readable (rollback, a running canary), the newest last, at most the newest
    ``MAX_GRANTED_PREFIXES``."""
    out = [p for p in existing if p != new] + [new]
    return out[-MAX_GRANTED_PREFIXES:]


# ------------------------------------------------------------------------------------------------ deleting


ObjectIds = list[dict[str, str]]


def _versions(remote: Remote, name: str, prefix: str | None = None) -> tuple[ObjectIds, ObjectIds]:
    """(object versions, delete markers) under ``prefix``, as DeleteObjects identifiers."""
    params: dict[str, Any] = {"Bucket": name}
    if prefix is not None:
        params["Prefix"] = prefix
    ids = [[{"Key": i["Key"], "VersionId": i["VersionId"]} for i in remote.pages("s3", "list_object_versions", key,
                                                                                 **params)]
           for key in ("Versions", "DeleteMarkers")]
    return ids[0], ids[1]


def _delete_objects(spec: StackSpec, name: str, where: str, ids: list[dict[str, str]], what: str) -> Step:
    return Step("s3 objects", where, Action.delete, [f"{len(ids)} {what}"], calls=[
        ApiCall("s3", "delete_objects", {"Bucket": name, "ExpectedBucketOwner": spec.account,
                                         "Delete": {"Objects": ids[i:i + DELETE_BATCH], "Quiet": True}},
                missing=("NoSuchBucket",)) for i in range(0, len(ids), DELETE_BATCH)])


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """This app/env's objects (every version and delete marker), then the bucket once no other app's objects
    remain in it (other apps' leftover delete markers hold no data: removed with the bucket)."""
    if not enabled(spec):
        return []
    from mldeploy.aws.model_upload import env_prefix

    name = bucket_name(spec.account, spec.region)
    if not exists(spec, remote, name) or _owned(spec, remote, name).get(PURPOSE_TAG[0]) != PURPOSE_TAG[1]:
        return []
    prefix = env_prefix(spec.names.app, spec.names.env)
    versions, markers = _versions(remote, name, prefix)
    steps = [_delete_objects(spec, name, f"s3://{name}/{prefix}", versions + markers, "object versions")] \
        if versions or markers else []
    all_versions, all_markers = _versions(remote, name)
    others = [v for v in all_versions if not v["Key"].startswith(prefix)]
    if others:
        apps = sorted({"/".join(v["Key"].split("/")[:2]) for v in others})
        steps.append(Step(KIND, name, Action.noop, note=f"kept: holds the models of {', '.join(apps[:5])}"
                          + (f" and {len(apps) - 5} more" if len(apps) > 5 else "")))
        return steps
    stray = [m for m in all_markers if not m["Key"].startswith(prefix)]
    if stray:
        steps.append(_delete_objects(spec, name, f"s3://{name}/", stray, "delete markers of removed models"))
    return [*steps, Step(KIND, name, Action.delete, ["empty: no other app's models"], calls=[
        ApiCall("s3", "delete_bucket", {"Bucket": name, "ExpectedBucketOwner": spec.account},
                missing=("NoSuchBucket", "BucketNotEmpty"))])]


def task_role_policy(spec: StackSpec, have: dict[str, Any] | None, loc: Any) -> Any:
    """The task role's inline policy: ``s3:GetObject`` on this version's prefix plus the earlier versions' it
    already granted (rollback targets, a canary's); None without ``model.store: s3``. ``loc`` is the
    ``ModelLocation`` (a ``Ref`` while the artifact is not packaged: the policy is then known after upload)."""
    if not enabled(spec):
        return None
    from mldeploy.aws.model_upload import ModelLocation

    if not isinstance(loc, ModelLocation):
        return have or Fn("json", ({"Version": "2012-10-17", "Statement": [
            {"Sid": "ModelArtifacts", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [loc]}]},))
    prefixes = merged_prefixes(granted_prefixes(have, spec), loc.prefix)
    return {"Version": "2012-10-17", "Statement": [task_role_statement(spec, prefixes)]}


def environment(spec: StackSpec, known: Known) -> dict[str, Any]:
    """The task's ``MLDEPLOY_MODEL_S3_*`` variables (``runtime.model_fetch``); empty with ``model.store: image``."""
    if not enabled(spec):
        return {}
    from mldeploy.aws.model_upload import ModelLocation

    loc = known.get("model_location")
    if isinstance(loc, ModelLocation):
        return loc.environment()
    return {"MLDEPLOY_MODEL_S3_PREFIX": loc or Ref("model_location")}


def ephemeral_storage_gib(spec: StackSpec, known: Known) -> int | None:
    from mldeploy.aws.model_upload import ModelLocation

    loc = known.get("model_location")
    if not enabled(spec) or not isinstance(loc, ModelLocation) or spec.config.aws.compute != "fargate":
        return None  # on EC2 the task's storage is the instance's volume (ephemeralStorage is Fargate's setting)
    return ephemeral_gib(loc.total_bytes)


def plan_grant(spec: StackSpec, remote: Remote, known: Known, key: str) -> list[Step]:
    """A canary's version: its packaged artifact's location in ``known[key]`` and the task role's policy
    extended to its prefix (before its tasks start); nothing with ``model.store: image``."""
    if not enabled(spec):
        return []
    from mldeploy.aws.resources import iam

    known[key] = loc = local_location(spec)
    steps = iam.plan_task_role(spec.as_role("stable"), remote, {"model_location": loc})
    return [s for s in steps if s.action is not Action.noop]
