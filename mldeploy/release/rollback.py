"""``mldeploy rollback [--to VERSION]`` on AWS.

With a canary: weights back to 100/0 and the canary removed. Without one: the stable service returns to the
previous version of the history's lineage (or to ``--to`` VERSION / revision) and the command waits for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.errors import RolledBackError
from mldeploy.release import fleet as fl
from mldeploy.release.canary import remove, summary
from mldeploy.release.current import Current, load
from mldeploy.release.history import Outcome, Record, revision_of
from mldeploy.release.transitions import TransitionError, check_rollback_to

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext


def rollback(ctx: ReleaseContext, to: str | None = None, reason: str | None = None,
             cur: Current | None = None) -> dict[str, Any]:
    cur = cur or load(ctx)
    check_rollback_to(cur.state, to)
    if cur.fleet.canary is not None:
        return rollback_canary(ctx, cur, reason or "mldeploy rollback")
    return _rollback_stable(ctx, cur, to)


def rollback_canary(ctx: ReleaseContext, cur: Current, reason: str) -> dict[str, Any]:
    fleet = cur.fleet
    canary_rec = cur.active_canary()
    percent = fleet.canary_percent
    remove(ctx, fleet)
    if canary_rec is not None:
        cur.history.update(canary_rec, outcome=Outcome.rolled_back, reason=reason)
    stable = next((r for r in reversed(cur.lineage()) if r.task_definition == fleet.stable_td), None)
    record = cur.history.add(Record(
        action="rollback", version=stable.version if stable else None, image=stable.image if stable else None,
        digest=stable.digest if stable else None, task_definition=fleet.stable_td,
        revision=revision_of(fleet.stable_td), percent=0, outcome=Outcome.succeeded,
        from_revision=revision_of(canary_rec.task_definition) if canary_rec else None,
        reason=f"canary removed at {percent}%: {reason}"), cur.records)
    version = canary_rec.version if canary_rec else "?"
    console.success(f"canary {version} rolled back: weights 100/0, {ctx.names.canary_service} removed")
    return summary(ctx, fleet, record)


def find_target(cur: Current, to: str | None) -> Record:
    """The record to roll back to: ``to`` (version, revision or ARN; newest match) or the previous stable."""
    current = cur.fleet.stable_td
    if to is not None:
        match = next((r for r in reversed(cur.records) if r.task_definition and r.matches(to)), None)
        if match is None:
            known = sorted({f"{r.version} (rev {r.revision})" for r in cur.records if r.task_definition})
            raise TransitionError(
                f"no deployment of {cur.ctx.names.base} with version or revision {to!r} in the history",
                hint="known: " + (", ".join(known) or "none") + " — see `mldeploy history`")
        if match.task_definition == current:
            raise TransitionError(f"{to} (revision {match.revision}) is already running on {cur.ctx.names.service}")
        return match
    lineage = cur.lineage()
    if len(lineage) < 2:
        raise TransitionError(f"no earlier version of {cur.ctx.names.base} to roll back to "
                              f"(the history has only {lineage[-1].version if lineage else 'nothing'})",
                              hint="`mldeploy history` lists deployments; `--to VERSION` picks one")
    return lineage[-2]


def _rollback_stable(ctx: ReleaseContext, cur: Current, to: str | None) -> dict[str, Any]:
    fleet = cur.fleet
    if fleet.stable is None:
        raise TransitionError(f"nothing is deployed for {ctx.names.base}: nothing to roll back",
                              hint="deploy with `mldeploy up`")
    target = find_target(cur, to)
    assert target.task_definition is not None
    record = cur.history.add(Record(
        action="rollback", version=target.version, image=target.image, digest=target.digest,
        task_definition=target.task_definition, revision=target.revision,
        from_revision=revision_of(fleet.stable_td), reason=f"rollback to {to}" if to else "rollback"), cur.records)
    console.info(f"rolling {ctx.names.service} back from revision {record.from_revision} to {target.version} "
                 f"(revision {target.revision})")
    fl.update_stable(ctx, fleet, target.task_definition)
    try:
        fl.wait_stable(ctx, fleet, target.task_definition)
    except RolledBackError as e:
        cur.history.update(record, outcome=Outcome.failed, reason=e.message)
        raise
    cur.history.update(record, outcome=Outcome.succeeded)
    console.success(f"{ctx.names.service} runs {target.version} (revision {target.revision}) again")
    return summary(ctx, fleet, record)
