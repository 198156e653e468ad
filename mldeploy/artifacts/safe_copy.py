"""Copying a user's folder without following a symlink out of it.

``shutil.copytree`` (and every walk that opens files) follows symlinks, so a link inside a folder the user hands us
— ``model.code_paths`` packages, a SavedModel folder, an artifact folder uploaded to S3 — to ``~/.aws`` or ``/``
would put the target's files into the image or the bucket. ``check_links`` refuses, naming the link and its target,
every link that resolves outside ``base``, dangles, or points back at a folder it is in (a loop); links that stay
inside are followed (copied as plain files), as before.
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from mldeploy.errors import ArtifactError

Refuse = Callable[[str], ArtifactError]
"""Builds the error from the problem (``"the symlink … points to …"``): the caller names the field and the entry."""


def check_links(base: Path, folder: Path, refuse: Refuse, skip: Iterable[str] = (),
                within: str = "the project folder", _chain: frozenset[Path] | None = None) -> None:
    """Every symlink under ``folder`` (followed, as copying follows them) resolves to an existing path inside
    ``base`` and no folder link points back at a folder it is in; names matching a ``skip`` pattern are not copied,
    so not checked; ``within`` names ``base`` in the message."""
    skip = tuple(skip)
    base = base.resolve()
    chain = _chain if _chain is not None else frozenset({folder.resolve()})
    for child in sorted(folder.iterdir()):
        if any(fnmatch.fnmatchcase(child.name, p) for p in skip):
            continue
        if child.is_symlink():
            try:
                target = child.resolve(strict=False)
            except RuntimeError:  # Python < 3.13 raises on a symlink loop (a → b → a)
                raise refuse(f"the symlink {child} loops (it resolves to itself)") from None
            if not target.exists():
                raise refuse(f"the symlink {child} points to {target}, which does not exist")
            if not target.is_relative_to(base):
                raise refuse(f"the symlink {child} points to {target}, outside {within} {base}")
            if target in chain:
                raise refuse(f"the symlink {child} points back to {target}, a folder it is in (a loop)")
        if child.is_dir():
            check_links(base, child, refuse, skip, within, chain | {child.resolve()})


def copy_tree(src: Path, dest: Path, base: Path, refuse: Refuse, skip: Iterable[str] = (),
              within: str = "the project folder") -> None:
    """``check_links`` then copy ``src`` to ``dest`` (links inside ``base`` become plain files and folders)."""
    check_links(base, src, refuse, skip, within)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*skip) if skip else None)
