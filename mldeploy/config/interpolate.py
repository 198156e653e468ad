"""``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?message}`` interpolation of string values (``$${`` escapes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-|:\?)([^}]*))?\}")


class MissingVariable(ValueError):
    def __init__(self, path: tuple, name: str, message: str | None = None) -> None:
        self.path, self.name = path, name
        super().__init__(message or f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")


def interpolate(value: Any, env: Mapping[str, str], path: tuple = ()) -> Any:
    """Return ``value`` with environment references in every string replaced."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", "-"):
            if current is None or (op == ":-" and current == ""):
                return arg or ""
            return current
        if current is None or current == "":
            raise MissingVariable(path, name, f"environment variable {name} is required: {arg}" if op else None)
        return current

    return _PATTERN.sub(repl, value)
