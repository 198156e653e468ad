"""The reporter lower layers get passed: progress lines, warnings, collapsible groups and live status.

Built once by the CLI (``cli.session.Session.ui``) and handed down explicitly; the terminal details (stderr
console, CI detection, GitHub annotations) live in :mod:`mldeploy.console`. Lower layers report through a
``Ui`` and return data; they never prompt and never write ``--json`` output (only ``cli/`` does).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
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


    @contextlib.contextmanager
    def progress(self, title: str, *, heartbeat_s: float = 30.0,
                 clock: Callable[[], float] | None = None, live: bool | None = None) -> Iterator[Progress]:
        """A long wait's progress: ``.update(line)`` with its state, ``.event(text)`` for each new thing that
        happened. On a terminal a rich live line updates in place (elapsed time ticking between updates; events
        print above it); in CI / off a terminal one line per change and at least every ``heartbeat_s``.
        ``clock`` and ``live`` are test seams (a fake clock; force either mode)."""
        clock = clock or time.monotonic
        if (self.interactive if live is None else live) and not self.quiet:
            view = LiveProgress(self.console, title, clock)
            with view:
                yield view
        else:
            yield LineProgress(self, title, clock, heartbeat_s)


class _NoStatus:
    def update(self, *_: Any, **__: Any) -> None:
        return None


class Progress:
    """What a wait reports through (``Ui.progress``): the state line and events; ``elapsed`` since it began."""

    def __init__(self, title: str, clock: Callable[[], float]) -> None:
        self.title, self.clock = title, clock
        self.t0 = clock()
        self.line = ""

    @property
    def elapsed(self) -> float:
        return self.clock() - self.t0

    def update(self, line: str) -> None:
        raise NotImplementedError

    def event(self, text: str) -> None:
        raise NotImplementedError


class LineProgress(Progress):
    """Off a terminal (CI logs): ``  12s line`` when the line changes or ``heartbeat_s`` passed since the last."""

    def __init__(self, ui: Ui, title: str, clock: Callable[[], float], heartbeat_s: float) -> None:
        super().__init__(title, clock)
        self.ui, self.heartbeat_s = ui, heartbeat_s
        self.printed_at: float | None = None
        ui.print(title, markup=False)

    def update(self, line: str) -> None:
        now = self.clock()
        if line != self.line or self.printed_at is None or now - self.printed_at >= self.heartbeat_s:
            self.ui.print(f"  {now - self.t0:5.0f}s {line}", markup=False, highlight=False, soft_wrap=True)
            self.printed_at = now
        self.line = line

    def event(self, text: str) -> None:
        self.ui.print(f"  {self.elapsed:5.0f}s event: {text}", markup=False, highlight=False, soft_wrap=True)


class LiveProgress(Progress):
    """On a terminal: a spinner line redrawn in place (rich ``Live``); events are printed above it and stay."""

    def __init__(self, console: Any, title: str, clock: Callable[[], float]) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        super().__init__(title, clock)
        self.console = console
        self._spinner = Spinner("dots", text=title)
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __rich__(self) -> Any:
        from rich.text import Text

        self._spinner.update(text=Text(f"{self.elapsed:4.0f}s {self.line or self.title}"))
        frame = self._spinner.render(self.console.get_time())
        if isinstance(frame, Text):  # one line, cut to the terminal's width: a wrapped live line redraws as two
            frame.no_wrap, frame.overflow = True, "ellipsis"
        return frame

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()  # transient: the live line goes; the last state stays as a plain line
        from rich.text import Text

        self.console.print(Text(f"  {self.elapsed:5.0f}s {self.line or self.title}"))

    def update(self, line: str) -> None:
        self.line = line
        self._live.refresh()

    def event(self, text: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(f"  {self.elapsed:5.0f}s event: {text}", style="dim"))


NULL_UI = Ui(quiet=True)
"""For library callers and unit tests that want no output."""
