"""``model.code_paths``: the user's own modules a pickled model's classes live in, shipped with the server.

Each entry is a module file (``features.py``) or a package folder (``src/mypkg``) relative to ``mldeploy.yaml``.
``package`` imports them from their parent folders; the image copies them to ``/app/code`` (on ``PYTHONPATH``);
``serve`` and ``bench --local`` put the parent folders on ``sys.path``.

Everything shipped stays inside the project folder: an entry, or a symlink anywhere in a package folder, that
resolves outside it (or dangles, or loops back into its own folder) is refused (``safe_copy.check_links``) —
copying follows symlinks, so a link to ``~/.aws`` or ``/`` would otherwise put the target's files into the image.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from mldeploy.artifacts.safe_copy import check_links
from mldeploy.errors import ArtifactError, ExitCode

FIELD = "model.code_paths"
IMAGE_DIR = "/app/code"
SKIP = ("__pycache__", "*.pyc", ".env", ".env.*")
"""Never copied (``copy_into``), so never checked either."""


def _refuse(entry: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{FIELD}: {entry}: {problem}",
                         hint="keep the modules inside the project folder (the folder of mldeploy.yaml): copy the "
                         "file there instead of linking to it", exit_code=ExitCode.CONFIG)


def resolve(root: Path, entries: list[str]) -> list[Path]:
    """The entries as existing paths under ``root``; an ArtifactError naming the entry otherwise."""
    out: list[Path] = []
    base = root.resolve()
    for entry in entries:
        path = (root / entry).resolve()
        if path.is_file() and path.suffix == ".py" or path.is_dir() and any(path.glob("*.py")):
            if not path.is_relative_to(base):
                raise _refuse(entry, f"resolves to {path}, outside the project folder {base} (a symlink)")
            if path.is_dir():
                check_links(base, path, lambda problem, e=entry: _refuse(e, problem), SKIP)
            out.append(path)
            continue
        what = "does not exist" if not path.exists() else "is not a .py file or a folder of .py files"
        raise ArtifactError(f"{FIELD}: {entry} {what} (resolved to {path})",
                            hint="list module files (features.py) or package folders (src/mypkg) relative to "
                            "mldeploy.yaml", exit_code=ExitCode.CONFIG)
    return out


def module_names(paths: list[Path]) -> set[str]:
    """The top-level module each path provides: ``features.py`` → ``features``, ``src/mypkg`` → ``mypkg``."""
    return {p.stem if p.is_file() else p.name for p in paths}


def import_dirs(paths: list[Path]) -> list[Path]:
    """The folders to put on ``sys.path`` so that each path imports under its own name (no repeats)."""
    return list(dict.fromkeys(p.parent for p in paths))


@contextlib.contextmanager
def importable(paths: list[Path]) -> Iterator[None]:
    """``paths`` importable for the duration (``package`` loading a pickle that needs them)."""
    added = [str(d) for d in import_dirs(paths) if str(d) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for d in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(d)


def copy_into(paths: list[Path], dest: Path) -> None:
    """Copy each module file / package folder into ``dest`` under its own name (the image's ``code/``)."""
    dest.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns(*SKIP)
    for p in paths:
        if p.is_file():
            shutil.copy2(p, dest / p.name)
        else:
            shutil.copytree(p, dest / p.name, ignore=skip)


def main_module_diagnosis(globals_: list[tuple[str, str]] | None) -> tuple[str, str] | None:
    """``(problem, hint)`` when a pickle references classes defined in ``__main__`` (the training script), which
    no server can import; None otherwise."""
    main = sorted({name for module, name in globals_ or () if module == "__main__"})
    if not main:
        return None
    names, one = ", ".join(main), len(main) == 1
    return (f"it references {'class' if one else 'classes'} {names} from module __main__ (the script that saved it), "
            f"so only that script can load it: {'the class' if one else 'they'} must live in an importable module",
            f"move {names} into a module next to mldeploy.yaml (e.g. features.py), import {'it' if one else 'them'} "
            "from there in the training script and save the model again, then add `code_paths: [features.py]` "
            f"under `model:` so that the image ships the module ({IMAGE_DIR}, on the server's sys.path)")
