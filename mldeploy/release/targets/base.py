"""What ``release.ops`` needs from a place that runs model versions: the ``ReleaseTarget`` protocol.

A *ref* names one deployable: a task-definition ARN on AWS, a model version locally. ``snapshot()`` reads what
runs now; the other methods each make one change and leave the target in a state a re-run recognises (safe to
interrupt). Wording that differs per target (service names, folders) comes from the target too, so the operations
themselves are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mldeploy.release.history import Record
from mldeploy.release.state import ReleaseState, TransitionError


@dataclass
class Snapshot:
    """What runs now, in target-neutral terms (``detail``: the target's own view, e.g. the AWS ``Fleet``)."""

    label: str  # "app (cluster app)" or "the local models folder …"
    stable: str | None = None  # ref on the stable share
    canary: str | None = None  # ref of the canary, None without one
    stable_image: str | None = None  # what ReleaseState compares: image on AWS, version locally
    canary_image: str | None = None
    canary_percent: int | None = None
    canary_count: int | None = None  # canary tasks (AWS)
    weights: dict[str, int] = field(default_factory=dict)
    detail: Any = None

    @property
    def state(self) -> ReleaseState:
        return ReleaseState(target=self.label, stable=self.stable_image, canary=self.canary_image,
                            canary_percent=self.canary_percent)


@dataclass(frozen=True)
class Deployable:
    """What a ref carries (read from the target when the history has no record of it)."""

    version: str | None
    image: str | None = None


class ReleaseTarget(Protocol):
    """AWS (``targets.aws.AwsTarget``) or the local server's ``routing.json`` (``targets.local.LocalTarget``)."""

    observable: bool
    """True when the target can change behind the history's back (``up``, a console edit, a killed run): the
    history is then reconciled with ``snapshot()`` before each command."""
    shift_records: bool
    """True when each weight move gets its own history record (local), else the canary's record is updated."""
    stable_name: str  # "app" (the ECS service) / "the local server"
    canary_name: str  # "app-canary" / "the local canary"
    earlier: str  # "version of app" / "local version": "no earlier {earlier} to roll back to"

    def snapshot(self) -> Snapshot: ...

    def ref_of(self, record: Record) -> str | None:
        """The ref a history record deployed."""
        ...

    def record_fields(self, ref: str | None) -> dict[str, Any]:
        """Record fields naming ``ref`` (AWS: task_definition + revision)."""
        ...

    def describe(self, ref: str) -> Deployable: ...

    def what(self, ref: str | None) -> str:
        """A short human name for ``ref`` ("revision 3", "models/1.1.0")."""
        ...

    def resolve(self, to: str) -> Record | None:
        """A rollback target the history does not know (local: a version folder), else None."""
        ...

    def unknown(self, to: str, records: list[Record]) -> TransitionError:
        """The error for ``rollback --to`` naming nothing known."""
        ...

    def prepare_canary(self, snap: Snapshot, image: str, version: str) -> str:
        """Make the canary's deployable exist (idempotent: a re-run reuses it); returns its ref."""
        ...

    def start_canary(self, snap: Snapshot, ref: str, percent: int) -> str:
        """Run the canary and weight it; raises NotReadyError/RolledBackError when it never becomes healthy
        (the caller removes it). Returns a detail for the success line."""
        ...

    def shift_canary(self, snap: Snapshot, percent: int) -> str:
        """Move the weights of the running canary (and size it); returns a detail for the success line."""
        ...

    def remove_canary(self, snap: Snapshot) -> None:
        """Weights back to the stable only, then the canary goes (no-op without one)."""
        ...

    def swap_stable(self, snap: Snapshot, ref: str) -> None:
        """The stable share runs ``ref`` (waits until it does; RolledBackError when the rollout fails)."""
        ...

    def summary(self, snap: Snapshot, record: Record | None) -> dict[str, Any]:
        """What runs now, for ``--json`` and GitHub outputs."""
        ...
