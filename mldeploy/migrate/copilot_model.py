"""The data of a Copilot migration: rows, the result, the error, and the small parsers the mapping shares."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LBWS = "Load Balanced Web Service"
MODEL_PLACEHOLDER = "TODO-set-model-path"
"""``model.path`` when no ``--model`` is given: ``validate`` refuses it (the path does not exist)."""

MAPPED, UNSUPPORTED, NOT_NEEDED, NEEDS_INPUT = "mapped", "unsupported", "not needed", "needs input"

# Copilot's defaults when the manifest omits cpu/memory/count (aws/copilot-cli internal/pkg/manifest/lb_web_svc.go,
# newDefaultHTTPLoadBalancedWebService: CPU aws.Int(256), Memory aws.Int(512), Count Value aws.Int(1)): the service
# ran with them, so they are carried, not mldeploy's own defaults.
COPILOT_CPU, COPILOT_MEMORY, COPILOT_COUNT = 256, 512, 1


class MigrationError(ValueError):
    """A manifest value mldeploy cannot take; ``field`` is the dotted Copilot field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Row:
    """One Copilot field and what became of it."""

    copilot: str
    mldeploy: str | None  # the dotted mldeploy field, None when not carried
    status: str  # MAPPED, UNSUPPORTED, NOT_NEEDED or NEEDS_INPUT
    note: str = ""


@dataclass
class Migration:
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    comments: dict[tuple[str, ...], str] = field(default_factory=dict)  # config path → "copilot: <field>"

    def source_of(self, mldeploy_field: str) -> str | None:
        """The Copilot field an mldeploy field (dotted, e.g. ``environments.test.aws.memory``) came from."""
        for row in self.rows:
            if row.mldeploy and (row.mldeploy == mldeploy_field or mldeploy_field.startswith(row.mldeploy + ".")):
                return row.copilot
        for row in self.rows:  # a section-level problem (aws.health_check): the first field carried into it
            if row.mldeploy and row.mldeploy.startswith(mldeploy_field + "."):
                return row.copilot
        return None


# ----------------------------------------------------------------------------------------------- small parsers

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(value: Any, where: str) -> int:
    """A Copilot duration (Go's ``time.ParseDuration`` form: ``15s``, ``2m``, ``1m30s``) in whole seconds."""
    if isinstance(value, bool):
        raise MigrationError(where, f"{value!r} is not a duration like 30s or 2m")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise MigrationError(where, f"{value!r} is not a duration like 30s, 2m or 1m30s")
    total = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if total != int(total):
        raise MigrationError(where, f"{value!r} is not a whole number of seconds (mldeploy counts seconds)")
    return int(total)


def whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise MigrationError(where, f"{value!r} is not a whole number")
    return int(value)


def count_range(value: Any, where: str) -> tuple[int, int, int | None]:
    """``count.range``: ``"1-10"`` or ``{min, max, spot_from}`` → (min, max, spot_from)."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
        if not m:
            raise MigrationError(where, f"{value!r} is not a range like 1-10")
        return int(m.group(1)), int(m.group(2)), None
    if isinstance(value, Mapping) and "min" in value and "max" in value:
        spot = value.get("spot_from")
        return (whole(value["min"], f"{where}.min"), whole(value["max"], f"{where}.max"),
                None if spot is None else whole(spot, f"{where}.spot_from"))
    raise MigrationError(where, f"{value!r} is not a range like 1-10 or {{min: 1, max: 10}}")


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Copilot's environment override: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaves(data: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (scalars and lists count as leaves; an empty map is one)."""
    if isinstance(data, Mapping) and data:
        return [p for k, v in data.items() for p in leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix] if prefix else []


# --------------------------------------------------------------------------------------------------- the mapper


class Mapper:
    """Collects config values, rows and comments; ``done`` marks Copilot fields that have a row."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.rows: list[Row] = []
        self.comments: dict[tuple[str, ...], str] = {}
        self.done: set[str] = set()

    def put(self, target: str, value: Any, source: str, note: str = "") -> None:
        node = self.config
        *parents, last = target.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        self.comments[tuple(target.split("."))] = f"copilot: {source}" + (f" ({note})" if note else "")
        self.rows.append(Row(source, target, MAPPED, show(value) + (f" ({note})" if note else "")))
        self.done.add(source)

    def skip(self, source: str, status: str, why: str) -> None:
        self.rows.append(Row(source, None, status, why))
        self.done.add(source)

    def covered(self, path: str) -> bool:
        return any(path == d or path.startswith(d + ".") for d in self.done)


def show(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {show(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(show, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


ENV_VAR = "${COPILOT_ENVIRONMENT_NAME}"


def predefined(value: Any, subs: Mapping[str, str]) -> Any:
    """Copilot's predefined manifest variables resolved (manifest-env-var.en.md: "Copilot will substitute
    ${COPILOT_APPLICATION_NAME} and ${COPILOT_ENVIRONMENT_NAME} with the names of the application and the
    environment where the workload is deployed"); other ``${VAR}`` stay, mldeploy interpolates them the same way."""
    if isinstance(value, Mapping):
        return {k: predefined(v, subs) for k, v in value.items()}
    if isinstance(value, list):
        return [predefined(v, subs) for v in value]
    if isinstance(value, str):
        for var, text in subs.items():
            value = value.replace("${" + var + "}", text)
    return value
