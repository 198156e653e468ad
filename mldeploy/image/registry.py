"""Push an image to ECR (token from boto3, repository created if absent) or any registry, with layer progress."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError, BuildError
from mldeploy.image.docker_client import client
from mldeploy.ui import Ui

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.image.api import BuiltImage, PushedImage


@dataclass(frozen=True)
class Target:
    repository: str  # host[:port]/path/name, without tag
    auth: dict[str, str] | None


def repository_name(project: Project) -> str:
    return project.config.registry.repository or project.config.name


def registry_target(url: str, name: str) -> Target:
    """``url`` like ``ghcr.io/org``, ``https://host:5000`` or ``127.0.0.1:5000`` → ``host/org/name``.

    Credentials come from the Docker client's own config (``docker login``), never from mldeploy.yaml.
    """
    host = url.split("://", 1)[-1].rstrip("/")
    if not host:
        raise BuildError(f"registry.url {url!r} is empty")
    return Target(f"{host}/{name}", None)


def ecr_target(project: Project, name: str, aws: Clients | None = None, ui: Ui | None = None) -> Target:
    """Create the ECR repository if absent and log in with a token from ``ecr:GetAuthorizationToken``.

    ``aws``: the caller's clients (the CLI's ``--region``/``--profile``); default: the project's aws section,
    else boto3's own chain (env, profile, SSO).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = project.config
    try:
        if aws is None:
            from mldeploy.aws.clients import clients

            aws = clients(project)
        ecr = aws.get("ecr")
        try:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
                raise
            (ui or Ui()).info(f"creating ECR repository {name}")
            tags = [{"Key": k, "Value": v} for k, v in project.names.tags(cfg.aws.tags).items()]
            repo = ecr.create_repository(
                repositoryName=name, imageTagMutability="MUTABLE",
                imageScanningConfiguration={"scanOnPush": True}, tags=tags,
            )["repository"]
        data = ecr.get_authorization_token()["authorizationData"][0]
    except (ClientError, BotoCoreError) as e:
        raise AwsError(f"ECR: {e}", hint="check AWS credentials/region and the ecr:* permissions "
                       "(`mldeploy iam-policy`), or set registry.url to push elsewhere") from e
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return Target(repo["repositoryUri"], {"username": user, "password": password,
                                          "serveraddress": data.get("proxyEndpoint", "")})


def push(project: Project, built: BuiltImage, *, registry: str | None = None, aws: Clients | None = None,
         ui: Ui | None = None) -> PushedImage:
    """Tag and push every tag of ``built`` (progress on ``ui``); ``aws`` only matters for ECR."""
    from mldeploy.image.api import PushedImage

    ui = ui or Ui()
    name = repository_name(project)
    url = registry or project.config.registry.url
    target = registry_target(url, name) if url else ecr_target(project, name, aws, ui)
    api = client().api
    digest = ""
    for i, tag in enumerate(built.tag_names):
        api.tag(built.image_id, repository=target.repository, tag=tag, force=True)
        d = _push_one(api, target, tag, show=(i == 0), ui=ui)
        digest = digest or d
    if not digest:
        raise BuildError(f"push of {target.repository} finished without a digest")
    primary = built.tag_names[0]
    ui.success(f"pushed {target.repository}:{primary} ({digest[:19]}…)")
    return PushedImage(uri=f"{target.repository}:{primary}", digest=digest, tag=primary,
                       tags=[f"{target.repository}:{t}" for t in built.tag_names])


def _push_one(api: Any, target: Target, tag: str, show: bool, ui: Ui) -> str:
    """Push one tag; a per-layer progress display for the first; returns the manifest digest."""
    from docker.errors import APIError
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    live = show and ui.interactive
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=ui.console,
                        transient=True, disable=not live)
    layers: dict[str, Any] = {}
    digest = ""
    last: list[str] = []
    ref = f"{target.repository}:{tag}"
    if show and not live:
        ui.info(f"pushing {ref}")
    try:
        with progress:
            for ev in api.push(target.repository, tag=tag, stream=True, decode=True, auth_config=target.auth):
                if "error" in ev:
                    detail = ev.get("errorDetail", {}).get("message") or ev["error"]
                    raise BuildError(f"push of {ref} failed: {detail}", hint=_hint(str(detail)))
                aux = ev.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                status, layer = ev.get("status", ""), ev.get("id")
                if status:
                    last = (last + [f"{layer or ''} {status}".strip()])[-5:]
                if not layer or not live:
                    continue
                if layer not in layers:
                    layers[layer] = progress.add_task(f"layer {layer}", total=None)
                detail = ev.get("progressDetail") or {}
                if detail.get("total"):
                    progress.update(layers[layer], completed=detail.get("current", 0), total=detail["total"],
                                    description=f"layer {layer} {status.lower()}")
                elif status in ("Pushed", "Layer already exists", "Mounted from"):
                    progress.update(layers[layer], completed=1, total=1, description=f"layer {layer} {status}")
    except APIError as e:
        raise BuildError(f"push of {ref} failed: {e.explanation or e}", hint=_hint(str(e))) from e
    if not digest:
        raise BuildError(f"push of {ref} returned no digest; last events: {'; '.join(last)}")
    return digest


def _hint(message: str) -> str | None:
    low = message.lower()
    if "denied" in low or "unauthorized" in low or "authentication" in low:
        return "log in to the registry with `docker login <host>` (ECR logins are automatic)"
    if "connection refused" in low or "no such host" in low or "http response to https client" in low:
        return "check registry.url (host:port) and that the registry is reachable; plain-HTTP registries must " \
               "be listed in the daemon's insecure-registries"
    return None
