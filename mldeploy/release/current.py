"""Read what runs on AWS and reconcile the history with it before any release command acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mldeploy.release import fleet as fl
from mldeploy.release.history import History, Outcome, Record, digest_of, revision_of, stable_lineage
from mldeploy.release.transitions import ReleaseState

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.release.context import ReleaseContext


@dataclass
class Current:
    ctx: ReleaseContext
    fleet: fl.Fleet
    history: History
    records: list[Record]

    @property
    def state(self) -> ReleaseState:
        fleet = self.fleet
        target = f"{self.ctx.names.base} (cluster {fleet.cluster})"
        stable = fl.td_image(self.ctx, fleet, fleet.stable_td) if fleet.stable_td else None
        canary = fl.td_image(self.ctx, fleet, fleet.canary_td) if fleet.canary_td else None
        return ReleaseState(target=target, stable=stable, canary=canary, canary_percent=fleet.canary_percent)

    def active_canary(self) -> Record | None:
        """The history record of the running canary."""
        for record in reversed(self.records):
            if record.action == "canary" and record.task_definition == self.fleet.canary_td:
                return record
        return None

    def lineage(self) -> list[Record]:
        return stable_lineage(self.records)

    def refresh(self) -> None:
        self.fleet = fl.read_fleet(self.ctx)
        self.records = self.history.list()


def observe(ctx: ReleaseContext, fleet: fl.Fleet, td_arn: str, action: str, outcome: str, reason: str) -> Record:
    """A record for a task definition found running (deployed by ``up`` or by hand)."""
    image = fl.td_image(ctx, fleet, td_arn)
    return Record(action=action, version=fl.td_version(ctx, fleet, td_arn), image=image, digest=digest_of(image),
                  task_definition=td_arn, revision=revision_of(td_arn), outcome=outcome, reason=reason)


def load(ctx: ReleaseContext, reconcile: bool = True) -> Current:
    """Fleet + history, with the history brought in line with what actually runs.

    ``mldeploy up`` (or a change by hand) may have replaced the stable task definition without a record; it is
    recorded as ``observed`` so that rollback knows where it came from. A canary record whose service has gone
    is closed as failed. ``reconcile=False`` only reads (while another command holds the lock).
    """
    fleet = fl.read_fleet(ctx)
    history = History(ctx)
    records = history.list()
    if not reconcile:
        return Current(ctx, fleet, history, records)
    changed = False
    for record in records:
        if record.outcome in (Outcome.active, Outcome.in_progress) and record.action == "canary" \
                and record.task_definition != fleet.canary_td:
            history.update(record, outcome=Outcome.failed, reason="the canary service no longer exists")
            changed = True
    for record in records:  # a promote/rollback that was interrupted: did the stable service get there?
        if record.outcome == Outcome.in_progress and record.action in ("promote", "rollback"):
            reached = record.task_definition == fleet.stable_td
            history.update(record, outcome=Outcome.succeeded if reached else Outcome.failed,
                           reason="interrupted; " + ("the service reached it" if reached else "not applied"))
            changed = True
    lineage = stable_lineage(records)
    if fleet.stable_td and (not lineage or lineage[-1].task_definition != fleet.stable_td):
        record = observe(ctx, fleet, fleet.stable_td, "up", Outcome.succeeded,
                         "recorded when a release command found it on the stable service")
        if record.version is None:  # not registered by mldeploy (no MLDEPLOY_MODEL_VERSION): changed by hand
            record.action, record.reason = "observed", "found on the stable service, not deployed by mldeploy"
        history.add(record, records)
        changed = True
    if fleet.canary_td and not any(r.action == "canary" and r.task_definition == fleet.canary_td
                                   and r.outcome == Outcome.active for r in records):
        started = next((r for r in reversed(records) if r.action == "canary"
                        and r.task_definition == fleet.canary_td and r.outcome == Outcome.in_progress), None)
        if started is not None:  # the command that started it was interrupted before weighting it
            history.update(started, outcome=Outcome.active, percent=fleet.canary_percent,
                           reason="completed by a later release command")
        else:
            history.add(observe(ctx, fleet, fleet.canary_td, "canary", Outcome.active,
                                "canary service found running without an active record"), records)
        changed = True
    if changed:
        records = history.list()
    return Current(ctx, fleet, history, records)


def load_unlocked(ctx: ReleaseContext) -> Current:
    """``load`` for commands that do not take the deployment lock (``history``, ``up``): reconcile only while
    no release command is running, so its in-progress records are not mistaken for interrupted ones."""
    from mldeploy.release.lock import DeployLock

    return load(ctx, reconcile=DeployLock(ctx, "history").read() is None)


def sync(project: Project) -> None:
    """Record what runs now in the history (for ``mldeploy up`` to call after a deployment)."""
    from mldeploy.release.context import ReleaseContext

    load_unlocked(ReleaseContext(project))
