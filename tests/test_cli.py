"""CLI wiring: lazy imports, global-option hoisting, exit codes, version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from mldeploy.cli.main import hoist_global_options

HEAVY = ("boto3", "botocore", "docker", "torch", "onnx", "onnxruntime", "sklearn", "numpy", "pandas", "fastapi",
         "tensorflow", "uvicorn", "jinja2", "yaml", "ruamel", "httpx", "requests", "skops", "pydantic",
         "typer._adapters",  # Typer's pydantic coercion (mldeploy.cli.app skips it for options left at None)
         "mldeploy.config", "mldeploy.aws", "mldeploy.workflows", "mldeploy.release", "mldeploy.artifacts",
         "mldeploy.image", "mldeploy.local", "mldeploy.cost", "mldeploy.ui", "runtime")
"""Never imported by ``mldeploy --help`` or ``mldeploy <command> --help`` (the commands import them when they run).
Not listed: rich.markdown, rich.traceback — Typer's rich help module imports them itself."""

HELP_IMPORTS = """
import contextlib, io, json, sys
import typer
from mldeploy.cli.app import app
from mldeploy.cli.main import main
heavy = {heavy!r}
def loaded():
    return {{m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)}}
before = loaded()
commands = list(typer.main.get_command(app).commands)  # registration order, no option processed
report = {{"before": sorted(before), "commands": commands, "runs": []}}
for argv in [["--help"], *([c, "--help"] for c in commands)]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    report["runs"].append({{"argv": argv, "code": code, "usage": "Usage: mldeploy " in out.getvalue(),
                           "new": sorted(loaded() - before)}})
    before = loaded()
print(json.dumps(report))
"""


def test_help_does_not_import_heavy_libraries():
    """``--help`` of the app and of every command, one after the other in one interpreter: each help exits 0,
    prints its usage, and none of them imports a heavy module (the first help that did is named)."""
    r = subprocess.run([sys.executable, "-c", HELP_IMPORTS.format(heavy=HEAVY)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["before"] == [], "importing the CLI loads heavy modules"
    for command in ("init", "validate", "up", "plan", "canary", "cost", "schema"):
        assert command in report["commands"]
    assert len(report["runs"]) == len(report["commands"]) + 1
    for run in report["runs"]:
        assert run["code"] == 0 and run["usage"], run
        assert run["new"] == [], f"mldeploy {' '.join(run['argv'])} imports {run['new']}"


_seen: list[object] = []
_DEMO = typer.Typer()


@_DEMO.command()
def _demo(count: Annotated[int | None, typer.Option(callback=lambda v: _seen.append(("cb", v)) or v)] = None,
          path: Annotated[Path | None, typer.Option()] = None) -> None:
    _seen.append((count, path))


def test_options_left_at_none_skip_coercion_and_given_ones_are_still_coerced():
    """mldeploy.cli.app's patch of Typer: None stays None (its callback still runs), anything given is coerced and
    checked by Typer as before."""
    import mldeploy.cli.app  # noqa: F401 - applies the patch

    runner = CliRunner()
    _seen.clear()
    assert runner.invoke(_DEMO, []).exit_code == 0 and _seen == [("cb", None), (None, None)]
    _seen.clear()
    assert runner.invoke(_DEMO, ["--count", "3", "--path", "a/b"]).exit_code == 0
    assert _seen == [("cb", 3), (3, Path("a/b"))]
    bad = runner.invoke(_DEMO, ["--count", "three"])
    assert bad.exit_code == 2 and "Invalid value for" in bad.output and "--count" in bad.output


def test_every_registered_command_has_help():
    r = subprocess.run([sys.executable, "-m", "mldeploy", "--help"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    commands = [line.split()[1] for line in r.stdout.splitlines()
                if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1].islower()
                and not line.split()[1].startswith("-")]
    assert "validate" in commands
    for command in commands:
        h = subprocess.run([sys.executable, "-m", "mldeploy", command, "--help"], capture_output=True, text=True,
                           timeout=60)
        assert h.returncode == 0, (command, h.stderr)


def test_hoisting_moves_global_options_before_the_command():
    assert hoist_global_options(["up", "--env", "prod", "--target", "local", "--json"]) == \
        ["--env", "prod", "--json", "up", "--target", "local"]
    assert hoist_global_options(["-f", "x.yaml", "plan", "--yes", "--region=eu-west-1"]) == \
        ["-f", "x.yaml", "--yes", "--region=eu-west-1", "plan"]
    assert hoist_global_options(["predict", "--", "--json"]) == ["predict", "--", "--json"]
    assert hoist_global_options([]) == []


def test_version_and_usage_errors():
    r = subprocess.run([sys.executable, "-m", "mldeploy", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("mldeploy ")
    r = subprocess.run([sys.executable, "-m", "mldeploy", "no-such-command"], capture_output=True, text=True)
    assert r.returncode == 2 and "No such command" in r.stderr


def test_the_callback_builds_one_session_on_the_typer_context(tmp_path, monkeypatch):
    """Global options land in one Session on ctx.obj; main() sees it (for --debug) through the Slot."""
    from mldeploy.cli import app as app_module
    from mldeploy.cli import main as main_module
    from mldeploy.cli.session import Session

    seen: list[Session] = []
    probe = typer.Typer()
    probe.callback()(app_module.main_options)

    @probe.command()
    def show(ctx: typer.Context) -> None:
        seen.append(Session.of(ctx))

    @probe.command()
    def other() -> None:
        pass

    monkeypatch.setattr(app_module, "app", probe)
    assert main_module.main(["--region", "eu-west-3", "--json", "-y", "show"]) == 0
    (session,) = seen
    assert session.options.region == "eu-west-3" and session.json and session.options.yes
    assert session.region == "eu-west-3"  # --region beats aws.region without loading any config


def test_session_settings_are_read_from_the_environment_once():
    from mldeploy.cli.session import Settings

    assert Settings.from_env({}) == Settings(ready_timeout_s=120.0, poll_s=None)
    assert Settings.from_env({"MLDEPLOY_READY_TIMEOUT": "5", "MLDEPLOY_POLL_S": "0.2"}) == Settings(5.0, 0.2)
