"""Deployment records (``Record``), the stable lineage, and the ``HistoryStore`` protocol the stores implement.

AWS keeps one SSM parameter per record (``stores.SsmHistory``: CI runners are ephemeral); the local target keeps
them in ``.mldeploy/<env>/release-local.json`` (``stores.LocalHistory``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

# actions that leave the stable service on ``task_definition`` when they succeed
STABLE_ACTIONS = ("up", "deploy", "observed", "promote", "rollback")


class Outcome:
    in_progress = "in_progress"
    active = "active"  # a canary taking traffic
    succeeded = "succeeded"
    promoted = "promoted"  # a canary that became stable
    rolled_back = "rolled_back"
    failed = "failed"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Record:
    """One deployment (``up``, a canary, a promotion or a rollback)."""

    id: int = 0
    action: str = "up"  # up | observed | canary | promote | rollback
    version: str | None = None  # model.version (semantic version)
    image: str | None = None
    digest: str | None = None
    task_definition: str | None = None  # ARN
    revision: int | None = None
    percent: int | None = None  # canary traffic share (last one set)
    outcome: str = Outcome.in_progress
    git_commit: str | None = None
    actor: str | None = None
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    reason: str | None = None
    from_revision: int | None = None  # promote / rollback: the stable revision before
    contract: dict[str, Any] | None = None  # the model contract it serves (release.contract_diff.contract_of)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def stable(self) -> bool:
        """True when this record put ``task_definition`` on the stable service."""
        return self.action in STABLE_ACTIONS and self.outcome == Outcome.succeeded

    def matches(self, ref: str) -> bool:
        """``ref`` is a model version (``1.2.0``), a revision number (``7``) or a task-definition ARN."""
        return ref in (self.version, self.task_definition) or (ref.isdigit() and self.revision == int(ref))


def revision_of(task_definition_arn: str | None) -> int | None:
    if not task_definition_arn or ":" not in task_definition_arn:
        return None
    tail = task_definition_arn.rsplit(":", 1)[1]
    return int(tail) if tail.isdigit() else None


def digest_of(image: str | None) -> str | None:
    """The ``sha256:…`` digest pinned in an image reference, if any."""
    if image and "@sha256:" in image:
        return image.split("@", 1)[1]
    return None


class HistoryStore(Protocol):
    """Where deployment records live: SSM on AWS (``stores.SsmHistory``), ``release-local.json`` locally
    (``stores.LocalHistory``). The store stamps who deploys and from which commit on every new record."""

    def list(self) -> list[Record]:
        """All records, oldest first."""
        ...

    def add(self, record: Record, existing: list[Record] | None = None) -> Record:
        """Store a new record with the next free id (``existing``: the records already read)."""
        ...

    def update(self, record: Record, **changes: Any) -> Record:
        """Change fields of a stored record; a final outcome stamps ``finished_at``."""
        ...


def finish(record: Record, changes: dict[str, Any]) -> Record:
    """Apply ``changes`` to ``record``; a final outcome stamps ``finished_at`` (shared by the stores)."""
    for key, value in changes.items():
        setattr(record, key, value)
    if record.outcome not in (Outcome.in_progress, Outcome.active) and not record.finished_at:
        record.finished_at = now_iso()
    return record


def by_task_definition(record: Record) -> str | None:
    """What identifies a deployment on AWS: its task-definition ARN."""
    return record.task_definition


def stable_lineage(records: list[Record], key: Callable[[Record], str | None] = by_task_definition) -> list[Record]:
    """The stack of stable versions: a deploy/promote pushes, a rollback pops back to its target.

    ``[v1, v2, v3]`` then "rollback" → ``[v1, v2]``; "rollback" again → ``[v1]`` (no ping-pong back to v3).
    ``key`` names a deployment (task-definition ARN on AWS, the version locally).
    """
    stack: list[Record] = []
    for record in records:
        ref = key(record)
        if not record.stable or not ref:
            continue
        if record.action == "rollback":
            idx = next((i for i in range(len(stack) - 1, -1, -1) if key(stack[i]) == ref), None)
            if idx is not None:
                del stack[idx + 1:]
                continue
        if not stack or key(stack[-1]) != ref:
            stack.append(record)
    return stack

