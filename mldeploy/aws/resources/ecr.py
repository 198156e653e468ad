"""ECR repository: scan on push, immutable-enough tags, lifecycle policy (keep the last N images)."""

from __future__ import annotations

import json

from mldeploy.aws.clients import aws_errors, call
from mldeploy.aws.context import DeployContext, tag_dict
from mldeploy.aws.plan import Action, Step

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


def describe(ctx: DeployContext) -> dict | None:
    found = call(ctx.aws.ecr.describe_repositories, repositoryNames=[ctx.ecr_repository],
                 missing=("RepositoryNotFoundException",))
    return found["repositories"][0] if found else None


def plan(ctx: DeployContext) -> list[Step]:
    if not ctx.uses_ecr:
        return []
    name = ctx.ecr_repository
    repo = describe(ctx)
    ecr = ctx.aws.ecr
    if repo is None:
        ctx.outputs["ecr_uri"] = f"{ctx.aws.account}.dkr.ecr.{ctx.aws.region}.amazonaws.com/{name}"
        return [Step("ecr repository", name, Action.create, ["scan on push", f"lifecycle: keep {KEEP_IMAGES}"],
                     apply=create)]
    ctx.outputs["ecr_uri"] = repo["repositoryUri"]
    with aws_errors():
        tags = tag_dict(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"])
    ctx.check_owned("ECR repository", name, tags)
    changes = []
    if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
        changes.append("scan on push: off → on")
    got = call(ecr.get_lifecycle_policy, repositoryName=name, missing=("LifecyclePolicyNotFoundException",))
    current = json.loads(got["lifecyclePolicyText"]) if got else None
    if current != lifecycle_policy():
        changes.append("lifecycle policy")
    if not changes:
        return [Step("ecr repository", name, Action.noop)]
    return [Step("ecr repository", name, Action.update, changes, apply=lambda c: _update(c, changes))]


def create(ctx: DeployContext) -> None:
    ecr = ctx.aws.ecr
    with aws_errors():
        repo = ecr.create_repository(repositoryName=ctx.ecr_repository, tags=ctx.tag_list(),
                                     imageScanningConfiguration={"scanOnPush": True})["repository"]
        ecr.put_lifecycle_policy(repositoryName=ctx.ecr_repository, lifecyclePolicyText=json.dumps(lifecycle_policy()))
    ctx.outputs["ecr_uri"] = repo["repositoryUri"]


def _update(ctx: DeployContext, changes: list[str]) -> None:
    ecr = ctx.aws.ecr
    with aws_errors():
        if any(c.startswith("scan") for c in changes):
            ecr.put_image_scanning_configuration(repositoryName=ctx.ecr_repository,
                                                 imageScanningConfiguration={"scanOnPush": True})
        if "lifecycle policy" in changes:
            ecr.put_lifecycle_policy(repositoryName=ctx.ecr_repository,
                                     lifecyclePolicyText=json.dumps(lifecycle_policy()))


def delete(ctx: DeployContext) -> bool:
    """Delete the repository and its images (``down --purge``)."""
    return call(ctx.aws.ecr.delete_repository, repositoryName=ctx.ecr_repository, force=True,
                missing=("RepositoryNotFoundException",)) is not None
