"""Terminal output: one rich console, CI awareness, JSON mode and GitHub Actions integration.

Human-readable progress goes to stderr; machine-readable results (``--json``) go to stdout, so
``mldeploy plan --json | jq`` works while progress stays visible.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console


def in_ci() -> bool:
    """True when running under a CI system (no prompts, no spinners, no colours)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"} or in_github_actions()


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS", "").lower() == "true"


def _make_console(stderr: bool) -> Console:
    ci = in_ci()
    return Console(
        stderr=stderr,
        no_color=ci or bool(os.environ.get("NO_COLOR")),
        force_terminal=False if ci else None,
        highlight=False,
        width=120 if ci else None,
    )


console = _make_console(stderr=True)
"""Progress, tables and messages for humans (stderr)."""

out = _make_console(stderr=False)
"""Primary results (stdout)."""


def interactive() -> bool:
    """True when prompts and live displays are appropriate."""
    return sys.stdin.isatty() and console.is_terminal and not in_ci()


def info(msg: str) -> None:
    console.print(msg)


def success(msg: str) -> None:
    console.print(f"[green]✓[/green] {msg}")


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {msg}")
    if in_github_actions():
        print(f"::warning::{_escape(msg)}", file=sys.stderr)


def error(msg: str, hint: str | None = None) -> None:
    from rich.markup import escape  # messages name things like model.inputs[0] and 'mldeploy[torch]'

    console.print(f"[red bold]error:[/red bold] {escape(msg)}", markup=True, soft_wrap=True)
    if hint:
        console.print(f"[dim]hint:[/dim] {escape(hint)}")


def emit_json(data: Any) -> None:
    """Write a JSON document to stdout (used by ``--json``)."""
    import orjson

    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def _escape(value: str) -> str:
    """Escape a GitHub workflow-command value."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(value: str) -> str:
    return _escape(value).replace(":", "%3A").replace(",", "%2C")


def _workspace_relative(file: str) -> str:
    """GitHub places annotations by paths relative to the repository root (``$GITHUB_WORKSPACE``), while
    mldeploy names files relative to the working directory (a workflow may ``cd`` into a sub-folder)."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return file
    from pathlib import Path

    try:
        return Path(file).resolve().relative_to(Path(workspace).resolve()).as_posix()
    except (ValueError, OSError):
        return file


def gh_annotation(level: str, message: str, file: str | None = None, line: int | None = None,
                  col: int | None = None) -> None:
    """Emit a GitHub Actions annotation (``::error file=…,line=…::msg``) when running in Actions."""
    if not in_github_actions():
        return
    props = []
    if file:
        props.append(f"file={_escape_prop(_workspace_relative(file))}")
    if line:
        props.append(f"line={line}")
    if col:
        props.append(f"col={col}")
    head = f"::{level} {','.join(props)}::" if props else f"::{level}::"
    print(f"{head}{_escape(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible ``::group::`` section in GitHub Actions logs, a rule elsewhere."""
    if in_github_actions():
        print(f"::group::{title}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            print("::endgroup::", file=sys.stderr, flush=True)
    else:
        console.rule(f"[bold]{title}", align="left")
        yield


def set_outputs(values: dict[str, Any]) -> None:
    """Append ``key=value`` lines to ``$GITHUB_OUTPUT`` (no-op outside Actions)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    import uuid

    with open(path, "a", encoding="utf-8") as fh:
        for key, value in values.items():
            if value is None:
                continue
            text = str(value)
            if "\n" in text:
                delim = f"mldeploy_{uuid.uuid4().hex}"
                fh.write(f"{key}<<{delim}\n{text}\n{delim}\n")
            else:
                fh.write(f"{key}={text}\n")


def add_summary(markdown: str) -> None:
    """Append markdown to ``$GITHUB_STEP_SUMMARY`` (no-op outside Actions)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip() + "\n\n")
