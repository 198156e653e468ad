"""``mldeploy serve``: the runtime in this process (uvicorn), no Docker — the fallback when no daemon exists."""

from __future__ import annotations

import runpy
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.image.context import link_or_copy
from mldeploy.workspace import LOCAL_RECORD, Workspace

if TYPE_CHECKING:
    from mldeploy.config import Project


def serving_dir(project: Project, artifact_dir: Path) -> Path:
    """``.mldeploy/<env>/serve``: the artifact (hard-linked) plus ``runtime.json``, as in the image."""
    out = Workspace.of(project).serve_dir
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(artifact_dir, out, copy_function=link_or_copy)
    (out / "runtime.json").write_text(project.config.runtime.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class Serving:
    """What ``prepare`` set up: the model folder, where it will listen, and the version served."""

    model_dir: Path
    host: str
    port: int
    version: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def prepare(project: Project, port: int | None = None, host: str = "127.0.0.1") -> Serving:
    """Package the model, lay out the serving folder and record the local URL (for ``predict``)."""
    from mldeploy.artifacts.packager import package  # the submodule shadows the re-export once imported

    result = package(project)
    from mldeploy.artifacts import code_paths  # model.code_paths importable by the in-process server

    shipped = code_paths.resolve(project.root, project.config.model.code_paths)
    sys.path[:0] = [str(d) for d in code_paths.import_dirs(shipped) if str(d) not in sys.path]
    serving = Serving(serving_dir(project, Path(result.dir)), host, port or project.config.runtime.port,
                      result.manifest.version)
    Workspace.of(project).write_json(LOCAL_RECORD, {"url": serving.url, "port": serving.port, "container": None,
                                                    "image": None, "container_id": None, "ready_seconds": None})
    return serving


def serve(serving: Serving) -> None:
    """Run ``python -m runtime`` in this process until Ctrl-C/SIGTERM."""
    sys.argv = ["runtime", "--model-dir", str(serving.model_dir), "--host", serving.host, "--port",
                str(serving.port)]
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)
