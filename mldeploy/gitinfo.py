"""The git commit a deployment is built from (manifest, image labels, tags, release history)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_commit(folder: str | Path) -> str | None:
    """``$GITHUB_SHA`` in GitHub Actions, else ``git rev-parse HEAD`` in ``folder`` (None outside a repository)."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        proc = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and len(sha) >= 7 else None
