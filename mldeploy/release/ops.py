"""``canary``, ``promote``, ``rollback``: written once against a ``ReleaseTarget`` and a ``HistoryStore``.

Each command reads what runs (``load``: the target's snapshot plus the history, reconciled when the target is
observable), checks the move (``release.state``), opens a history record, changes the target, and closes the
record with its outcome. ``promote`` and the stable rollback share ``swap_stable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.errors import NotReadyError, RolledBackError
from mldeploy.release.history import HistoryStore, Outcome, Record, digest_of, stable_lineage
from mldeploy.release.state import CanaryMove, TransitionError, check_promote, check_rollback_to, plan_canary

if TYPE_CHECKING:
    from mldeploy.release.targets.base import ReleaseTarget, Snapshot
    from mldeploy.ui import Ui

BeforeStart = Callable[["Current", str], "dict[str, Any] | None"]
NEXT = "next: `mldeploy canary --percent N`, `mldeploy promote` or `mldeploy rollback`"


@dataclass
class Current:
    """The target's snapshot and the history records, read together."""

    target: ReleaseTarget
    snap: Snapshot
    history: HistoryStore
    records: list[Record]

    def active_canaries(self) -> list[Record]:
        """The records of the running canary (one on AWS; one per weight move locally)."""
        if self.snap.canary is None:
            return []
        return [r for r in self.records if r.action == "canary" and r.outcome == Outcome.active
                and self.target.ref_of(r) == self.snap.canary]

    def active_canary(self) -> Record | None:
        """The newest history record of the running canary."""
        for record in reversed(self.records):
            if record.action == "canary" and self.snap.canary and self.target.ref_of(record) == self.snap.canary:
                return record
        return None

    def lineage(self) -> list[Record]:
        return stable_lineage(self.records, key=self.target.ref_of)


def observe(target: ReleaseTarget, ref: str, action: str, outcome: str, reason: str) -> Record:
    """A record for a deployable found running (deployed by ``up`` or by hand)."""
    found = target.describe(ref)
    return Record(action=action, version=found.version, image=found.image, digest=digest_of(found.image),
                  **target.record_fields(ref), outcome=outcome, reason=reason)


def load(target: ReleaseTarget, history: HistoryStore, *, reconcile: bool = True) -> Current:
    """Snapshot + history, with the history brought in line with what actually runs.

    ``mldeploy up`` (or a change by hand) may have replaced the stable deployable without a record; it is
    recorded as ``observed`` so that rollback knows where it came from. A canary record whose canary has gone
    is closed as failed. ``reconcile=False`` only reads (while another command holds the lock).
    """
    snap = target.snapshot()
    cur = Current(target, snap, history, history.list())
    if reconcile and target.observable and _reconcile(cur):
        cur.records = history.list()
    return cur


def _reconcile(cur: Current) -> bool:
    target, snap, history, records = cur.target, cur.snap, cur.history, cur.records
    changed = False
    for record in records:
        if record.outcome in (Outcome.active, Outcome.in_progress) and record.action == "canary" \
                and target.ref_of(record) != snap.canary:
            history.update(record, outcome=Outcome.failed, reason="the canary service no longer exists")
            changed = True
    for record in records:  # a promote/rollback that was interrupted: did the stable service get there?
        if record.outcome == Outcome.in_progress and record.action in ("promote", "rollback"):
            reached = target.ref_of(record) == snap.stable
            history.update(record, outcome=Outcome.succeeded if reached else Outcome.failed,
                           reason="interrupted; " + ("the service reached it" if reached else "not applied"))
            changed = True
    lineage = stable_lineage(records, key=target.ref_of)
    if snap.stable and (not lineage or target.ref_of(lineage[-1]) != snap.stable):
        record = observe(target, snap.stable, "up", Outcome.succeeded,
                         "recorded when a release command found it on the stable service")
        if record.version is None:  # not registered by mldeploy (no MLDEPLOY_MODEL_VERSION): changed by hand
            record.action, record.reason = "observed", "found on the stable service, not deployed by mldeploy"
        history.add(record, records)
        changed = True
    if snap.canary and not any(r.action == "canary" and target.ref_of(r) == snap.canary
                               and r.outcome == Outcome.active for r in records):
        started = next((r for r in reversed(records) if r.action == "canary" and target.ref_of(r) == snap.canary
                        and r.outcome == Outcome.in_progress), None)
        if started is not None:  # the command that started it was interrupted before weighting it
            history.update(started, outcome=Outcome.active, percent=snap.canary_percent,
                           reason="completed by a later release command")
        else:
            history.add(observe(target, snap.canary, "canary", Outcome.active,
                                "canary service found running without an active record"), records)
        changed = True
    return changed


# --------------------------------------------------------------------------------------------------- canary


def canary(target: ReleaseTarget, history: HistoryStore, ui: Ui, *, percent: int, image: str | None,
           version: str, build: Callable[[], tuple[str, str | None]] | None = None,
           cur: Current | None = None, before_start: BeforeStart | None = None) -> dict[str, Any]:
    """Start a canary of ``image`` (``version``) at ``percent`` % or move the weights of the running one.

    ``image`` None: ``build()`` makes one (returns image reference and digest) once the move is known to start.
    ``before_start(cur, ref)``: called once the candidate exists, before any record or weight (the contract diff
    refuses there); it may return fields for the canary's history record (``contract``).
    """
    cur = cur or load(target, history)
    move = plan_canary(cur.snap.state, image, percent)  # percent, "nothing deployed", "another canary active"
    if move is CanaryMove.shift:
        return _shift(cur, ui, percent)
    digest = digest_of(image)
    if image is None:
        if build is None:
            raise TransitionError("no image to canary", hint="pass --image URI")
        ui.info("no --image given: building and pushing the current model")
        image, digest = build()
        plan_canary(cur.snap.state, image, percent)  # the build may equal the stable image
    return _start(cur, ui, image, digest, version, percent, before_start)


def _start(cur: Current, ui: Ui, image: str, digest: str | None, version: str, percent: int,
           before_start: BeforeStart | None = None) -> dict[str, Any]:
    target, snap = cur.target, cur.snap
    ref = target.prepare_canary(snap, image, version)
    extra = (before_start(cur, ref) or {}) if before_start is not None else {}
    record = cur.history.add(Record(action="canary", version=version, image=image, digest=digest,
                                    **target.record_fields(ref), percent=percent, **extra,
                                    from_revision=target.record_fields(snap.stable).get("revision")), cur.records)
    shown = f" ({image})" if image != version else ""
    ui.info(f"canary {version}{shown} as {target.what(ref)}")
    try:
        detail = target.start_canary(snap, ref, percent)
    except (NotReadyError, RolledBackError) as e:
        target.remove_canary(target.snapshot())
        cur.history.update(record, outcome=Outcome.failed, reason=e.message)
        raise RolledBackError(f"the canary never became healthy and was removed: {e.message}", hint=e.hint) from e
    cur.history.update(record, outcome=Outcome.active, percent=percent)
    ui.success(f"canary {version} takes {percent}% of traffic ({detail}); {NEXT}")
    return target.summary(target.snapshot(), record)


def _shift(cur: Current, ui: Ui, percent: int) -> dict[str, Any]:
    target, snap = cur.target, cur.snap
    record = cur.active_canary()
    before = snap.canary_percent
    detail = target.shift_canary(snap, percent)
    if target.shift_records:
        assert snap.canary is not None
        record = cur.history.add(Record(
            action="canary", version=record.version if record else target.describe(snap.canary).version,
            image=record.image if record else None, digest=record.digest if record else None,
            **target.record_fields(snap.canary), percent=percent, outcome=Outcome.active), cur.records)
    elif record is not None:
        cur.history.update(record, percent=percent)
    ui.success(f"canary weight {before}% → {percent}% ({detail})")
    return target.summary(target.snapshot(), record)


# ------------------------------------------------------------------------------------------ promote, rollback


def swap_stable(cur: Current, record: Record, ref: str) -> None:
    """The stable share runs ``ref``; a failed rollout closes ``record`` as failed (ECS put the old tasks back)."""
    try:
        cur.target.swap_stable(cur.snap, ref)
    except RolledBackError as e:
        cur.history.update(record, outcome=Outcome.failed, reason=e.message)
        raise


def promote(target: ReleaseTarget, history: HistoryStore, ui: Ui, cur: Current | None = None) -> dict[str, Any]:
    """The stable share takes the canary's deployable; then the canary goes."""
    cur = cur or load(target, history)
    check_promote(cur.snap.state)
    snap = cur.snap
    ref = snap.canary
    assert ref is not None
    canary_rec = cur.active_canary()
    found = target.describe(ref)
    record = cur.history.add(Record(
        action="promote", version=canary_rec.version if canary_rec else found.version, image=found.image,
        digest=canary_rec.digest if canary_rec else None, **target.record_fields(ref), percent=100,
        contract=canary_rec.contract if canary_rec else None,
        from_revision=target.record_fields(snap.stable).get("revision")), cur.records)
    ui.info(f"promoting {target.what(ref)} ({record.version}) to {target.stable_name}")
    swap_stable(cur, record, ref)
    target.remove_canary(snap)
    cur.history.update(record, outcome=Outcome.succeeded)
    for rec in cur.active_canaries() or ([canary_rec] if canary_rec else []):
        cur.history.update(rec, outcome=Outcome.promoted, percent=100)
    ui.success(f"promoted {record.version} ({target.what(ref)}): {target.stable_name} serves 100%, "
               "canary removed")
    return target.summary(target.snapshot(), record)


def rollback(target: ReleaseTarget, history: HistoryStore, ui: Ui, *, to: str | None = None,
             reason: str | None = None, cur: Current | None = None) -> dict[str, Any]:
    """With a canary: remove it. Without: the stable share returns to the previous (or ``to``) version."""
    cur = cur or load(target, history)
    check_rollback_to(cur.snap.state, to)
    if cur.snap.canary is not None:
        return rollback_canary(cur, ui, reason or "mldeploy rollback")
    return _rollback_stable(cur, ui, to)


def rollback_canary(cur: Current, ui: Ui, reason: str) -> dict[str, Any]:
    target, snap = cur.target, cur.snap
    canary_rec = cur.active_canary()
    closing = cur.active_canaries() or ([canary_rec] if canary_rec else [])
    percent = snap.canary_percent
    target.remove_canary(snap)
    for rec in closing:
        cur.history.update(rec, outcome=Outcome.rolled_back, reason=reason)
    stable = next((r for r in reversed(cur.lineage()) if target.ref_of(r) == snap.stable), None)
    found = target.describe(snap.stable) if stable is None and snap.stable else None
    record = cur.history.add(Record(
        action="rollback", version=stable.version if stable else (found.version if found else None),
        image=stable.image if stable else None, digest=stable.digest if stable else None,
        contract=stable.contract if stable else None, **target.record_fields(snap.stable), percent=0,
        outcome=Outcome.succeeded,
        from_revision=target.record_fields(target.ref_of(canary_rec)).get("revision") if canary_rec else None,
        reason=f"canary removed at {percent}%: {reason}"), cur.records)
    version = canary_rec.version if canary_rec else "?"
    ui.success(f"canary {version} rolled back: weights 100/0, {target.canary_name} removed")
    return target.summary(target.snapshot(), record)


def find_target(cur: Current, to: str | None) -> Record:
    """The record to roll back to: ``to`` (version, revision or ARN; newest match) or the previous stable."""
    target, current = cur.target, cur.snap.stable
    if to is not None:
        match = next((r for r in reversed(cur.records) if target.ref_of(r) and r.matches(to)), None) \
            or target.resolve(to)
        if match is None:
            raise target.unknown(to, cur.records)
        if target.ref_of(match) == current:
            raise TransitionError(f"{to} ({target.what(current)}) is already running on {target.stable_name}")
        return match
    lineage = cur.lineage()
    if len(lineage) < 2:
        raise _nothing_earlier(cur, lineage)
    return lineage[-2]


def _nothing_earlier(cur: Current, lineage: list[Record]) -> TransitionError:
    """Why a plain rollback has nowhere to go: the lineage (a deploy pushes, a rollback pops) is down to the
    running version; the other versions in the history were left by a rollback, and only ``--to`` returns there."""
    target, current = cur.target, cur.snap.stable
    bottom = f"{lineage[-1].version} ({target.what(target.ref_of(lineage[-1]))}) is the oldest stable version " \
             "still in line" if lineage else "the history records no stable deployment before it"
    others: dict[str, Record] = {}
    for r in cur.records:  # newest last: the latest record per deployable wins
        if r.stable and (ref := target.ref_of(r)) and ref != current:
            others[ref] = r
    if not others:
        return TransitionError(f"no earlier {target.earlier} to roll back to: {bottom}, and the history holds no "
                               "other version", hint="`mldeploy history` lists deployments")
    left = ", ".join(f"{r.version} ({target.what(ref)})" for ref, r in others.items())
    latest = list(others.values())[-1].version
    return TransitionError(f"no earlier {target.earlier} to roll back to: {bottom}; the history also holds "
                           f"{left}, which a rollback already left (a plain rollback only steps back, it never "
                           "returns to a version it rolled back from)",
                           hint=f"`mldeploy rollback --to {latest}` deploys it again; `mldeploy history` lists "
                           "deployments")


def _rollback_stable(cur: Current, ui: Ui, to: str | None) -> dict[str, Any]:
    target, snap = cur.target, cur.snap
    if snap.stable is None:
        raise TransitionError(f"nothing is deployed for {target.stable_name}: nothing to roll back",
                              hint="deploy with `mldeploy up`")
    goal = find_target(cur, to)
    ref = target.ref_of(goal)
    assert ref is not None
    record = cur.history.add(Record(
        action="rollback", version=goal.version, image=goal.image, digest=goal.digest, **target.record_fields(ref),
        contract=goal.contract, from_revision=target.record_fields(snap.stable).get("revision"),
        reason=f"rollback to {to}" if to else "rollback"), cur.records)
    ui.info(f"rolling {target.stable_name} back from {target.what(snap.stable)} to {goal.version} "
            f"({target.what(ref)})")
    swap_stable(cur, record, ref)
    cur.history.update(record, outcome=Outcome.succeeded)
    ui.success(f"{target.stable_name} runs {goal.version} ({target.what(ref)}) again")
    return target.summary(target.snapshot(), record)
