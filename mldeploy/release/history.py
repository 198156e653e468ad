"""Durable deployment history: one SSM parameter per deployment under ``<ssm_prefix>/releases/NNNNNN``.

SSM (not local disk) because CI runners are ephemeral. Each record is a small JSON document (< 4 KB, a standard
parameter); ids are allocated with a conditional write (``Overwrite=False``) so two writers never share one.
At most ``MAX_RECORDS`` are kept; older ones are deleted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext

MAX_RECORDS = 100

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


class History:
    """Read and write deployment records in SSM Parameter Store."""

    def __init__(self, ctx: ReleaseContext) -> None:
        self.ctx = ctx
        self.path = f"{ctx.names.ssm_prefix}/releases"

    @property
    def _ssm(self) -> Any:
        return self.ctx.client("ssm")

    def _name(self, record_id: int) -> str:
        return f"{self.path}/{record_id:06d}"

    def list(self) -> list[Record]:
        """All records, oldest first."""
        from mldeploy.aws.clients import aws_errors

        records: list[Record] = []
        with aws_errors(f"ssm:GetParametersByPath {self.path}"):
            pages = self._ssm.get_paginator("get_parameters_by_path").paginate(Path=self.path, Recursive=False)
            for page in pages:
                for param in page.get("Parameters", []):
                    try:
                        records.append(Record.from_json(json.loads(param["Value"])))
                    except (ValueError, TypeError):
                        continue  # a record someone edited by hand: skip rather than fail every command
        return sorted(records, key=lambda r: r.id)

    def add(self, record: Record, existing: list[Record] | None = None) -> Record:
        """Store a new record with the next free id (conditional write; retried on a collision)."""
        from botocore.exceptions import ClientError

        from mldeploy.aws.clients import aws_errors, error_code

        records = self.list() if existing is None else existing
        record.id = (records[-1].id if records else 0) + 1
        record.actor = record.actor or self.ctx.actor
        record.git_commit = record.git_commit or self.ctx.git_commit
        with aws_errors(f"ssm:PutParameter {self.path}/…"):
            for _ in range(10):
                try:
                    self._put(record, overwrite=False)
                    break
                except ClientError as e:
                    if error_code(e) != "ParameterAlreadyExists":
                        raise
                    record.id += 1
            else:
                raise AwsError(f"could not allocate a history record under {self.path} (10 collisions)",
                               hint="another deployment is writing history at the same time; retry")
        self._prune(records + [record])
        return record

    def update(self, record: Record, **changes: Any) -> Record:
        """Change fields of a stored record (outcome, percent, finished_at …)."""
        from mldeploy.aws.clients import aws_errors

        for key, value in changes.items():
            setattr(record, key, value)
        if record.outcome not in (Outcome.in_progress, Outcome.active) and not record.finished_at:
            record.finished_at = now_iso()
        with aws_errors(f"ssm:PutParameter {self._name(record.id)}"):
            self._put(record, overwrite=True)
        return record

    def _put(self, record: Record, *, overwrite: bool) -> None:
        value = json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
        kwargs: dict[str, Any] = {"Name": self._name(record.id), "Value": value, "Type": "String",
                                  "Overwrite": overwrite}
        if not overwrite:  # tags cannot be combined with Overwrite=True
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(self.ctx.tags.items())]
            kwargs["Description"] = f"mldeploy deployment #{record.id} of {self.ctx.names.base}"
        self._ssm.put_parameter(**kwargs)

    def _prune(self, records: list[Record]) -> None:
        from mldeploy.aws.clients import aws_errors

        old = [self._name(r.id) for r in records[:-MAX_RECORDS]] if len(records) > MAX_RECORDS else []
        with aws_errors("ssm:DeleteParameters"):
            for i in range(0, len(old), 10):
                self._ssm.delete_parameters(Names=old[i:i + 10])

    def latest(self, action: str | None = None, outcome: str | None = None) -> Record | None:
        for record in reversed(self.list()):
            if (action is None or record.action == action) and (outcome is None or record.outcome == outcome):
                return record
        return None


def stable_lineage(records: list[Record]) -> list[Record]:
    """The stack of stable versions: a deploy/promote pushes, a rollback pops back to its target.

    ``[v1, v2, v3]`` then "rollback" → ``[v1, v2]``; "rollback" again → ``[v1]`` (no ping-pong back to v3).
    """
    stack: list[Record] = []
    for record in records:
        if not record.stable or not record.task_definition:
            continue
        if record.action == "rollback":
            idx = next((i for i in range(len(stack) - 1, -1, -1)
                        if stack[i].task_definition == record.task_definition), None)
            if idx is not None:
                del stack[idx + 1:]
                continue
        if not stack or stack[-1].task_definition != record.task_definition:
            stack.append(record)
    return stack

