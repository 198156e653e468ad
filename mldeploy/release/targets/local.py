"""``--target local``: the runtime's in-process version routing as a ``ReleaseTarget``.

The local server runs with ``MLDEPLOY_MODELS_DIR`` (one packaged artifact folder per model version) and
re-reads ``routing.json`` — ``{"weights": {"1.0.0": 90, "1.1.0": 10}}`` — when it changes. The operations write
that file atomically (the server never sees half a file). Which version is stable or canary lives in
``.mldeploy/<env>/release-local.json`` next to the local history (``stores.LocalHistory``). Refs are versions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.release.history import Outcome, Record
from mldeploy.release.state import TransitionError
from mldeploy.release.stores import STATE_FILE, read_state, write_state
from mldeploy.release.targets.base import Deployable, Snapshot
from mldeploy.workspace import Workspace, atomic_write_json, read_json

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.release.history import HistoryStore
    from mldeploy.ui import Ui

ROUTING_FILE = "routing.json"


class LocalTarget:
    """Model versions in the workspace's models folder, weighted by ``routing.json``."""

    observable = False
    shift_records = True
    stable_name = "the local server"
    canary_name = "the local canary"
    earlier = "local version"

    def __init__(self, project: Project, ui: Ui) -> None:
        self.project = project
        self.ui = ui
        workspace = Workspace.of(project)
        self.models_dir = workspace.models_dir
        self.state_path = workspace.path(STATE_FILE)

    # ----------------------------------------------------------------------------------------- files

    @property
    def routing_path(self) -> Path:
        return self.models_dir / ROUTING_FILE

    def versions(self) -> list[str]:
        root = self.models_dir
        return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "model.json").exists()) \
            if root.is_dir() else []

    def _routing_doc(self) -> dict[str, Any]:
        try:
            doc = read_json(self.routing_path)
        except ValueError as e:
            raise TransitionError(f"{self.routing_path} is not valid JSON ({e})", hint="fix or delete the file") from e
        return doc if isinstance(doc, dict) else {}

    def read_routing(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in (self._routing_doc().get("weights") or {}).items()}

    def write_routing(self, weights: dict[str, int]) -> None:
        doc = self._routing_doc()  # keep other keys (sticky_header …)
        doc["weights"] = weights
        atomic_write_json(self.routing_path, doc)

    def _set(self, **roles: str | None) -> None:
        data = read_state(self.state_path)
        data.update(roles)
        write_state(self.state_path, data)

    def ensure_version(self) -> str:
        """The current model packaged into ``<models dir>/<model.version>`` (done once per version)."""
        version = self.project.config.model.version
        dest = self.models_dir / version
        if (dest / "model.json").exists():
            return version
        from mldeploy.artifacts import package

        result = package(self.project)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{version}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(result.dir, tmp)
        os.replace(tmp, dest)
        self.ui.info(f"packaged {self.project.config.model.path} as version {version} into {dest}")
        return version

    def adopt_stable(self, history: HistoryStore) -> None:
        """First use: the only version in the models folder becomes stable (recorded as ``up``).

        Raises when that version is the current model (there is nothing to canary yet).
        """
        if read_state(self.state_path)["stable"] is not None:
            return
        version = self.project.config.model.version
        self.ensure_version()
        present = self.versions()
        if len(present) != 1:
            return
        stable = present[0]
        self._set(stable=stable)
        self.write_routing({stable: 100})
        history.add(Record(action="up", version=stable, outcome=Outcome.succeeded,
                           reason="first version in the models folder"))
        if stable == version:
            raise TransitionError(
                f"{version} is now the stable local version ({self.models_dir / version}): there is no "
                "other version to canary yet",
                hint=f"serve it with MLDEPLOY_MODELS_DIR={self.models_dir}; to canary a new model, bump "
                     "model.version and run `mldeploy canary --target local` again")

    # -------------------------------------------------------------------------------------- protocol

    def snapshot(self) -> Snapshot:
        data = read_state(self.state_path)
        weights = self.read_routing()
        stable, canary = data["stable"], data["canary"]
        total = sum(weights.values())
        percent = round(100 * weights.get(canary, 0) / total) if canary and total else (0 if canary else None)
        return Snapshot(label=f"the local models folder {self.models_dir}", stable=stable, canary=canary,
                        stable_image=stable, canary_image=canary, canary_percent=percent, weights=weights)

    def ref_of(self, record: Record) -> str | None:
        return record.version

    def record_fields(self, ref: str | None) -> dict[str, Any]:
        return {}

    def describe(self, ref: str) -> Deployable:
        return Deployable(version=ref)

    def what(self, ref: str | None) -> str:
        return f"models/{ref}"

    def resolve(self, to: str) -> Record | None:
        return Record(action="up", version=to) if to in self.versions() else None

    def unknown(self, to: str, records: list[Record]) -> TransitionError:
        return TransitionError(f"version {to} is not in {self.models_dir}",
                               hint="available: " + (", ".join(self.versions()) or "none"))

    def prepare_canary(self, snap: Snapshot, image: str, version: str) -> str:
        return self.ensure_version()

    def start_canary(self, snap: Snapshot, ref: str, percent: int) -> str:
        assert snap.stable is not None
        self._set(canary=ref)
        self.write_routing({snap.stable: 100 - percent, ref: percent})
        self.ui.info("[dim]a running server loads model versions at start: restart it if it does not serve "
                     f"{ref} yet[/dim]")
        return f"stable {snap.stable}; {self.routing_path} updated"

    def shift_canary(self, snap: Snapshot, percent: int) -> str:
        assert snap.stable is not None and snap.canary is not None
        self.write_routing({snap.stable: 100 - percent, snap.canary: percent})
        return f"stable {snap.stable}; {self.routing_path} updated"

    def remove_canary(self, snap: Snapshot) -> None:
        stable = read_state(self.state_path)["stable"]
        if stable:
            self.write_routing({stable: 100})
        self._set(canary=None)

    def swap_stable(self, snap: Snapshot, ref: str) -> None:
        self.write_routing({ref: 100})
        self._set(stable=ref)

    def summary(self, snap: Snapshot, record: Record | None) -> dict[str, Any]:
        return {"target": "local", "models_dir": str(self.models_dir), "weights": snap.weights,
                "stable": {"version": snap.stable},
                "canary": {"version": snap.canary, "percent": snap.canary_percent} if snap.canary else None,
                "record": record.to_json() if record else None}
