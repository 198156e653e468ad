"""Check that an artifact folder's model file still has the hash recorded in its ``model.json``."""

from __future__ import annotations

from pathlib import Path

from mldeploy.artifacts.hashing import sha256_path
from mldeploy.errors import ArtifactError
from runtime.manifest import MANIFEST_FILE, Manifest


def load_manifest(folder: Path) -> Manifest:
    try:
        return Manifest.load(folder)
    except FileNotFoundError as e:
        raise ArtifactError(f"{folder / MANIFEST_FILE} not found", hint="run `mldeploy package`") from e
    except ValueError as e:
        raise ArtifactError(f"{folder / MANIFEST_FILE} is invalid: {str(e).splitlines()[0]}",
                            hint="re-run `mldeploy package`") from e


def verify(folder: Path) -> Manifest:
    """Return the manifest if the served file matches its sha256; raise ArtifactError otherwise."""
    manifest = load_manifest(folder)
    target = folder / manifest.file
    if not target.exists():
        raise ArtifactError(f"{target} (named in {MANIFEST_FILE}) is missing", hint="re-run `mldeploy package`")
    actual = sha256_path(target)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"{target} has sha256 {actual[:12]}… but {MANIFEST_FILE} records {manifest.sha256[:12]}…: the file "
            "changed after packaging; refusing to load it" + (" (unpickling runs code)" if manifest.format in
                                                               ("pickle", "joblib") else ""),
            hint="re-run `mldeploy package` if the change is yours")
    return manifest
