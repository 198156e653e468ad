"""Images in use are never expired (issue 14 item 5) and private non-ECR registries (item 6), as data.

moto does not run ECR lifecycle policies (nothing ever expires there), so the policy is asserted as a document
against ECR's evaluation rules; the keep-tag retag runs against moto's ECR (BatchGetImage + PutImage), and the
build tag against a local registry (moto's ECR cannot take docker pushes).
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, after, noop
from mldeploy.aws.resources import ecr, iam, task_definition
from mldeploy.image.api import build_tag, tag_names, with_build_tag
from tests.unit.fakes import ACCOUNT, BASE_CONFIG, FakeRemote, project, spec

REPO_URI = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/demo"
DIGEST = "sha256:" + "ab" * 32
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ghcr-creds-AbCdEf"
PRIVATE = BASE_CONFIG + f"registry:\n  url: ghcr.io/acme\n  credentials_secret: {SECRET}\n"


# ----------------------------------------------------------------------------------------- lifecycle policy


def test_lifecycle_policy_never_selects_a_keep_image_for_expiry() -> None:
    """ECR user guide, "Lifecycle policy evaluation rules": an image that matches the tagging requirements of a
    higher-priority rule cannot be expired by a lower-priority one, and a ``tagStatus: any`` rule comes last."""
    rules = sorted(ecr.lifecycle_policy()["rules"], key=lambda r: r["rulePriority"])
    first = rules[0]
    assert first["selection"] == {"tagStatus": "tagged", "tagPrefixList": ["keep-"],
                                  "countType": "imageCountMoreThan", "countNumber": ecr.KEEP_FOREVER}
    assert ecr.KEEP_FOREVER >= 9999  # far beyond the 100 history records rollbacks can reach
    assert rules[-1]["selection"]["tagStatus"] == "any"  # the only "any" rule, evaluated last
    assert [r["selection"]["tagStatus"] for r in rules].count("untagged") == 1
    assert len({r["rulePriority"] for r in rules}) == len(rules)
    assert ecr.keep_tag(DIGEST) == "keep-" + "ab" * 32 and len(ecr.keep_tag(DIGEST)) <= 128


def test_a_changed_lifecycle_policy_is_planned_as_an_update() -> None:
    s = spec()
    old = {"rules": [r for r in ecr.lifecycle_policy()["rules"] if r["rulePriority"] != 1]}
    remote = FakeRemote({
        ("ecr", "describe_repositories"): {"repositories": [{
            "repositoryUri": REPO_URI, "repositoryArn": "arn:repo",
            "imageScanningConfiguration": {"scanOnPush": True}}]},
        ("ecr", "list_tags_for_resource"): {"tags": [{"Key": "mldeploy:app", "Value": "demo"}]},
        ("ecr", "get_lifecycle_policy"): {"lifecyclePolicyText": json.dumps(old)}})
    assert ecr.plan(s, remote, {}) == [Step("ecr repository", "demo", Action.update, ["lifecycle policy"], calls=[
        ApiCall("ecr", "put_lifecycle_policy", {"repositoryName": "demo",
                                                "lifecyclePolicyText": json.dumps(ecr.lifecycle_policy())})])]


# ----------------------------------------------------------------------------------------------- keep tags


def _images(tags: list[str] | None) -> Any:
    def answer(repositoryName: str, imageIds: list[dict[str, str]]) -> dict | None:  # noqa: N803 (AWS's names)
        return None if tags is None else {"imageDetails": [{"imageDigest": DIGEST, "imageTags": tags}]}
    return answer


def keep_calls(digest: Any, tag: Any) -> list[ApiCall]:
    return [ApiCall("ecr", "batch_get_image", {"repositoryName": "demo", "imageIds": [{"imageDigest": digest}],
                                               "acceptedMediaTypes": ecr.MANIFEST_TYPES},
                    outputs=(("keep.manifest", "images[0].imageManifest"),
                             ("keep.media_type", "images[0].imageManifestMediaType"))),
            ApiCall("ecr", "put_image", {"repositoryName": "demo", "imageManifest": Ref("keep.manifest"),
                                         "imageManifestMediaType": Ref("keep.media_type"), "imageTag": tag,
                                         "imageDigest": digest}, missing=("ImageAlreadyExistsException",))]


def test_the_deployed_digest_is_tagged_keep_before_the_task_definition_names_it() -> None:
    s = spec(image=f"{REPO_URI}@{DIGEST}")
    remote = FakeRemote({("ecr", "describe_images"): _images(["1.0.0", "latest"])})
    name = f"demo:keep-{'ab' * 6}…"
    assert ecr.keep(s, remote, {}, s.image) == [Step("ecr image tag", name, Action.create,
                                                    note="deployed: the lifecycle policy never expires it",
                                                    calls=keep_calls(DIGEST, ecr.keep_tag(DIGEST)))]
    # once tagged: a no-op (a second `up` changes nothing)
    remote.answer("ecr", "describe_images", _images(["1.0.0", ecr.keep_tag(DIGEST)]))
    assert ecr.keep(s, remote, {}, s.image) == [noop("ecr image tag", name)]
    # a tag reference of our repository resolves to its digest; other registries and unknown images: nothing
    assert ecr.keep(s, FakeRemote({("ecr", "describe_images"): _images(["1.0.0"])}), {}, f"{REPO_URI}:1.0.0")[0] \
        .calls == tuple(keep_calls(DIGEST, ecr.keep_tag(DIGEST)))
    assert ecr.keep(s, FakeRemote(), {}, "registry.example/demo:1") == []
    assert ecr.keep(s, FakeRemote({("ecr", "describe_images"): _images(None)}), {}, s.image) == []
    assert ecr.keep(spec(project(PRIVATE)), FakeRemote(), {}, Ref("image")) == []


def test_an_image_built_after_planning_is_tagged_from_refs() -> None:
    digest = after(Ref("image"), "@")
    tag = Fn("format", ("keep-{d}",), (("d", after(digest, "sha256:")),))
    (step,) = ecr.keep(spec(), FakeRemote(), {}, Ref("image"))
    assert step == Step("ecr image tag", "demo:keep-<digest>", Action.create,
                        note="deployed: the lifecycle policy never expires it", calls=keep_calls(digest, tag))
    from mldeploy.aws.engine.executor import Executor

    ex = Executor(clients=None, ui=None, waiters={}, values={"image": f"{REPO_URI}@{DIGEST}"})  # type: ignore
    assert ex.resolve(tag) == ecr.keep_tag(DIGEST) and ex.resolve(digest) == DIGEST


# ------------------------------------------------------------------------------------------ private registry


def test_private_registry_credentials_reach_the_task_definition_and_the_execution_role() -> None:
    s = spec(project(PRIVATE))
    known = {"execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/demo-exec"}
    container = task_definition.desired(s, known, "ghcr.io/acme/demo@" + DIGEST)["containerDefinitions"][0]
    assert container["repositoryCredentials"] == {"credentialsParameter": SECRET}
    statements = iam.execution_policy(s)["Statement"]
    assert {"Sid": "RegistryCredentials", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": SECRET} in statements
    assert not any(st["Sid"].startswith("Ecr") for st in statements)  # no ECR pull rights for a non-ECR image
    # a partial ARN (no 6-character suffix) gets Secrets Manager's wildcard
    partial = spec(project(PRIVATE.replace("ghcr-creds-AbCdEf", "ghcr")))
    assert iam.registry_credentials_statements(partial)[0]["Resource"] == SECRET.replace("ghcr-creds-AbCdEf",
                                                                                         "ghcr-??????")
    # adding the secret to a running revision is a change (a new revision); without it: nothing
    plain = task_definition.desired(spec(project(BASE_CONFIG + "registry:\n  url: ghcr.io/acme\n")), known, "x")
    assert "repositoryCredentials" not in plain["containerDefinitions"][0]
    assert task_definition.diff(plain, task_definition.desired(s, known, "x")) == ["repositoryCredentials"]
    assert iam.registry_credentials_statements(spec()) == []


@pytest.mark.parametrize("bad", [
    "registry:\n  credentials_secret: " + SECRET + "\n",  # ECR needs none
    "registry:\n  url: ghcr.io/acme\n  credentials_secret: ghcr-creds\n",  # a name, not an ARN
    "registry:\n  url: ghcr.io/acme\n  credentials_secret: arn:aws:ssm:us-east-1:123456789012:parameter/x\n"])
def test_credentials_secret_validation(bad: str) -> None:
    from mldeploy.errors import ConfigError

    with pytest.raises(ConfigError, match="credentials_secret|Secrets Manager"):
        project(BASE_CONFIG + bad)


# ----------------------------------------------------------------------------------------------- build tags


def test_every_build_gets_its_own_tag_beside_the_moving_ones() -> None:
    now = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    names = with_build_tag(tag_names("1.0.0+b", "0123456789abcdef"), "1.0.0+b", "sha256:deadbeefcafe", now)
    assert names == ["1.0.0_b", "0123456789ab", "1.0.0_b-20250304050607-deadbeef", "latest"]
    assert build_tag("1.0.0", "sha256:aaaaaaaa11", now) != build_tag("1.0.0", "sha256:bbbbbbbb22", now)
    assert len(build_tag("v" * 200, "sha256:aa", now)) <= 128


@pytest.mark.slow
def test_pushing_the_same_version_twice_keeps_the_first_digest_tagged(tmp_path: Path, registry: Any,
                                                                      docker_client: Any) -> None:
    """Two different images of version 1.0.0 pushed one after the other: the moving tags go to the second, the
    first keeps its build tag (so no lifecycle rule sees it untagged)."""
    from mldeploy.image.api import BuiltImage, push_image

    proj = project(BASE_CONFIG.replace("name: demo", "name: keep-demo"), root=tmp_path)
    (tmp_path / ".mldeploy").mkdir()
    pushed = []
    for i in range(2):
        image = _tiny_image(docker_client, f"build {i}")
        names = with_build_tag(tag_names("1.0.0", None), "1.0.0", image)
        built = BuiltImage(repository="mldeploy/keep-demo", tags=[f"mldeploy/keep-demo:{n}" for n in names],
                           image_id=image, size=0, base_size=None, build_seconds=0.0, cached_steps=0, steps=1,
                           context_dir=str(tmp_path), model_version="1.0.0", model_sha256="0" * 64,
                           tag_names=names)
        pushed.append((push_image(proj, built, registry=registry.url), names[1]))
    (first, first_tag), (second, _) = pushed
    assert first.digest != second.digest
    assert registry.manifest_digest("keep-demo", "1.0.0") == second.digest  # the moving tag moved
    assert registry.manifest_digest("keep-demo", first_tag) == first.digest  # the first digest keeps a tag


def _tiny_image(docker_client: Any, content: str) -> str:
    """A one-file image built FROM scratch (no base image to pull); returns its id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY f /f\n"), ("f", content.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = docker_client.images.build(fileobj=buf, custom_context=True, rm=True)
    return image.id


# ------------------------------------------------------------------------------------ against moto's ECR


@pytest.mark.aws
def test_up_tags_the_deployed_ecr_image_keep_on_moto(tmp_path: Path, aws: dict[str, str], moto_server: Any) -> None:
    """moto's ECR takes PutImage of a manifest (not docker pushes): push one, deploy it by digest, and the image
    carries its keep- tag; the repository's lifecycle policy is ours (moto stores it but never applies it)."""
    from tests.test_aws_helpers import Project

    ecr_client = moto_server.client("ecr")
    p = Project(tmp_path, aws)
    assert p.run("up", "--image", "registry.example/demo:1", "--no-wait").rc == 0  # creates the repository
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "0" * 64}, "layers": []})
    ecr_client.put_image(repositoryName="demo", imageManifest=manifest, imageTag="1.0.0")
    digest = ecr_client.describe_images(repositoryName="demo")["imageDetails"][0]["imageDigest"]
    uri = ecr_client.describe_repositories(repositoryNames=["demo"])["repositories"][0]["repositoryUri"]
    r = p.run("up", "--image", f"{uri}@{digest}", "--no-wait")
    assert r.rc == 0, r.stderr
    assert [c["op"] for c in r.calls if c["op"] in ("BatchGetImage", "PutImage")] == ["BatchGetImage", "PutImage"]
    tags = ecr_client.describe_images(repositoryName="demo", imageIds=[{"imageDigest": digest}])[
        "imageDetails"][0]["imageTags"]
    assert set(tags) == {"1.0.0", ecr.keep_tag(digest)}
    policy = json.loads(ecr_client.get_lifecycle_policy(repositoryName="demo")["lifecyclePolicyText"])
    assert policy == ecr.lifecycle_policy()
    r = p.run("plan", "--json")  # the keep tag is there: nothing to do
    assert r.rc == 0 and r.json["changes"] == 0, r.stdout
