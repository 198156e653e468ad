"""The two ``HistoryStore`` implementations: SSM Parameter Store (AWS) and the local state file.

``SsmHistory``: one SSM parameter per deployment under ``<ssm_prefix>/releases/NNNNNN`` (CI runners are ephemeral).
Each record is a small JSON document (< 4 KB, a standard parameter); ids are allocated with a conditional write
(``Overwrite=False``) so two writers never share one. At most ``MAX_RECORDS`` are kept; older ones are deleted.

``LocalHistory``: the ``history`` list of ``.mldeploy/<env>/release-local.json`` (local disk is fine for a local
server), written atomically (``mldeploy.workspace``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError
from mldeploy.release.history import Record, finish
from mldeploy.release.state import TransitionError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config.names import ResourceNames

MAX_RECORDS = 100
STATE_FILE = "release-local.json"


def local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER") or "unknown"


def aws_actor(clients: Clients | None) -> str:
    """Who deploys: ``$GITHUB_ACTOR`` in Actions, else the STS caller identity, else the OS user."""
    if os.environ.get("GITHUB_ACTOR"):
        return f"{os.environ['GITHUB_ACTOR']} (github)"
    if clients is not None:
        with contextlib.suppress(Exception):
            return str(clients.get("sts").get_caller_identity()["Arn"])
    return local_user()


class SsmHistory:
    """Deployment records in SSM Parameter Store; ``actor`` (an STS call) is looked up on the first write."""

    def __init__(self, clients: Clients, names: ResourceNames, tags: dict[str, str], *,
                 git_commit: str | None = None, actor: str | None = None) -> None:
        self.clients = clients
        self.names = names
        self.tags = tags
        self.git_commit = git_commit
        self.path = f"{names.ssm_prefix}/releases"
        if actor is not None:
            self.actor = actor

    @cached_property
    def actor(self) -> str:
        return aws_actor(self.clients)

    @property
    def _ssm(self) -> Any:
        return self.clients.get("ssm")

    def _name(self, record_id: int) -> str:
        return f"{self.path}/{record_id:06d}"

    def list(self) -> list[Record]:
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
        from botocore.exceptions import ClientError

        from mldeploy.aws.clients import aws_errors, error_code

        records = self.list() if existing is None else existing
        record.id = (records[-1].id if records else 0) + 1
        record.actor = record.actor or self.actor
        record.git_commit = record.git_commit or self.git_commit
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
        from mldeploy.aws.clients import aws_errors

        finish(record, changes)
        with aws_errors(f"ssm:PutParameter {self._name(record.id)}"):
            self._put(record, overwrite=True)
        return record

    def _put(self, record: Record, *, overwrite: bool) -> None:
        value = json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
        kwargs: dict[str, Any] = {"Name": self._name(record.id), "Value": value, "Type": "String",
                                  "Overwrite": overwrite}
        if not overwrite:  # tags cannot be combined with Overwrite=True
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]
            kwargs["Description"] = f"mldeploy deployment #{record.id} of {self.names.base}"
        self._ssm.put_parameter(**kwargs)

    def _prune(self, records: list[Record]) -> None:
        from mldeploy.aws.clients import aws_errors

        old = [self._name(r.id) for r in records[:-MAX_RECORDS]] if len(records) > MAX_RECORDS else []
        with aws_errors("ssm:DeleteParameters"):
            for i in range(0, len(old), 10):
                self._ssm.delete_parameters(Names=old[i:i + 10])


# ------------------------------------------------------------------------------------------------------ local


def read_state(path: Path) -> dict[str, Any]:
    """``release-local.json``: ``{"stable", "canary", "history": [...]}`` (defaults when missing)."""
    from mldeploy.workspace import read_json

    try:
        data = read_json(path)
    except ValueError as e:
        raise TransitionError(f"{path} is not valid JSON ({e})", hint="fix or delete the file") from e
    data = data if isinstance(data, dict) else {}
    data.setdefault("stable", None)
    data.setdefault("canary", None)
    data.setdefault("history", [])
    return data


def write_state(path: Path, data: dict[str, Any]) -> None:
    from mldeploy.workspace import atomic_write_json

    atomic_write_json(path, data)


class LocalHistory:
    """Records in the ``history`` list of the local state file (its other keys belong to ``LocalTarget``)."""

    def __init__(self, path: Path, *, git_commit: str | None = None, actor: str | None = None) -> None:
        self.path = path
        self.git_commit = git_commit
        self.actor = actor or local_user()

    def list(self) -> list[Record]:
        return [Record.from_json(r) for r in read_state(self.path)["history"] if isinstance(r, dict)]

    def add(self, record: Record, existing: list[Record] | None = None) -> Record:
        data = read_state(self.path)
        record.id = len(data["history"]) + 1
        record.actor = record.actor or self.actor
        record.git_commit = record.git_commit or self.git_commit
        data["history"].append(record.to_json())
        write_state(self.path, data)
        return record

    def update(self, record: Record, **changes: Any) -> Record:
        finish(record, changes)
        data = read_state(self.path)
        data["history"] = [record.to_json() if r.get("id") == record.id else r for r in data["history"]]
        write_state(self.path, data)
        return record
