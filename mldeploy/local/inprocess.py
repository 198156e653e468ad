"""``mldeploy serve``: the runtime in this process (uvicorn), no Docker — the fallback when no daemon exists."""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy import console
from mldeploy.image.context import link_or_copy

if TYPE_CHECKING:
    from mldeploy.config import Project


def serving_dir(project: Project, artifact_dir: Path) -> Path:
    """``.mldeploy/<env>/serve``: the artifact (hard-linked) plus ``runtime.json``, as in the image."""
    out = project.root / ".mldeploy" / project.env / "serve"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(artifact_dir, out, copy_function=link_or_copy)
    (out / "runtime.json").write_text(project.config.runtime.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return out


def serve(project: Project, port: int | None = None, host: str = "127.0.0.1") -> None:
    """Package the model and run ``python -m runtime`` in-process until Ctrl-C/SIGTERM."""
    from mldeploy.artifacts.packager import package  # the submodule shadows the re-export once imported

    result = package(project)
    model_dir = serving_dir(project, Path(result.dir))
    port = port or project.config.runtime.port
    console.info(f"serving {project.config.name} {result.manifest.version} on http://{host}:{port} "
                 f"(no Docker; Ctrl-C stops)")
    from mldeploy.image import records

    records.write(project, records.LOCAL, {"url": f"http://{host}:{port}", "port": port, "container": None,
                                           "image": None, "container_id": None, "ready_seconds": None})
    sys.argv = ["runtime", "--model-dir", str(model_dir), "--host", host, "--port", str(port)]
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)
