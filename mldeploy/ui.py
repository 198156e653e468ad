"""The reporter lower layers get passed: progress lines, warnings, collapsible groups and live status.

Built once by the CLI (``cli.session.Session.ui``) and handed down explicitly; the terminal details (stderr
console, CI detection, GitHub annotations) live in :mod:`mldeploy.console`. Lower layers report through a
``Ui`` and return data; they never prompt and never write ``--json`` output (only ``cli/`` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from mldeploy import console as terminal


class Ui:
    """Human-facing progress on stderr. ``quiet`` drops info/success lines (warnings still show)."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    @property
    def console(self) -> Any:
        """The rich console (stderr) for tables and live displays."""
        return terminal.console

    @property
    def interactive(self) -> bool:
        """A terminal is attached and this is not CI: spinners and live displays are fine."""
        return terminal.interactive()

    def info(self, message: str) -> None:
        if not self.quiet:
            terminal.info(message)

    def success(self, message: str) -> None:
        if not self.quiet:
            terminal.success(message)

    def warn(self, message: str) -> None:
        terminal.warn(message)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.quiet:
            terminal.console.print(*objects, **kwargs)

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A ``::group::`` in GitHub Actions logs, a rule on a terminal."""
        with terminal.group(title):
            yield

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[Any]:
        """A spinner with a line that ``.update(text)`` replaces (a no-op object off a terminal)."""
        if self.interactive and not self.quiet:
            with terminal.console.status(text) as live:
                yield live
        else:
            yield _NoStatus()


class _NoStatus:
    def update(self, *_: Any, **__: Any) -> None:
        return None


NULL_UI = Ui(quiet=True)
"""For library callers and unit tests that want no output."""
