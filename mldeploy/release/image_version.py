"""The model version an image carries: its ``org.opencontainers.image.version`` label (``dev.mldeploy.model.version``
as written by ``templates/Dockerfile.j2``), read from the image config in the registry.

ECR: ``BatchGetImage`` gives the manifest, ``GetDownloadUrlForLayer`` a URL for the config blob it names. Other
registries: the Docker Registry HTTP API v2 (``/v2/<name>/manifests/<ref>``, ``/v2/<name>/blobs/<digest>``),
anonymously. When the label cannot be read the tag is the version, else ``unknown`` — with a warning either way.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.ui import Ui

LABELS = ("dev.mldeploy.model.version", "org.opencontainers.image.version")
MANIFESTS = ["application/vnd.docker.distribution.manifest.v2+json",
             "application/vnd.docker.distribution.manifest.list.v2+json",
             "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"]
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
TIMEOUT_S = 5.0
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ImageRef:
    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        """``host/repo[:tag][@sha256:…]`` (Docker Hub names without a host get ``registry-1.docker.io``)."""
        rest, _, digest = image.partition("@")
        first, _, path = rest.partition("/")
        if not path or not ("." in first or ":" in first or first == "localhost"):
            first, path = "registry-1.docker.io", rest if "/" in rest else f"library/{rest}"
        repo, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
        return cls(first, repo, tag or None, digest or None)


def _labels(config: dict[str, Any]) -> dict[str, str]:
    return dict((config.get("config") or {}).get("Labels") or {})


def _version(config: dict[str, Any]) -> str | None:
    labels = _labels(config)
    return next((labels[k] for k in LABELS if labels.get(k)), None)


def _pick(manifest: dict[str, Any]) -> str | None:
    """The config digest of an image manifest (indexes are resolved by the callers)."""
    if "config" in manifest:
        return str(manifest["config"]["digest"])
    return None


def _http_json(url: str, accept: list[str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": ", ".join(accept)} if accept else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (a registry URL)
        return json.loads(response.read())  # type: ignore[no-any-return]


def _from_ecr(clients: Clients, ref: ImageRef) -> str | None:
    from mldeploy.aws.clients import call

    image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
    found = call(clients.ecr.batch_get_image, repositoryName=ref.repository, imageIds=[image_id],
                 acceptedMediaTypes=MANIFESTS)
    images = found.get("images") or []
    if not images:
        return None
    manifest = json.loads(images[0]["imageManifest"])
    if "manifests" in manifest:  # an index: the first image manifest it lists
        child = manifest["manifests"][0]["digest"]
        found = call(clients.ecr.batch_get_image, repositoryName=ref.repository, imageIds=[{"imageDigest": child}],
                     acceptedMediaTypes=MANIFESTS)
        manifest = json.loads(found["images"][0]["imageManifest"])
    digest = _pick(manifest)
    if digest is None:
        return None
    url = call(clients.ecr.get_download_url_for_layer, repositoryName=ref.repository, layerDigest=digest)
    return _version(_http_json(url["downloadUrl"]))


def _from_registry(ref: ImageRef, scheme: str) -> str | None:
    base = f"{scheme}://{ref.host}/v2/{ref.repository}"
    manifest = _http_json(f"{base}/manifests/{ref.reference}", MANIFESTS)
    if "manifests" in manifest:
        manifest = _http_json(f"{base}/manifests/{manifest['manifests'][0]['digest']}", MANIFESTS)
    digest = _pick(manifest)
    return _version(_http_json(f"{base}/blobs/{digest}")) if digest else None


def read_version(image: str, clients: Clients | None) -> str | None:
    """The version label of ``image`` (None when the registry answers but the image has no such label).
    Raises on registry errors (the caller falls back)."""
    ref = ImageRef.parse(image)
    if ECR_HOST.match(ref.host) and clients is not None:
        return _from_ecr(clients, ref)
    local = ref.host.split(":")[0] in ("localhost", "127.0.0.1")
    return _from_registry(ref, "http" if local else "https")


def image_version(image: str, clients: Clients | None, ui: Ui) -> str:
    """The model version to record for a canary of ``image``: its label, else the tag, else ``unknown``."""
    problem = "the image has no version label"
    try:
        version = read_version(image, clients)
        if version:
            return version
    except Exception as e:  # any registry, network or parse failure: fall back, say so
        problem = f"could not read its labels ({type(e).__name__}: {str(e)[:120]})"
    ref = ImageRef.parse(image)
    fallback = ref.tag or UNKNOWN
    ui.warn(f"{image}: {problem}; recording version {fallback!r} "
            f"({'its tag' if ref.tag else 'no tag either'}) — build with `mldeploy build` to label images")
    return fallback
