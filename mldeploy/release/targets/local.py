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
from mldeploy.workspace import BUILD_RECORD, Workspace, atomic_write_json, read_json

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
        shadow = doc.get("shadow")
        if shadow is not None and (len(weights) < 2 or (shadow or {}).get("version") not in weights):
            del doc["shadow"]  # the shadowed canary was promoted or removed
        atomic_write_json(self.routing_path, doc)

    def shadow(self) -> dict[str, Any] | None:
        """The ``shadow`` object of routing.json (``runtime.shadow.ShadowConfig``), None when off."""
        shadow = self._routing_doc().get("shadow")
        return shadow if isinstance(shadow, dict) else None

    def set_shadow(self, version: str, sample: float, keep: int = 0) -> None:
        """The runtime evaluates ``version`` on ``sample`` of the stable answers (it must be in the weights),
        through a queue bounded as the config says (``release.gates.queue`` / ``queue_bytes``, else the runtime's
        defaults). Keys of the ``shadow`` object this does not write (``tolerance``, a hand-set ``keep`` …) stay."""
        doc = self._routing_doc()
        before = doc.get("shadow")
        queue, queue_bytes = self.project.config.release.shadow_queue()
        doc["shadow"] = {**(before if isinstance(before, dict) else {}), "version": version, "sample": sample,
                         "queue": queue, "queue_bytes": queue_bytes, **({"keep": keep} if keep else {})}
        atomic_write_json(self.routing_path, doc)

    def served_versions(self) -> list[str]:
        """The versions the runtime must have loaded: those with a weight, and the shadow candidate."""
        wanted = {v for v, w in self.read_routing().items() if w > 0}
        shadow = self.shadow()
        if shadow and shadow.get("version"):
            wanted.add(str(shadow["version"]))
        return sorted(wanted)

    def alarm_names(self) -> list[str]:
        """``canary --auto`` locally: no alarms to watch (the shadow gates and the bake still apply)."""
        return []

    def firing(self, alarms: list[str]) -> list[tuple[str, str]]:
        return []

    def _set(self, **roles: str | None) -> None:
        data = read_state(self.state_path)
        data.update(roles)
        write_state(self.state_path, data)

    def ensure_version(self, *, replace: bool = False) -> str:
        """The current model packaged into ``<models dir>/<model.version>`` (copied once per version).

        A folder that already holds a *different* model under this version is refused (the history would name two
        models with one version), unless ``replace`` (``up --target local`` deploys what it was given).
        """
        from mldeploy.artifacts import package
        from mldeploy.artifacts.hashing import sha256_path

        version = self.project.config.model.version
        dest = self.models_dir / version
        if (dest / "model.json").exists():
            registered = _source_sha(dest)
            source = self.project.resolve(self.project.config.model.path)
            if registered is None or (source.exists() and sha256_path(source) == registered):
                return version  # the same model (or a folder registered by hand): nothing to copy
            if not replace:
                raise _changed_error(version, dest, self.project.path.name)
        result = package(self.project)  # cached: instant when the model did not change
        return self.register(result.dir, replace=replace) or version

    def register(self, artifact: Path, *, replace: bool = False) -> str | None:
        """Copy the packaged ``artifact`` folder to ``<models dir>/<its version>``; returns that version.

        Same model already there: nothing to do. Another model under that version: TransitionError (bump
        ``model.version``) unless ``replace``. None when ``artifact`` holds no readable manifest.
        """
        from runtime.manifest import Manifest

        try:
            manifest = Manifest.load(artifact)
        except (OSError, ValueError):
            return None
        version = manifest.version
        dest = self.models_dir / version
        if (dest / "model.json").exists():
            same = _same_model(dest, manifest)
            if same:
                return version
            if not replace:
                raise _changed_error(version, dest, self.project.path.name)
            self.ui.warn(f"replacing {dest}: the model changed but model.version is still {version} "
                         "(bump model.version to keep both versions)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{version}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(artifact, tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        self.ui.info(f"registered {self.project.config.model.path} as version {version} in {dest}")
        return version

    def _served_artifact(self) -> Path | None:
        """The model folder of the last built image (what a local container started before this runs)."""
        build = Workspace.of(self.project).record(BUILD_RECORD)
        folder = Path(build["context_dir"]) / "model" if build and build.get("context_dir") else None
        return folder if folder is not None and (folder / "model.json").is_file() else None

    def adopt_stable(self, history: HistoryStore) -> None:
        """First use: the stable version is what already runs — the last built image's model when there is one
        (``up --target local`` before the models folder existed), else the only version in the folder (recorded
        as ``up``).

        Raises when that version is the current model (there is nothing to canary yet), and when the current model
        changed without a new ``model.version`` (it must never be registered as the stable one).
        """
        if read_state(self.state_path)["stable"] is not None:
            return
        version = self.project.config.model.version
        served = self._served_artifact() if not self.versions() else None
        stable = self.register(served) if served is not None else None
        if stable is None:
            self.ensure_version()
            present = self.versions()
            if len(present) != 1:
                return
            stable = present[0]
        self._set(stable=stable)
        self.write_routing({stable: 100})
        history.add(Record(action="up", version=stable, outcome=Outcome.succeeded,
                           reason="what the local server ran when the first release command found it"
                           if served is not None else "first version in the models folder"))
        if stable == version:
            self.ensure_version()  # the current model must be the one registered as stable
            raise TransitionError(
                f"{version} is now the stable local version ({self.models_dir / version}): there is no "
                "other version to canary yet",
                hint=f"serve it with `mldeploy up --target local` (or MLDEPLOY_MODELS_DIR={self.models_dir}); to "
                     "canary a new model, bump model.version and run `mldeploy canary --target local` again")

    def deploy(self, history: HistoryStore, artifact: Path) -> str:
        """``up --target local``: ``artifact``'s version takes 100 % (an active canary is closed) and is recorded
        as ``up``; no record when it already was the only stable version."""
        version = self.register(artifact, replace=True)
        if version is None:
            raise TransitionError(f"{artifact} holds no model.json", hint="run `mldeploy package`")
        state = read_state(self.state_path)
        unchanged = state["stable"] == version and state["canary"] is None and self.read_routing() == {version: 100}
        self.write_routing({version: 100})
        self._set(stable=version, canary=None)
        if unchanged:
            return version
        canary = state["canary"]
        for record in history.list():
            if record.action == "canary" and record.outcome in (Outcome.active, Outcome.in_progress):
                history.update(record, outcome=Outcome.promoted if record.version == version else
                               Outcome.rolled_back, reason=f"mldeploy up --target local deployed {version}")
        history.add(Record(action="up", version=version, outcome=Outcome.succeeded, percent=100,
                           reason="mldeploy up --target local" + (f" (canary {canary} closed)" if canary else "")))
        return version

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


def _same_model(folder: Path, manifest: Any) -> bool:
    """True when ``folder``'s manifest describes the same model file as ``manifest`` (source or served sha256)."""
    from runtime.manifest import Manifest

    try:
        there = Manifest.load(folder)
    except (OSError, ValueError):
        return False
    if there.source_sha256 and manifest.source_sha256:
        return bool(there.source_sha256 == manifest.source_sha256 and there.sha256 == manifest.sha256)
    return bool(there.sha256 == manifest.sha256)


def _bump(version: str) -> str:
    """``0.1.0`` → ``0.2.0`` (a suggestion only)."""
    parts = version.split(".")
    if len(parts) >= 2 and parts[1].isdigit():
        return ".".join([parts[0], str(int(parts[1]) + 1), *["0"] * (len(parts) - 2)])
    return f"{version}.1"


def _source_sha(folder: Path) -> str | None:
    """The ``source_sha256`` recorded in ``folder``'s manifest (None when absent or unreadable)."""
    from runtime.manifest import Manifest

    try:
        return Manifest.load(folder).source_sha256
    except (OSError, ValueError):
        return None


def _changed_error(version: str, dest: Path, config_name: str) -> TransitionError:
    return TransitionError(
        f"the model changed since version {version} was registered in {dest}, but model.version is still "
        f"{version}: the new model cannot be told apart from the one running",
        hint=f"bump model.version in {config_name} (e.g. {_bump(version)}) and run the command again")
