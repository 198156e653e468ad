"""A scriptable ``ReleaseTarget`` and an in-memory ``HistoryStore`` for the operations' unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mldeploy.release.history import Record, finish
from mldeploy.release.state import TransitionError
from mldeploy.release.targets.base import Deployable, Snapshot


class MemoryHistory:
    """``HistoryStore`` in a list (ids from 1, like the real stores)."""

    def __init__(self, records: list[Record] | None = None) -> None:
        self.records: list[Record] = list(records or [])

    def list(self) -> list[Record]:
        return [Record.from_json(r.to_json()) for r in self.records]

    def add(self, record: Record, existing: list[Record] | None = None) -> Record:
        record.id = (self.records[-1].id if self.records else 0) + 1
        record.actor, record.git_commit = record.actor or "tester", record.git_commit or "abc123"
        self.records.append(Record.from_json(record.to_json()))
        return record

    def update(self, record: Record, **changes: Any) -> Record:
        finish(record, changes)
        self.records = [Record.from_json(record.to_json()) if r.id == record.id else r for r in self.records]
        return record

    def rows(self) -> list[tuple[str, str | None, str]]:
        return [(r.action, r.version, r.outcome) for r in self.records]


@dataclass
class FakeTarget:
    """Refs are ``td:N``; ``images`` maps a ref to (version, image). ``fail_start``/``fail_swap``: the error the
    next start/swap raises. ``calls`` logs every mutating method."""

    stable: str | None = "td:1"
    canary: str | None = None
    percent: int | None = None
    images: dict[str, tuple[str | None, str]] = field(default_factory=lambda: {"td:1": ("1.0.0", "img:v1")})
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_start: Exception | None = None
    fail_swap: Exception | None = None
    observable: bool = True
    shift_records: bool = False
    stable_name: str = "svc"
    canary_name: str = "svc-canary"
    earlier: str = "version of svc"

    def snapshot(self) -> Snapshot:
        return Snapshot(label="svc (fake)", stable=self.stable, canary=self.canary,
                        stable_image=self.images[self.stable][1] if self.stable else None,
                        canary_image=self.images[self.canary][1] if self.canary else None,
                        canary_percent=self.percent if self.canary else None)

    def ref_of(self, record: Record) -> str | None:
        return record.task_definition

    def record_fields(self, ref: str | None) -> dict[str, Any]:
        return {"task_definition": ref, "revision": int(ref.split(":")[1]) if ref else None}

    def describe(self, ref: str) -> Deployable:
        version, image = self.images[ref]
        return Deployable(version=version, image=image)

    def what(self, ref: str | None) -> str:
        return f"rev {ref}"

    def resolve(self, to: str) -> Record | None:
        return None

    def unknown(self, to: str, records: list[Record]) -> TransitionError:
        return TransitionError(f"unknown {to}")

    def prepare_canary(self, snap: Snapshot, image: str, version: str) -> str:
        ref = next((r for r, (_, i) in self.images.items() if i == image), None)
        if ref is None:
            ref = f"td:{len(self.images) + 1}"
            self.images[ref] = (version, image)
        self.calls.append(("prepare", image))
        return ref

    def start_canary(self, snap: Snapshot, ref: str, percent: int) -> str:
        self.calls.append(("start", ref, percent))
        self.canary, self.percent = ref, 0
        if self.fail_start is not None:
            raise self.fail_start
        self.percent = percent
        return "fake detail"

    def shift_canary(self, snap: Snapshot, percent: int) -> str:
        self.calls.append(("shift", percent))
        self.percent = percent
        return "fake detail"

    def remove_canary(self, snap: Snapshot) -> None:
        self.calls.append(("remove",))
        self.canary = self.percent = None

    def swap_stable(self, snap: Snapshot, ref: str) -> None:
        self.calls.append(("swap", ref))
        if self.fail_swap is not None:
            raise self.fail_swap
        self.stable = ref

    def summary(self, snap: Snapshot, record: Record | None) -> dict[str, Any]:
        return {"stable": snap.stable, "canary": snap.canary, "percent": snap.canary_percent,
                "record": record.to_json() if record else None}
