"""AWS Copilot "Load Balanced Web Service" manifest → mldeploy config, as data.

Pure: manifest dicts in, a ``Migration`` out (the config dict, one ``Row`` per Copilot field, and the comment each
written mldeploy field gets). Every leaf of the manifest ends up in a row: mapped, or not carried with the reason —
nothing is dropped silently. The sections are mapped by ``copilot_service`` (the service manifest) and
``copilot_env`` (environment manifests); this module turns ``environments:`` overrides into mldeploy overlays.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mldeploy.migrate.copilot_env import map_environment
from mldeploy.migrate.copilot_model import (
    LBWS,
    MAPPED,
    MODEL_PLACEHOLDER,
    NEEDS_INPUT,
    NOT_NEEDED,
    UNSUPPORTED,
    Mapper,
    Migration,
    MigrationError,
    Row,
    deep_merge,
    leaves,
    seconds,
)
from mldeploy.migrate.copilot_service import map_service

__all__ = ["LBWS", "MAPPED", "MODEL_PLACEHOLDER", "NEEDS_INPUT", "NOT_NEEDED", "UNSUPPORTED", "Migration",
           "MigrationError", "Row", "convert", "leaves", "seconds"]


def convert(manifest: Mapping[str, Any], env_manifests: Mapping[str, Mapping[str, Any]] | None = None, *,
            model_path: str | None = None, name: str | None = None, app: str | None = None,
            account: str | None = None, region: str | None = None) -> Migration:
    """Map a Load Balanced Web Service manifest (and the workspace's environment manifests) to an mldeploy config.

    ``environments:`` overrides and environment manifests become mldeploy overlays (``environments.<env>``) that
    hold only what differs from the top level. ``account``/``region`` complete SSM parameter and Secrets Manager
    names into ARNs; without them the ARN reads them from ``${AWS_ACCOUNT_ID}``/``${AWS_REGION}`` at load time.
    ``app`` (the Copilot application, copilot/.workspace) resolves ``${COPILOT_APPLICATION_NAME}``.
    """
    env_manifests = env_manifests or {}
    kind = manifest.get("type")
    if kind != LBWS:
        raise MigrationError("type", f"{kind!r} is not a {LBWS!r}: mldeploy runs one ECS Fargate service behind an "
                             "Application Load Balancer, which is what a Copilot Load Balanced Web Service is")
    service = {k: v for k, v in manifest.items() if k != "environments"}
    base = map_service(service, name=name, model_path=model_path, app=app, account=account, region=region)
    result = Migration(base.config, list(base.rows), dict(base.comments))
    overrides = manifest.get("environments") or {}
    if not isinstance(overrides, Mapping):
        raise MigrationError("environments", "must be a map of environment name → overrides")
    for env in sorted(set(overrides) | set(env_manifests)):
        override = overrides.get(env) or {}
        if not isinstance(override, Mapping):
            raise MigrationError(f"environments.{env}", "must be a map of overrides")
        try:
            merged = map_service(deep_merge(service, override), name=name, model_path=model_path, env=env,
                                  app=app, account=account, region=region)
        except MigrationError as e:  # the value the override set, or the base one it no longer fits
            raise MigrationError(f"environments.{env}.{e.field}", e.message) from e
        if env in env_manifests:
            map_environment(merged, env_manifests[env], env, service, override)
        _add_overlay(result, base, merged, env)
    return result


def _add_overlay(result: Migration, base: Mapper, env_map: Mapper, env: str) -> None:
    """What differs from the top level, as ``environments.<env>``, with its rows and comments."""
    overlay = _diff(env_map.config, base.config)
    overlay.pop("name", None)
    overlay.pop("model", None)
    result.config.setdefault("environments", {})[env] = overlay
    known = set(base.rows)
    for row in env_map.rows:
        if row in known:
            continue
        src = row.copilot if row.copilot.startswith("env ") else f"environments.{env}.{row.copilot}"
        target = f"environments.{env}.{row.mldeploy}" if row.mldeploy else None
        result.rows.append(Row(src, target, row.status, row.note))
    for path, text in env_map.comments.items():
        if _has(overlay, path):
            rest = text.removeprefix("copilot: ")
            if not rest.startswith(("env ", "--")):
                rest = f"environments.{env}.{rest}"
            result.comments[("environments", env, *path)] = f"copilot: {rest}"


def _has(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _diff(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(old.get(key), Mapping):
            sub = _diff(value, old[key])
            if sub:
                out[key] = sub
        elif key not in old or old[key] != value:
            out[key] = copy.deepcopy(value)
    return out
