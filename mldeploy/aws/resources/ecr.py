"""ECR repository: scan on push, lifecycle policy (keep the last N images).

One repository serves every environment of an app (``registry.repository`` or the app name), so it belongs to the
app, not to an environment: its ownership check reads ``mldeploy:app`` only, and ``down --purge`` of one
environment keeps it while another environment of the app is still deployed.
"""

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
