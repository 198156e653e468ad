"""The classes and functions a pickle imports (GLOBAL / STACK_GLOBAL opcodes), read without executing it."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickletools
import zlib
from pathlib import Path
from typing import IO

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}


def pickle_globals(path: Path, limit: int = 256 * 1024 * 1024) -> list[tuple[str, str]] | None:
    """``(module, qualname)`` of every global the pickle in ``path`` loads, in file order and without repeats;
    what was read before an unreadable part (joblib's inline array bytes); None when nothing could be read.

    STACK_GLOBAL (protocol 4+) takes its module and name from the stack, where they arrive as strings or as memo
    references (``BINGET``) to strings pushed earlier, so the memo is followed for strings.
    """
    if not path.is_file() or path.stat().st_size > limit:
        return None
    found: dict[tuple[str, str], None] = {}
    memo: dict[int, str | None] = {}
    recent: list[str | None] = []  # the last values pushed (strings, or None for anything else)
    try:
        with _open(path) as fh:
            for op, arg, _ in pickletools.genops(fh):
                name = op.name
                if name in _STRINGS:
                    recent.append(arg if isinstance(arg, str) else None)
                elif name in _PUTS:
                    memo[int(arg)] = recent[-1] if recent else None
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name in _GETS:
                    recent.append(memo.get(int(arg)))
                elif name == "GLOBAL":
                    module, _, qualname = str(arg).partition(" ")
                    found[(module, qualname)] = None
                    recent.append(None)
                elif name == "STACK_GLOBAL":
                    module, qualname = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
                    if module and qualname:
                        found[(module, qualname)] = None
                    recent.append(None)
                elif name == "STOP":
                    break
                elif op.stack_after:  # anything else that pushes: not a string
                    recent.append(None)
                del recent[:-2]
    except (ValueError, EOFError, OSError, zlib.error, lzma.LZMAError):
        pass
    return list(found) or None


class _ZlibReader(io.RawIOBase):
    """A zlib stream (``joblib.dump(..., compress=N)``'s default) read incrementally."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.z, self.buf = raw, zlib.decompressobj(), b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.buf and not self.z.eof:
            chunk = self.raw.read(1 << 16)
            self.buf = self.z.decompress(chunk) if chunk else self.z.flush()
            if not chunk:
                break
        n = min(len(b), len(self.buf))
        b[:n], self.buf = self.buf[:n], self.buf[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _NoTell:
    """read/readline only: genops asks a stream with ``tell`` for positions, which a zlib stream cannot give."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.read, self.readline, self._fh = fh.read, fh.readline, fh

    def __enter__(self) -> _NoTell:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _open(path: Path) -> IO[bytes] | _NoTell:
    """The pickle stream in ``path``: plain, or joblib's zlib/gzip/bz2/xz compression."""
    with path.open("rb") as fh:
        head = fh.read(6)
    if head[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if head[:3] == b"BZh":
        return bz2.open(path, "rb")
    if head.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")
    if len(head) > 1 and head[0] & 0x0F == 8 and (head[0] * 256 + head[1]) % 31 == 0:  # RFC 1950 header
        return _NoTell(io.BufferedReader(_ZlibReader(path.open("rb"))))
    return path.open("rb")


def pickle_modules(path: Path) -> set[str] | None:
    """The modules the pickle's globals come from (``numpy.core.multiarray``, ``sklearn.pipeline``, …)."""
    found = pickle_globals(path)
    return None if found is None else {module for module, _ in found}
