"""ECR repository: scan on push, a lifecycle policy that never expires a deployed image, and ``keep`` (the
``keep-<digest>`` tag every deployed image gets).

One repository serves every environment of an app (``registry.repository`` or the app name), so it belongs to the
app, not to an environment: its ownership check reads ``mldeploy:app`` only, and ``down --purge`` of one
environment keeps it while another environment of the app is still deployed.
"""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, after, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict

KIND = "ecr repository"
IMAGE_KIND = "ecr image tag"
KEEP_IMAGES = 30
KEEP_PREFIX = "keep-"
"""Tag prefix of deployed images (``keep-<sha256 hex>``): the lifecycle policy never expires them."""
KEEP_FOREVER = 9999
"""The protected rule's count (CDK's own ECR example keeps a prefix with ``maxImageCount: 9999``): more deployed
images than this would be needed before the oldest-pushed ``keep-`` image could expire."""
MANIFEST_TYPES = ["application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json",
                  "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"]
"""BatchGetImage ``acceptedMediaTypes``: the manifest comes back as stored, so PutImage keeps its digest."""


def lifecycle_policy() -> dict:
    """Rules by priority. ECR's lifecycle evaluation rules (ECR user guide, "Lifecycle policy evaluation rules"):
    "An image that matches the tagging requirements of a higher priority rule cannot be expired by a rule with a
    lower priority", and a ``tagStatus: any`` rule must come last. Rule 1 selects every ``keep-`` image (each
    deployed digest: the stable service, a canary, every rollback target in the history) and expires none below
    ``KEEP_FOREVER``, so rules 2 and 3 can never expire them. Rule 2 (untagged after 7 days) cannot hit a
    deployed digest: a deployed image carries its ``keep-`` tag and every build its unique build tag, so a
    rebuild that moves ``<version>``/``latest`` leaves the earlier image tagged."""
    return {"rules": [
        {"rulePriority": 1, "description": f"never expire deployed images (tagged {KEEP_PREFIX}…)",
         "selection": {"tagStatus": "tagged", "tagPrefixList": [KEEP_PREFIX], "countType": "imageCountMoreThan",
                       "countNumber": KEEP_FOREVER},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": "expire untagged images after 7 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
         "action": {"type": "expire"}},
        {"rulePriority": 3, "description": f"keep the last {KEEP_IMAGES} images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
         "action": {"type": "expire"}},
    ]}


def read(spec: StackSpec, remote: Remote) -> dict | None:
    found = remote.get("ecr", "describe_repositories", repositoryNames=[spec.ecr_repository],
                       missing=("RepositoryNotFoundException",))
    return found["repositories"][0] if found else None


def uri(spec: StackSpec) -> str:
    return f"{spec.account}.dkr.ecr.{spec.region}.amazonaws.com/{spec.ecr_repository}"


def put_lifecycle(spec: StackSpec) -> ApiCall:
    return ApiCall("ecr", "put_lifecycle_policy", {"repositoryName": spec.ecr_repository,
                                                   "lifecyclePolicyText": json.dumps(lifecycle_policy())})


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if not spec.uses_ecr:
        return []
    name = spec.ecr_repository
    repo = read(spec, remote)
    if repo is None:
        known["ecr_uri"] = uri(spec)
        return [Step(KIND, name, Action.create, ["scan on push", f"lifecycle: keep {KEEP_IMAGES}"], calls=[
            ApiCall("ecr", "create_repository", {"repositoryName": name, "tags": spec.tag_list(),
                                                 "imageScanningConfiguration": {"scanOnPush": True}}),
            put_lifecycle(spec)])]
    known["ecr_uri"] = repo["repositoryUri"]
    tags = tag_dict(remote.get("ecr", "list_tags_for_resource", resourceArn=repo["repositoryArn"])["tags"])
    if tags.get("mldeploy:app") != spec.names.app:  # shared by the app's environments: the env tag is not checked
        spec.check_owned("ECR repository", name, tags)
    changes, calls = [], []
    if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
        changes.append("scan on push: off → on")
        calls.append(ApiCall("ecr", "put_image_scanning_configuration", {
            "repositoryName": name, "imageScanningConfiguration": {"scanOnPush": True}}))
    got = remote.get("ecr", "get_lifecycle_policy", repositoryName=name, missing=("LifecyclePolicyNotFoundException",))
    if (json.loads(got["lifecyclePolicyText"]) if got else None) != lifecycle_policy():
        changes.append("lifecycle policy")
        calls.append(put_lifecycle(spec))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def other_environments(spec: StackSpec, remote: Remote) -> list[str]:
    """Environments of this app that still have deployment records in SSM (``/mldeploy/<app>/<env>/…``)."""
    prefix = f"/mldeploy/{spec.names.app}/"
    names = [p["Name"] for p in remote.pages("ssm", "get_parameters_by_path", "Parameters", Path=prefix.rstrip("/"),
                                             Recursive=True)]
    envs = {n.removeprefix(prefix).split("/", 1)[0] for n in names if n.startswith(prefix)}
    return sorted(envs - {spec.names.env})


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The repository and its images (``down --purge`` only: ``stack.plan_down`` leaves it out otherwise), unless
    another environment of the app still runs images from it."""
    if not spec.uses_ecr or read(spec, remote) is None:
        return []
    others = other_environments(spec, remote)
    if others:
        return [Step(KIND, spec.ecr_repository, Action.noop, note=f"kept: env {', '.join(others)} still uses it")]
    return [Step(KIND, spec.ecr_repository, Action.delete, ["with its images"], calls=[
        ApiCall("ecr", "delete_repository", {"repositoryName": spec.ecr_repository, "force": True},
                missing=("RepositoryNotFoundException",))])]


# ------------------------------------------------------------------------------------------ deployed images


def keep_tag(digest: Any) -> Any:
    """``keep-<sha256 hex>`` for a ``sha256:…`` digest (an ``Fn`` while the digest is not known)."""
    if is_unknown(digest):
        return Fn("format", (KEEP_PREFIX + "{d}",), (("d", after(digest, "sha256:")),))
    return KEEP_PREFIX + str(digest).removeprefix("sha256:")


def _image_id(spec: StackSpec, known: Known, image: Any) -> dict[str, Any] | None:
    """The ECR image id (``imageDigest`` or ``imageTag``) of ``image`` when it lives in this app's repository."""
    if is_unknown(image):
        return {"imageDigest": after(image, "@")}  # ``up`` pushes to ECR and deploys repository@sha256:…
    repo = str(known.get("ecr_uri") or uri(spec))
    text = str(image)
    if text.startswith(repo + "@"):
        return {"imageDigest": text[len(repo) + 1:]}
    if text.startswith(repo + ":"):
        return {"imageTag": text[len(repo) + 1:]}
    return None


def keep(spec: StackSpec, remote: Remote, known: Known, image: Any) -> list[Step]:
    """Tag the ECR image the role deploys ``keep-<digest>`` (BatchGetImage → PutImage of the same manifest: ECR's
    documented retag, "Retagging an image", ECR user guide), before the task definition names it. Nothing for
    images outside this app's repository; a no-op once tagged."""
    if not spec.uses_ecr:
        return []
    image_id = _image_id(spec, known, image)
    if image_id is None:
        return []
    repo = spec.ecr_repository
    manifest, media = spec.key("keep.manifest"), spec.key("keep.media_type")
    digest = image_id.get("imageDigest")
    if not is_unknown(image_id):
        found = remote.get("ecr", "describe_images", repositoryName=repo, imageIds=[image_id],
                           missing=("ImageNotFoundException", "RepositoryNotFoundException"))
        details = (found or {}).get("imageDetails") or []
        if not details:
            return []  # not pushed here (yet): ECS would fail to pull it anyway, and there is nothing to protect
        digest = details[0]["imageDigest"]
        if keep_tag(digest) in (details[0].get("imageTags") or []):
            return [noop(IMAGE_KIND, f"{repo}:{keep_tag(digest)[:len(KEEP_PREFIX) + 12]}…")]
    tag = keep_tag(digest)
    name = f"{repo}:{tag[:len(KEEP_PREFIX) + 12]}…" if isinstance(tag, str) else f"{repo}:{KEEP_PREFIX}<digest>"
    return [Step(IMAGE_KIND, name, Action.create, note="deployed: the lifecycle policy never expires it", calls=[
        ApiCall("ecr", "batch_get_image", {"repositoryName": repo, "imageIds": [{"imageDigest": digest}],
                                           "acceptedMediaTypes": MANIFEST_TYPES},
                outputs=((manifest, "images[0].imageManifest"), (media, "images[0].imageManifestMediaType"))),
        ApiCall("ecr", "put_image", {"repositoryName": repo, "imageManifest": Ref(manifest),
                                     "imageManifestMediaType": Ref(media), "imageTag": tag, "imageDigest": digest},
                missing=("ImageAlreadyExistsException",))])]
