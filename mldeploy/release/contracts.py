"""Where the running and the candidate model contracts come from, and the check ``canary``/``plan`` make.

Locally both are ``model.json`` files in the models folder. On AWS the running contract is the one recorded in the
deployment history (``Record.contract``, an SSM parameter per record): ``up`` records the contract of the model it
deployed, a canary records the candidate's, promote and rollback carry the one they put on the stable service. A
history written before contracts were recorded has none: the diff is skipped with a note (nothing to compare),
never guessed. The candidate is the current project's packaged model (``--image`` builds elsewhere carry no
readable contract: skipped with a note).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import MldeployError
from mldeploy.release.contract_diff import Change, check, contract_of, describe, diff

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.release.history import Record
    from mldeploy.release.ops import BeforeStart, Current
    from mldeploy.ui import Ui


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """``folder/model.json`` as a dict (None when absent or unreadable)."""
    try:
        doc = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def project_contract(project: Project) -> dict[str, Any]:
    """The contract of the current project's model (``mldeploy package``'s cached output)."""
    from mldeploy.artifacts import package

    doc = read_manifest(package(project).dir)
    if doc is None:
        raise FileNotFoundError("the packaged model has no readable model.json")
    return contract_of(doc)


def record_deployed(project: Project, history: Any, records: list[Record], key: Any) -> None:
    """After ``up``: the stable record of the project's version gets the packaged model's contract (once; nothing
    is packaged here: ``up --image`` without a packaged model records none)."""
    from mldeploy.release.history import stable_lineage

    lineage = stable_lineage(records, key=key)
    top = lineage[-1] if lineage else None
    if top is None or top.contract is not None or top.version != project.config.model.version:
        return
    try:
        contract = packaged_contract(project)
    except (OSError, MldeployError):
        return
    if contract is not None:
        history.update(top, contract=contract)


def running_contract(records: list[Record], key: Any) -> dict[str, Any] | None:
    """The contract the stable lineage's top record deployed (None: not recorded)."""
    from mldeploy.release.history import stable_lineage

    lineage = stable_lineage(records, key=key)
    return lineage[-1].contract if lineage else None


def show(ui: Ui, changes: list[Change], running: str, candidate: str) -> None:
    """Print the diff: one line per change (or that there is none)."""
    if not changes:
        ui.info(f"model contract: {candidate} keeps the contract of {running} (inputs, outputs, labels)")
        return
    ui.info(f"model contract {running} → {candidate}:")
    for line in describe(changes):
        (ui.warn if line.startswith("BREAKING") else ui.info)(f"  {line}")


def compare(ui: Ui, running: dict[str, Any] | None, candidate: dict[str, Any] | None, *, running_name: str,
            candidate_name: str, allow_breaking: bool) -> list[Change] | None:
    """Show the diff and refuse a breaking one (exit 2) unless ``allow_breaking``; None when one side is unknown."""
    if running is None or candidate is None:
        side = running_name if running is None else candidate_name
        ui.info(f"model contract: not compared ({side}'s contract is not recorded)")
        return None
    changes = diff(running, candidate)
    show(ui, changes, running_name, candidate_name)
    check(changes, allow_breaking=allow_breaking, running=running_name, candidate=candidate_name)
    return changes


def local_gate(models_dir: Path, ui: Ui, *, allow_breaking: bool) -> BeforeStart:
    """``before_start`` for the local target: the stable and the candidate version folders' model.json."""

    def gate(cur: Current, ref: str) -> dict[str, Any] | None:
        stable = cur.snap.stable
        running = read_manifest(models_dir / stable) if stable else None
        candidate = read_manifest(models_dir / ref)
        compare(ui, running, candidate, running_name=stable or "?", candidate_name=ref,
                allow_breaking=allow_breaking)
        return None

    return gate


def aws_gate(project: Project, ui: Ui, *, allow_breaking: bool, from_project: bool,
             version: str | None = None) -> BeforeStart:
    """``before_start`` on AWS: the recorded running contract against the candidate's; the canary record gets it.

    The candidate's contract: built from the project, its packaged model (cached by the build); ``--image``, the
    packaged model when the image carries the project's model.version (``version``: its label or tag), else
    unknown (not compared, never guessed)."""

    def gate(cur: Current, ref: str) -> dict[str, Any] | None:
        lineage_top = cur.lineage()[-1] if cur.lineage() else None
        running = running_contract(cur.records, cur.target.ref_of)
        candidate = None
        try:
            if from_project:
                candidate = project_contract(project)
            elif version == project.config.model.version:
                candidate = packaged_contract(project)
        except (OSError, MldeployError) as e:  # the diff is advice
            ui.info(f"model contract: not read from the packaged model ({getattr(e, 'message', e)})")
        compare(ui, running, candidate, running_name=(lineage_top.version or "?") if lineage_top else "?",
                candidate_name=version or project.config.model.version, allow_breaking=allow_breaking)
        return {"contract": candidate} if candidate is not None else None

    return gate


def packaged_contract(project: Project) -> dict[str, Any] | None:
    """The contract of the already packaged current model (no packaging: ``plan`` stays a read), or None when the
    artifact folder is missing or stale (another version or another model file)."""
    from mldeploy.artifacts.hashing import sha256_path
    from mldeploy.artifacts.packager import default_output

    doc = read_manifest(default_output(project))
    if doc is None or doc.get("version") != project.config.model.version:
        return None
    source = project.resolve(project.config.model.path)
    if doc.get("source_sha256") and source.exists() and sha256_path(source) != doc["source_sha256"]:
        return None
    return contract_of(doc)


def plan_diff(project: Project, clients: Any) -> dict[str, Any]:
    """``mldeploy plan``: the recorded running contract against the packaged current model, as data."""
    from mldeploy.release.history import by_task_definition, stable_lineage
    from mldeploy.release.stores import SsmHistory

    records = SsmHistory(clients, project.names, {}).list()
    lineage = stable_lineage(records, key=by_task_definition)
    running = lineage[-1].contract if lineage else None
    candidate = packaged_contract(project)
    doc: dict[str, Any] = {"running": lineage[-1].version if lineage else None,
                           "candidate": project.config.model.version, "compared": False, "changes": [],
                           "breaking": False}
    if running is None or candidate is None:
        doc["note"] = ("nothing deployed" if not lineage else "the running contract is not recorded") \
            if running is None else "the current model is not packaged yet (`mldeploy package`)"
        return doc
    changes = diff(running, candidate)
    doc.update(compared=True, changes=[c.to_json() for c in changes], breaking=any(c.breaking for c in changes))
    return doc


def plan_lines(doc: dict[str, Any]) -> list[str]:
    """``plan_diff``'s document for the terminal."""
    if not doc.get("compared"):
        return [f"model contract: not compared ({doc.get('note')})"]
    if not doc["changes"]:
        return [f"model contract: {doc['candidate']} keeps the contract of {doc['running']}"]
    head = f"model contract {doc['running']} → {doc['candidate']}" + (
        " (BREAKING: `mldeploy canary` refuses it without --allow-breaking)" if doc["breaking"] else "") + ":"
    return [head, *(f"  {'BREAKING ' if c['breaking'] else ''}{c['what']}" for c in doc["changes"])]
