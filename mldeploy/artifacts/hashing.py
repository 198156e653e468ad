"""SHA-256 and size of a model file or folder (a folder hashes its sorted relative paths and contents)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def _files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())


def sha256_path(path: Path) -> str:
    """Hex SHA-256 of a file, or of a folder's sorted ``relpath\\0content`` stream (stable across machines)."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in _files(path):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            _feed(h, f)
            h.update(b"\0")
    else:
        _feed(h, path)
    return h.hexdigest()


def _feed(h: hashlib._Hash, file: Path) -> None:
    with file.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def size_bytes(path: Path) -> int:
    """Bytes of a file, or the sum over a folder's files."""
    return sum(f.stat().st_size for f in _files(path)) if path.is_dir() else path.stat().st_size
