"""The project's local working folder ``.mldeploy/<env>/`` and atomic JSON files in it.

One place composes these paths (artifact, build context, serve folder, model versions, records); one writer
replaces a JSON file atomically (write a temporary file, then rename), so a reader sees the old or the new file,
never a partial one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config import Project

STATE_DIR = ".mldeploy"
MODELS_DIR_ENV = "MLDEPLOY_MODELS_DIR"
"""Overrides where the local model versions live (tests, or a shared volume)."""

BUILD_RECORD = "build.json"
"""The last ``mldeploy build`` (mldeploy.image.api.BuiltImage + ``built_at``)."""
PUSH_RECORD = "image.json"
"""The last push (mldeploy.image.api.PushedImage + ``ref``, ``image_id``, ``pushed_at``)."""
LOCAL_RECORD = "local.json"
"""The local server of ``run``/``up --target local``/``serve`` (url, port, container…)."""
CAPACITY_RECORD = "capacity.json"
"""The per-task capacity ``mldeploy bench`` measured (read by ``mldeploy cost``)."""


def atomic_write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` via write-then-rename (creates the parent folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it does not exist (invalid JSON raises ``ValueError``)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Workspace:
    """``<root>/.mldeploy/<env>/`` for one project environment."""

    root: Path
    env: str

    @classmethod
    def of(cls, project: Project) -> Workspace:
        return cls(Path(project.root), project.env)

    @property
    def dir(self) -> Path:
        return self.root / STATE_DIR / self.env

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def artifact_dir(self) -> Path:
        """The packaged model (``mldeploy package``)."""
        return self.dir / "artifact"

    @property
    def context_dir(self) -> Path:
        """The Docker build context (``mldeploy build``)."""
        return self.dir / "context"

    @property
    def serve_dir(self) -> Path:
        """The in-process server's folder (``mldeploy serve``)."""
        return self.dir / "serve"

    @property
    def models_dir(self) -> Path:
        """One artifact folder per model version for the local release target (``$MLDEPLOY_MODELS_DIR`` wins)."""
        override = os.environ.get(MODELS_DIR_ENV)
        return Path(override) if override else self.dir / "models"

    def read_json(self, name: str) -> Any | None:
        return read_json(self.path(name))

    def record(self, name: str) -> dict[str, Any] | None:
        """A JSON object record, or None when it is missing, unreadable or not an object (never raises)."""
        try:
            data = read_json(self.path(name))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: Any) -> Path:
        return atomic_write_json(self.path(name), data)
