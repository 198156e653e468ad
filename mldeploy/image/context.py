"""Assemble the Docker build context: ``wheels/`` (+ lock), ``runtime/``, ``model/``, Dockerfile, .dockerignore.

The context holds only what the image needs; nothing is copied from the user's project folder except the
packaged artifact, so ``.env`` files, credentials and pip configuration cannot end up in the image.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.artifacts import code_paths, safe_copy
from mldeploy.errors import ArtifactError, BuildError, ExitCode
from mldeploy.gitinfo import git_commit
from mldeploy.image.dockerfile import (
    UNUSED_FOR_ONNX,
    UNUSED_FOR_TEXT,
    DockerfileSpec,
    render_dockerfile,
    render_dockerignore,
)
from mldeploy.image.wheelhouse import (
    LOCK_FILE,
    Wheelhouse,
    ensure_wheelhouse,
    merge_requirements,
    read_requirements,
)
from mldeploy.templating import template_dir
from mldeploy.workspace import Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project
    from runtime.manifest import Manifest

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".env", ".env.*", "tests", ".pytest_cache")


@dataclass(frozen=True)
class BuildContext:
    dir: Path
    wheelhouse: Wheelhouse
    requirements: list[str]
    spec: DockerfileSpec


def unused_packages(served_format: str) -> list[str]:
    """Installed as dependencies, never imported by the runtime for this served format: removed from the image."""
    return {"onnx": UNUSED_FOR_ONNX, "transformers-onnx": UNUSED_FOR_TEXT}.get(served_format, [])


def runtime_dir() -> Path:
    """The installed ``runtime`` package's folder (works from a wheel install as well as a checkout)."""
    import runtime

    return Path(runtime.__file__).resolve().parent


def requirements_for(project: Project, manifest: Manifest) -> list[str]:
    """The runtime's own requirements + the model's + ``image.pip_packages``, pinned (see wheelhouse)."""
    req_file = runtime_dir() / "requirements.txt"
    if not req_file.is_file():
        raise BuildError(f"{req_file} is missing; reinstall mldeploy")
    runtime_reqs = trim_runtime_requirements(read_requirements(req_file), project, manifest)
    groups = [runtime_reqs, list(manifest.requirements), list(project.config.image.pip_packages)]
    return merge_requirements(groups, project.config.image.platform, gpu=gpu_build(project))


def gpu_build(project: Project) -> bool:
    """``aws.gpus > 0``: CUDA wheels (onnxruntime-gpu, the CUDA torch) on a CUDA base image."""
    return project.config.aws.gpus > 0


def model_in_image(project: Project) -> bool:
    """``model.store: image`` (default); with ``s3`` the image holds the runtime only and the task downloads the
    artifact at start (``runtime.model_fetch``)."""
    return project.config.model.store == "image"


def trim_runtime_requirements(lines: list[str], project: Project, manifest: Manifest) -> list[str]:
    """Drop the runtime's optional dependencies this model/config cannot use (the image stays small).

    ``uvicorn[standard]`` becomes uvicorn + uvloop + httptools (no watchfiles/websockets/PyYAML/dotenv).
    Pillow (~22 MB) is only imported to decode image uploads; ``cryptography`` (PyJWT's ``crypto`` extra, ~16 MB)
    only verifies RS256 tokens. ``image.pip_packages`` can add either back.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    auth = project.config.runtime.auth
    images = manifest.image is not None or manifest.task == "image-classification"
    out = []
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "pillow" and not images:
            continue
        if name == "boto3" and model_in_image(project):  # only runtime.model_fetch imports it (model.store: s3)
            continue
        if name == "uvicorn" and "standard" in req.extras:
            # uvicorn[standard] minus what a server without --reload, websockets or YAML log configs never imports
            req.extras.discard("standard")
            out += [str(req), "uvloop; sys_platform != 'win32'", "httptools"]
            continue
        if name == "pyjwt" and "crypto" in req.extras and not (auth.mode == "jwt" and auth.jwt_algorithm == "RS256"):
            req.extras.discard("crypto")
            line = str(req)
        out.append(line)
    return out


def link_or_copy(src: str | Path, dst: str | Path) -> str | Path:
    """Hard-link (cheap for big wheels/models) or copy across file systems; usable as copytree's copy_function."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _normalise_modes(folder: Path) -> None:
    """Files 0644 and folders 0755: nothing in /app is writable by the unprivileged user."""
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def assemble(project: Project, artifact_dir: Path, manifest: Manifest, out_dir: Path | None = None,
             status: Callable[[str], None] | None = None,
             warn: Callable[[str], None] | None = None) -> BuildContext:
    """Write the build context for ``artifact_dir`` (a packaged model folder) and return its description.

    ``status`` gets progress lines, ``warn`` the scan's warnings (default: ``mldeploy.console.warn``).
    """
    from mldeploy.image import scan

    if warn is None:
        from mldeploy import console

        warn = console.warn
    cfg = project.config
    scan.check_tree(artifact_dir, "model artifact", warn=warn)  # before minutes of wheels and build
    if model_in_image(project):  # a link out of the artifact folder (dangling, looping) is refused: exit 3
        safe_copy.check_links(artifact_dir, artifact_dir, lambda problem: ArtifactError(
            f"model artifact {artifact_dir}: {problem}", hint="package again (mldeploy package writes no links), or "
            "replace the link by the file", exit_code=ExitCode.CONFIG), within="the artifact folder")
    out = out_dir or Workspace.of(project).context_dir
    if out.exists():
        if not (out / "Dockerfile").exists() and any(out.iterdir()):
            raise BuildError(f"{out} exists and is not an mldeploy build context; choose an empty --output folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)

    requirements = requirements_for(project, manifest)
    find_links = [project.resolve(cfg.image.wheelhouse)] if cfg.image.wheelhouse else []
    gpu = gpu_build(project)
    wheelhouse = ensure_wheelhouse(requirements, platform=cfg.image.platform,
                                   python_version=cfg.image.python_version, find_links=find_links, status=status,
                                   gpu=gpu)

    wheels = out / "wheels"
    wheels.mkdir()
    for wheel in wheelhouse.dir.glob("*.whl"):
        link_or_copy(wheel, wheels / wheel.name)
    (wheels / LOCK_FILE).write_text("\n".join(wheelhouse.lock) + "\n", encoding="utf-8")

    shutil.copytree(runtime_dir(), out / "runtime", ignore=_SKIP)
    if model_in_image(project):  # links checked above (before the wheels): copied as plain files
        shutil.copytree(artifact_dir, out / "model", ignore=lambda d, n: _SKIP(d, n) | scan.copy_ignore(d, n))
    else:  # model.store: s3: /app/model holds only runtime.json (the settings); the weights come from S3
        (out / "model").mkdir()
    (out / "model" / "runtime.json").write_text(cfg.runtime.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if cfg.model.code_paths:  # the user's modules a pickle's classes live in: /app/code, on PYTHONPATH
        code_paths.copy_into(code_paths.resolve(project.root, cfg.model.code_paths), out / "code")
        scan.check_tree(out / "code", "model.code_paths")  # secrets refuse the build
        _normalise_modes(out / "code")
    _normalise_modes(out / "runtime")
    _normalise_modes(out / "model")

    locked = {line.split("==", 1)[0].lower().replace("_", "-") for line in wheelhouse.lock}
    spec = DockerfileSpec(
        app=cfg.name,
        env=project.env,
        base=cfg.image.base_for(cfg.aws.gpus),
        python=f"python{cfg.image.python_version}" if gpu else "python3",
        cuda=gpu,
        port=cfg.runtime.port,
        model_version=manifest.version,
        model_sha256=manifest.sha256,
        model_format=manifest.format,
        git_commit=git_commit(project.root) or "unknown",
        uninstall=[p for p in ("pip", "setuptools") if p not in locked]
        + [p for p in unused_packages(manifest.format) if p in locked],
        system_packages=list(cfg.image.system_packages),
        code=bool(cfg.model.code_paths),
    )
    (out / "Dockerfile").write_text(render_dockerfile(spec), encoding="utf-8")
    (out / ".dockerignore").write_text(render_dockerignore(), encoding="utf-8")
    shutil.copy(template_dir() / "warm_imports.py", out / "warm_imports.py")
    os.chmod(out / "warm_imports.py", 0o644)
    return BuildContext(dir=out, wheelhouse=wheelhouse, requirements=requirements, spec=spec)
