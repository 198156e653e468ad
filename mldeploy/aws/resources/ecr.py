"""ECR repository: scan on push, lifecycle policy (keep the last N images)."""

from __future__ import annotations

import json

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict

KIND = "ecr repository"
KEEP_IMAGES = 30


def lifecycle_policy() -> dict:
    return {"rules": [
        {"rulePriority": 1, "description": "expire untagged images after 7 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the last {KEEP_IMAGES} images",
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


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The repository and its images (``down --purge`` only: ``stack.plan_down`` leaves it out otherwise)."""
    if not spec.uses_ecr or read(spec, remote) is None:
        return []
    return [Step(KIND, spec.ecr_repository, Action.delete, ["with its images"], calls=[
        ApiCall("ecr", "delete_repository", {"repositoryName": spec.ecr_repository, "force": True},
                missing=("RepositoryNotFoundException",))])]
