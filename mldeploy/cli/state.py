"""Deprecated: the global options moved to :class:`mldeploy.cli.session.Session` (passed on ``typer.Context``).

Only ``reset()`` is left, a no-op, for test helpers that still call it between in-process runs (there is no
process-wide CLI state any more). Delete this module once ``tests/release_helpers.py`` and
``tests/test_release_unit.py`` stop importing it.
"""

from __future__ import annotations


def reset() -> None:
    """Nothing to forget: every ``main()`` call builds a fresh Session."""
