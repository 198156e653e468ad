"""``mldeploy promote`` on AWS: the stable service takes the canary's task definition, the canary goes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.errors import RolledBackError
from mldeploy.release import fleet as fl
from mldeploy.release.canary import remove, summary
from mldeploy.release.current import Current, load
from mldeploy.release.history import Outcome, Record, revision_of
from mldeploy.release.transitions import check_promote

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext


def promote(ctx: ReleaseContext, cur: Current | None = None) -> dict[str, Any]:
    cur = cur or load(ctx)
    check_promote(cur.state)
    fleet = cur.fleet
    canary_td, stable_td = fleet.canary_td, fleet.stable_td
    assert canary_td is not None
    canary_rec = cur.active_canary()
    image = fl.td_image(ctx, fleet, canary_td)
    record = cur.history.add(Record(
        action="promote", version=canary_rec.version if canary_rec else fl.td_version(ctx, fleet, canary_td),
        image=image, digest=canary_rec.digest if canary_rec else None, task_definition=canary_td,
        revision=revision_of(canary_td), percent=100, from_revision=revision_of(stable_td)), cur.records)
    console.info(f"promoting revision {record.revision} ({record.version}) to {ctx.names.service}")
    fl.update_stable(ctx, fleet, canary_td)
    try:
        fl.wait_stable(ctx, fleet, canary_td)
    except RolledBackError as e:  # ECS put the old tasks back; the canary still runs at its weight
        cur.history.update(record, outcome=Outcome.failed, reason=e.message)
        raise
    remove(ctx, fleet)
    cur.history.update(record, outcome=Outcome.succeeded)
    if canary_rec is not None:
        cur.history.update(canary_rec, outcome=Outcome.promoted, percent=100)
    console.success(f"promoted {record.version} (revision {record.revision}): {ctx.names.service} serves 100%, "
                    f"canary removed")
    return summary(ctx, fleet, record)
