"""Helpers for the artifact tests: copy an example into a temp folder and build its model there."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mldeploy.config import Project, load_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example(name: str, dest: Path, **make_kwargs: Any) -> Path:
    """Copy ``examples/<name>`` (sources only) into ``dest`` and run its ``make_model.main(out=dest)``."""
    src = EXAMPLES / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix in (".py", ".yaml"):
            shutil.copy(f, dest / f.name)
    spec = importlib.util.spec_from_file_location(f"example_{name.replace('-', '_')}", dest / "make_model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out=dest, **make_kwargs)
    return dest


def edit_config(folder: Path, **model: Any) -> None:
    """Set keys of the ``model:`` section (None deletes)."""
    path = folder / "mldeploy.yaml"
    data = yaml.safe_load(path.read_text())
    for k, v in model.items():
        if v is None:
            data["model"].pop(k, None)
        else:
            data["model"][k] = v
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def project(folder: Path) -> Project:
    return load_project(folder / "mldeploy.yaml", environ={"AWS_REGION": "us-east-1"})


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mldeploy", *args], capture_output=True, text=True, cwd=cwd,
                          env=full_env, timeout=300, check=False)


def shadow_module(folder: Path, name: str) -> dict[str, str]:
    """An env whose PYTHONPATH makes ``import name`` fail, as if the framework were not installed."""
    pkg = folder / "shadow" / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f'raise ImportError("No module named {name}", name="{name}")\n')
    return {"PYTHONPATH": os.pathsep.join([str(folder / "shadow"), str(ROOT)])}
