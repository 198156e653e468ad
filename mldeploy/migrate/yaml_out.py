"""Write a config dict as block YAML with a trailing comment on the lines that have one.

PyYAML (what the project parses with) cannot emit comments, so this small writer does: maps in block style, scalars
and lists as JSON (valid YAML, always quoted where needed), the comment after the value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_PLAIN_KEY = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _key(key: str) -> str:
    text = str(key)
    return text if text and set(text) <= _PLAIN_KEY and not text[0].isdigit() and text not in (
        "true", "false", "null", "yes", "no", "on", "off", "y", "n") else json.dumps(text)


def dump(data: Mapping[str, Any], comments: Mapping[tuple[str, ...], str], header: str = "") -> str:
    """``data`` as YAML; ``comments[path]`` follows the line of the value at ``path``."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    _emit(data, (), 0, comments, lines)
    return "\n".join(lines) + "\n"


def _emit(data: Mapping[str, Any], path: tuple[str, ...], depth: int, comments: Mapping[tuple[str, ...], str],
          lines: list[str]) -> None:
    pad = "  " * depth
    for key, value in data.items():
        here = (*path, str(key))
        note = comments.get(here)
        suffix = f"  # {note}" if note else ""
        if isinstance(value, Mapping) and value:
            lines.append(f"{pad}{_key(key)}:{suffix}")
            _emit(value, here, depth + 1, comments, lines)
        else:
            lines.append(f"{pad}{_key(key)}: {json.dumps(value if not isinstance(value, Mapping) else {})}{suffix}")
