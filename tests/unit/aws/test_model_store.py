"""``model.store: s3`` as plans (data): the bucket family, the task role's prefix-only read grant, the task
definition's environment and ephemeral storage, ``down``'s keep-or-delete decision, and the canary's copy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.model_upload import ModelLocation, prefix_for
from mldeploy.aws.resources import iam, model_store, task_definition
from mldeploy.errors import AwsError, ConfigError
from tests.unit.aws.test_plan_service import known_existing
from tests.unit.fakes import ACCOUNT, BASE_CONFIG, FakeRemote, owned_tags, project, spec

S3 = BASE_CONFIG + "  store: s3\n"
BUCKET = f"mldeploy-{ACCOUNT}-us-east-1"
OWNER = {"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT}
LOC = ModelLocation(BUCKET, prefix_for("demo", "default", "1.0.0", "ab" * 32), "ab" * 32, 300_000_000, ACCOUNT)
ROLE = "demo-task"


def s3_spec(region: str = "us-east-1") -> Any:
    s = spec(project(S3))
    return s if region == "us-east-1" else type(s)(project=s.project, region=region, account=ACCOUNT)


def in_sync(s: Any, overrides: dict[tuple[str, str], Any] | None = None) -> FakeRemote:
    answers = {
        ("s3", "head_bucket"): {},
        ("s3", "get_bucket_tagging"): {"TagSet": [{"Key": k, "Value": v} for k, v in model_store.tags(s).items()]},
        ("s3", "get_public_access_block"): {"PublicAccessBlockConfiguration": model_store.PUBLIC_ACCESS_BLOCK},
        ("s3", "get_bucket_versioning"): {"Status": "Enabled"},
        ("s3", "get_bucket_encryption"): {"ServerSideEncryptionConfiguration": model_store.ENCRYPTION},
        ("s3", "get_bucket_policy"): {"Policy": json.dumps(model_store.bucket_policy(s, BUCKET))},
    }
    answers.update(overrides or {})
    return FakeRemote(answers)


def test_image_store_plans_and_deletes_nothing_and_reads_nothing() -> None:
    remote = FakeRemote()
    assert model_store.plan(spec(), remote, {}) == [] and model_store.delete(spec(), remote, {}) == []
    assert remote.calls == []


def test_missing_bucket_is_created_versioned_encrypted_blocked_tls_only() -> None:
    s = s3_spec()
    known: dict[str, Any] = {"model_location": LOC}
    (step,) = model_store.plan(s, FakeRemote({("s3", "head_bucket"): None}), known)
    assert (step.kind, step.name, step.action) == ("s3 bucket", BUCKET, Action.create)
    assert step.calls == (
        ApiCall("s3", "create_bucket", {"Bucket": BUCKET}),  # us-east-1: no LocationConstraint
        ApiCall("s3", "put_public_access_block", {**OWNER, "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True}}),
        ApiCall("s3", "put_bucket_versioning", {**OWNER, "VersioningConfiguration": {"Status": "Enabled"}}),
        ApiCall("s3", "put_bucket_encryption", {**OWNER, "ServerSideEncryptionConfiguration": {"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}}),
        ApiCall("s3", "put_bucket_tagging", {**OWNER, "Tagging": {"TagSet": [
            {"Key": "mldeploy:managed-by", "Value": "mldeploy"},
            {"Key": "mldeploy:purpose", "Value": "model-store"}]}}),
        ApiCall("s3", "put_bucket_policy", {**OWNER, "Policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})}))
    assert known["model_bucket"] == BUCKET and known["model_location"] is LOC
    (eu,) = model_store.plan(s3_spec("eu-west-1"), FakeRemote({("s3", "head_bucket"): None}), {})
    assert eu.calls[0] == ApiCall("s3", "create_bucket", {
        "Bucket": f"mldeploy-{ACCOUNT}-eu-west-1", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})


def test_in_sync_is_a_noop_and_each_drift_is_one_call() -> None:
    s = s3_spec()
    assert model_store.plan(s, in_sync(s), {"model_location": LOC}) == [noop("s3 bucket", BUCKET)]
    drifted = in_sync(s, {("s3", "get_bucket_versioning"): {"Status": "Suspended"},
                            ("s3", "get_public_access_block"): None, ("s3", "get_bucket_policy"): None})
    (step,) = model_store.plan(s, drifted, {"model_location": LOC})
    assert step.action is Action.update
    assert step.changes == ("public access block", "versioning Suspended → Enabled", "bucket policy (deny non-TLS)")
    assert [c.op for c in step.calls] == ["put_public_access_block", "put_bucket_versioning", "put_bucket_policy"]


def test_someone_elses_bucket_or_an_untagged_one_is_refused() -> None:
    s = s3_spec()

    def forbidden(**_: Any) -> None:
        raise AwsError("s3:HeadBucket failed (403): Forbidden")

    with pytest.raises(AwsError, match=f"{BUCKET}': HeadBucket answered 403 .* another account than {ACCOUNT}"):
        model_store.plan(s, FakeRemote({("s3", "head_bucket"): forbidden}), {"model_location": LOC})
    with pytest.raises(AwsError, match="is not mldeploy's model store"):
        model_store.plan(s, in_sync(s, {("s3", "get_bucket_tagging"): None}), {"model_location": LOC})


def test_bucket_names_follow_the_s3_rules() -> None:
    assert model_store.bucket_name(ACCOUNT, "ap-southeast-2") == f"mldeploy-{ACCOUNT}-ap-southeast-2"
    for bad in ("ab", "Upper", "a..b", "10.0.0.1", "xn--x", "x-s3alias", "-leading"):
        with pytest.raises(ValueError, match="naming rules"):
            model_store.check_bucket_name(bad)


def test_task_role_reads_only_this_versions_prefix_and_keeps_earlier_ones() -> None:
    s = s3_spec()
    remote = FakeRemote({("iam", "get_role"): None})
    (create,) = iam.plan_task_role(s, remote, {"model_location": LOC})
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "ModelArtifacts", "Effect": "Allow",
                                                      "Action": "s3:GetObject",
                                                      "Resource": [f"arn:aws:s3:::{BUCKET}/{LOC.prefix}*"]}]}
    assert create.action is Action.create and create.calls[-1] == ApiCall("iam", "put_role_policy", {
        "RoleName": ROLE, "PolicyName": iam.MODEL_POLICY_NAME, "PolicyDocument": json.dumps(policy)})
    # an existing role: the new version's prefix is added after the earlier ones (rollback, canary)
    old = f"demo/default/0.9.0/{'cd' * 8}/"
    role = {"Role": {"Arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}", "Tags": owned_tags()}}
    earlier = model_store.task_role_policy(s, None, ModelLocation(BUCKET, old, "cd" * 32, 1))
    remote = FakeRemote({("iam", "get_role"): role, ("iam", "get_role_policy"): {"PolicyDocument": earlier},
                         ("iam", "list_attached_role_policies"): {"AttachedPolicies": []}})
    known: dict[str, Any] = {"model_location": LOC}
    (update,) = iam.plan_task_role(s, remote, known)
    doc = json.loads(update.calls[-1].params["PolicyDocument"])
    assert doc["Statement"][0]["Resource"] == [f"arn:aws:s3:::{BUCKET}/{old}*", f"arn:aws:s3:::{BUCKET}/{LOC.prefix}*"]
    assert known["task_role_arn"] == role["Role"]["Arn"]
    remote.answer("iam", "get_role_policy", {"PolicyDocument": model_store.task_role_policy(s, earlier, LOC)})
    assert iam.plan_task_role(s, remote, {"model_location": LOC}) == [noop("iam role", ROLE)]
    assert len(model_store.merged_prefixes([f"p{i}/" for i in range(60)], "new/")) == model_store.MAX_GRANTED_PREFIXES


def test_task_definition_names_the_prefix_and_sizes_ephemeral_storage() -> None:
    s = s3_spec()
    small = task_definition.desired(s, {**known_existing(), "model_location": LOC}, "img")
    env = dict((e["name"], e["value"]) for e in small["containerDefinitions"][0]["environment"])
    assert env["MLDEPLOY_MODEL_S3_BUCKET"] == BUCKET and env["MLDEPLOY_MODEL_S3_PREFIX"] == LOC.prefix
    assert env["MLDEPLOY_MODEL_INDEX_SHA256"] == LOC.index_sha256 and env["MLDEPLOY_MODEL_S3_OWNER"] == ACCOUNT
    assert "ephemeralStorage" not in small and "MLDEPLOY_MODEL_S3_BUCKET" not in str(
        task_definition.desired(spec(), known_existing(), "img"))
    big = ModelLocation(BUCKET, LOC.prefix, LOC.index_sha256, 30 * 2**30)
    args = task_definition.desired(s, {**known_existing(), "model_location": big}, "img")
    assert args["ephemeralStorage"] == {"sizeInGiB": 35}  # 30 GiB artifact + 5 GiB for the image
    assert task_definition.diff({**small, "revision": 1}, args)[0] == "ephemeral storage 20 → 35 GiB"
    assert model_store.ephemeral_gib(15 * 2**30) is None and model_store.ephemeral_gib(16 * 2**30) == 21
    with pytest.raises(ConfigError, match="more than Fargate's 200 GiB"):
        model_store.ephemeral_gib(196 * 2**30)


def _versions(keys: list[str], markers: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"Versions": [{"Key": k, "VersionId": f"v{i}"} for i, k in enumerate(keys)],
            "DeleteMarkers": [{"Key": k, "VersionId": f"m{i}"} for i, k in enumerate(markers)]}


def test_down_deletes_this_envs_versions_and_keeps_a_bucket_other_apps_use() -> None:
    s = s3_spec()

    def listing(Bucket: str, Prefix: str | None = None) -> dict[str, Any]:  # noqa: N803 - boto3's names
        every = ["demo/default/1.0.0/ab/model.json", "demo/default/1.0.0/ab/model.json", "demo/prod/1.0.0/x/m"]
        return _versions([k for k in every if Prefix is None or k.startswith(Prefix)])

    remote = in_sync(s, {("s3", "list_object_versions"): listing})
    objects, kept = model_store.delete(s, remote, {})
    assert objects == Step("s3 objects", f"s3://{BUCKET}/demo/default/", Action.delete, ["2 object versions"], calls=[
        ApiCall("s3", "delete_objects", {**OWNER, "Delete": {"Objects": [
            {"Key": "demo/default/1.0.0/ab/model.json", "VersionId": "v0"},
            {"Key": "demo/default/1.0.0/ab/model.json", "VersionId": "v1"}], "Quiet": True}},
            missing=("NoSuchBucket",))])
    assert kept == Step("s3 bucket", BUCKET, Action.noop, note="kept: holds the models of demo/prod")
    alone = in_sync(s, {("s3", "list_object_versions"): _versions([])})
    assert model_store.delete(s, alone, {}) == [Step("s3 bucket", BUCKET, Action.delete,
                                                     ["empty: no other app's models"], calls=[
        ApiCall("s3", "delete_bucket", OWNER, missing=("NoSuchBucket", "BucketNotEmpty"))])]


def test_many_objects_are_deleted_in_batches_of_1000() -> None:
    s = s3_spec()
    keys = [f"demo/default/1.0.0/ab/f{i}" for i in range(2500)]
    remote = in_sync(s, {("s3", "list_object_versions"): _versions(keys)})
    objects, bucket = model_store.delete(s, remote, {})
    assert [len(c.params["Delete"]["Objects"]) for c in objects.calls] == [1000, 1000, 500]
    assert bucket.action is Action.delete


def test_canary_copy_points_at_its_own_version_prefix() -> None:
    from mldeploy.release.targets import aws_plans

    s = s3_spec()
    stable = task_definition.desired(s, {**known_existing(), "model_location": LOC}, "img-a")
    td = {**stable, "taskDefinitionArn": "arn:td:1", "revision": 1}

    class Fleet:
        stable_td, container_name = "arn:td:1", "model"

    remote = FakeRemote({("ecs", "describe_task_definition"): {"taskDefinition": td, "tags": []}})
    canary_loc = ModelLocation(BUCKET, prefix_for("demo", "default", "1.1.0", "ef" * 32), "ef" * 32, 10, ACCOUNT)
    c = s.as_role("canary", image="img-b", version="1.1.0")
    known: dict[str, Any] = {"canary.model_location": canary_loc}
    (step,) = aws_plans.task_definition(c, Fleet(), remote, known)  # type: ignore[arg-type]
    env = {e["name"]: e["value"] for e in step.calls[0].params["containerDefinitions"][0]["environment"]}
    assert env["MLDEPLOY_MODEL_S3_PREFIX"] == canary_loc.prefix and env["MLDEPLOY_MODEL_VERSION"] == "1.1.0"
    assert env["MLDEPLOY_MODEL_INDEX_SHA256"] == "ef" * 32


def test_before_packaging_the_plan_shows_the_grant_as_known_after_upload() -> None:
    s = s3_spec()  # project root /nonexistent: nothing packaged, the location is a Ref
    known: dict[str, Any] = {}
    (bucket,) = model_store.plan(s, FakeRemote({("s3", "head_bucket"): None}), known)
    assert bucket.action is Action.create and str(known["model_location"]) == "(known after apply: model_location)"
    (role,) = iam.plan_task_role(s, FakeRemote({("iam", "get_role"): None}), known)
    assert "s3:GetObject on the model's prefix (known after upload)" in role.changes
    env = {e["name"]: e["value"] for e in task_definition.desired(s, {**known_existing(), **known}, "img")[
        "containerDefinitions"][0]["environment"]}
    assert str(env["MLDEPLOY_MODEL_S3_PREFIX"]) == "(known after apply: model_location)"
