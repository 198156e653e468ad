"""What the last build / push / local run produced, recorded under ``<project.root>/.mldeploy/<env>/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.config import Project

BUILD = "build.json"
PUSH = "image.json"
LOCAL = "local.json"


def state_dir(project: Project) -> Path:
    return project.root / ".mldeploy" / project.env


def write(project: Project, name: str, data: dict[str, Any]) -> Path:
    path = state_dir(project) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read(project: Project, name: str) -> dict[str, Any] | None:
    path = state_dir(project) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
