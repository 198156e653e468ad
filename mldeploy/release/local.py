"""Release management for ``--target local``: the runtime's in-process version routing.

The local server runs with ``MLDEPLOY_MODELS_DIR`` (one packaged artifact folder per model version) and
re-reads ``routing.json`` — ``{"weights": {"1.0.0": 90, "1.1.0": 10}}`` — when it changes. canary / promote /
rollback write that file (atomically: the server never sees half a file). Which version is stable or canary,
and the local history, live in ``.mldeploy/<env>/release-local.json`` (local disk is fine for a local server).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.release.history import now_iso
from mldeploy.release.transitions import (
    CanaryMove,
    ReleaseState,
    TransitionError,
    check_promote,
    check_rollback_to,
    plan_canary,
)

if TYPE_CHECKING:
    from mldeploy.config import Project

ROUTING_FILE = "routing.json"
STATE_FILE = "release-local.json"
MODELS_DIR_ENV = "MLDEPLOY_MODELS_DIR"


def models_dir(project: Project) -> Path:
    """``$MLDEPLOY_MODELS_DIR``, else ``.mldeploy/<env>/models`` next to mldeploy.yaml."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else project.root / ".mldeploy" / project.env / "models"


def _state_path(project: Project) -> Path:
    return project.root / ".mldeploy" / project.env / STATE_FILE


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, so a reader sees the old or the new file, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise TransitionError(f"{path} is not valid JSON ({e})", hint="fix or delete the file") from e


def versions(project: Project) -> list[str]:
    root = models_dir(project)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "model.json").exists()) \
        if root.is_dir() else []


def read_routing(project: Project) -> dict[str, int]:
    doc = _read_json(models_dir(project) / ROUTING_FILE)
    return {str(k): int(v) for k, v in (doc.get("weights") or {}).items()}


def write_routing(project: Project, weights: dict[str, int]) -> None:
    path = models_dir(project) / ROUTING_FILE
    doc = _read_json(path)  # keep other keys (sticky_header …)
    doc["weights"] = weights
    _write_json(path, doc)


def _load(project: Project) -> dict[str, Any]:
    data = _read_json(_state_path(project))
    data.setdefault("stable", None)
    data.setdefault("canary", None)
    data.setdefault("history", [])
    return data


def _save(project: Project, data: dict[str, Any], action: str, version: str | None, percent: int | None,
          outcome: str, reason: str | None = None) -> dict[str, Any]:
    from mldeploy.gitinfo import git_commit
    from mldeploy.release.context import local_user

    record = {"id": len(data["history"]) + 1, "action": action, "version": version, "percent": percent,
              "outcome": outcome, "started_at": now_iso(), "actor": local_user(),
              "git_commit": git_commit(str(project.root)), "reason": reason}
    data["history"].append(record)
    _save_state(project, data)
    return record


def _save_state(project: Project, data: dict[str, Any]) -> None:
    _write_json(_state_path(project), data)


def _state(project: Project, data: dict[str, Any]) -> ReleaseState:
    weights = read_routing(project)
    canary = data["canary"]
    total = sum(weights.values())
    percent = round(100 * weights.get(canary, 0) / total) if canary and total else (0 if canary else None)
    return ReleaseState(target=f"the local models folder {models_dir(project)}", stable=data["stable"],
                        canary=canary, canary_percent=percent)


def ensure_version(project: Project) -> str:
    """The current model packaged into ``<models dir>/<model.version>`` (done once per version)."""
    version = project.config.model.version
    dest = models_dir(project) / version
    if (dest / "model.json").exists():
        return version
    from mldeploy.artifacts import package

    result = package(project)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{version}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(result.dir, tmp)
    os.replace(tmp, dest)
    console.info(f"packaged {project.config.model.path} as version {version} into {dest}")
    return version


def _summary(project: Project, data: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    state = _state(project, data)
    return {"target": "local", "models_dir": str(models_dir(project)), "weights": read_routing(project),
            "stable": {"version": state.stable},
            "canary": {"version": state.canary, "percent": state.canary_percent} if state.canary else None,
            "record": record}


def canary(project: Project, percent: int) -> dict[str, Any]:
    data = _load(project)
    version = project.config.model.version
    if data["stable"] is None:  # first use: the only version in the models folder becomes stable
        ensure_version(project)
        present = versions(project)
        data["stable"] = present[0] if len(present) == 1 else None
        if data["stable"]:
            write_routing(project, {data["stable"]: 100})
            _save(project, data, "up", data["stable"], None, "succeeded", "first version in the models folder")
            if data["stable"] == version:
                raise TransitionError(
                    f"{version} is now the stable local version ({models_dir(project) / version}): there is no "
                    "other version to canary yet",
                    hint=f"serve it with MLDEPLOY_MODELS_DIR={models_dir(project)}; to canary a new model, bump "
                         "model.version and run `mldeploy canary --target local` again")
    move = plan_canary(_state(project, data), version, percent)
    if move is CanaryMove.start:
        ensure_version(project)
        data["canary"] = version
    write_routing(project, {data["stable"]: 100 - percent, data["canary"]: percent})
    record = _save(project, data, "canary", data["canary"], percent, "active")
    console.success(f"local canary {data['canary']} takes {percent}% (stable {data['stable']}); "
                    f"{models_dir(project) / ROUTING_FILE} updated")
    if move is CanaryMove.start:
        console.info("[dim]a running server loads model versions at start: restart it if it does not serve "
                     f"{data['canary']} yet[/dim]")
    return _summary(project, data, record)


def promote(project: Project) -> dict[str, Any]:
    data = _load(project)
    check_promote(_state(project, data))
    data["stable"], data["canary"] = data["canary"], None
    write_routing(project, {data["stable"]: 100})
    record = _save(project, data, "promote", data["stable"], 100, "succeeded")
    console.success(f"promoted {data['stable']} locally: 100% of traffic")
    return _summary(project, data, record)


def rollback(project: Project, to: str | None = None) -> dict[str, Any]:
    data = _load(project)
    state = _state(project, data)
    check_rollback_to(state, to)
    if state.canary_active:
        removed, data["canary"] = data["canary"], None
        write_routing(project, {data["stable"]: 100})
        record = _save(project, data, "rollback", data["stable"], 0, "succeeded", f"canary {removed} removed")
        console.success(f"local canary {removed} rolled back: {data['stable']} serves 100%")
        return _summary(project, data, record)
    lineage: list[str] = []
    for r in data["history"]:  # the same stack rule as on AWS (history.stable_lineage)
        if r["outcome"] != "succeeded" or r["action"] not in ("up", "promote", "rollback") or not r["version"]:
            continue
        if r["action"] == "rollback" and r["version"] in lineage:
            del lineage[lineage.index(r["version"]) + 1:]
        elif not lineage or lineage[-1] != r["version"]:
            lineage.append(r["version"])
    if to is not None:
        if to not in versions(project):
            raise TransitionError(f"version {to} is not in {models_dir(project)}",
                                  hint="available: " + (", ".join(versions(project)) or "none"))
        target = to
    elif len(lineage) < 2:
        raise TransitionError(f"no earlier local version to roll back to (stable is {data['stable']})",
                              hint="`mldeploy history --target local` lists what was deployed")
    else:
        target = lineage[-2]
    if target == data["stable"]:
        raise TransitionError(f"{target} is already the stable local version")
    previous, data["stable"] = data["stable"], target
    write_routing(project, {target: 100})
    record = _save(project, data, "rollback", target, None, "succeeded", f"from {previous}")
    console.success(f"rolled back locally from {previous} to {target}")
    return _summary(project, data, record)


def history(project: Project) -> list[dict[str, Any]]:
    return list(_load(project)["history"])
