"""CLI wiring: lazy imports, global-option hoisting, exit codes, version."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from mldeploy.cli.main import hoist_global_options

HEAVY = ("boto3", "botocore", "docker", "torch", "onnx", "onnxruntime", "sklearn", "numpy", "fastapi",
         "tensorflow", "uvicorn", "jinja2", "pydantic")


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from mldeploy.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-500:]
    for command in ("init", "validate", "up", "schema"):
        assert command in r.stdout


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
