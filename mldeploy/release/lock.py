"""The deployment lock: one SSM parameter ``<ssm_prefix>/lock`` created with a conditional write.

``put_parameter(Overwrite=False)`` either creates the parameter (we hold the lock) or fails with
``ParameterAlreadyExists`` (someone else does). The value records holder, pid, host, command and an expiry;
long operations refresh the expiry. An expired lock is reported as stale; it is never broken silently —
``--force-unlock`` breaks it (or any lock) explicitly, naming the holder it replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mldeploy.errors import AwsError, LockHeldError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.config.names import ResourceNames
    from mldeploy.ui import Ui

DEFAULT_TTL_S = 900
LOCK_MARGIN_S = 600  # beyond release.stability_timeout_s: the lock outlives a full rollout wait


@dataclass
class LockInfo:
    holder: str
    pid: int
    host: str
    command: str
    token: str
    acquired_at: float
    expires_at: float

    def describe(self) -> str:
        return (f"{self.holder} (pid {self.pid} on {self.host}, `{self.command}`) since "
                f"{_fmt(self.acquired_at)}")

    @property
    def expired(self) -> bool:
        return time.time() > self.expires_at

    @property
    def orphaned(self) -> bool:
        """Held by a process of this machine that no longer exists (killed): safe to break without asking.

        Locks from other machines (CI runners) cannot be checked this way and need ``--force-unlock``.
        """
        if self.host != socket.gethostname() or self.pid <= 0 or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by another user
            return False
        return False


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class DeployLock:
    """Context manager: hold the app/env deployment lock for the duration of a release command (or ``up``).

    ``holder`` names who takes it (default: ``stores.aws_actor``, looked up when acquiring); ``ui`` reports a
    lock broken because its process is gone.
    """

    def __init__(self, clients: Clients, names: ResourceNames, command: str, *, ttl_s: int = DEFAULT_TTL_S,
                 force_unlock: bool = False, holder: str | None = None, ui: Ui | None = None) -> None:
        self.clients = clients
        self.base = names.base
        self.name = f"{names.ssm_prefix}/lock"
        self.command = command
        self.holder = holder
        self.ui = ui
        self.ttl_s = ttl_s
        self.force_unlock = force_unlock
        self.info: LockInfo | None = None
        self.broken: LockInfo | None = None  # the lock --force-unlock replaced

    @classmethod
    def for_project(cls, project: Project, clients: Clients, command: str, *, force_unlock: bool = False,
                    ttl_s: int | None = None, ui: Ui | None = None) -> DeployLock:
        """The lock of ``project``'s app/env; the TTL covers a full rollout wait (``aws.deploy_timeout_s``)
        plus ``LOCK_MARGIN_S``."""
        from mldeploy.aws.waiters import deploy_timeout_s

        ttl = ttl_s if ttl_s is not None else deploy_timeout_s(project.config) + LOCK_MARGIN_S
        return cls(clients, project.names, command, ttl_s=ttl, force_unlock=force_unlock, ui=ui)

    @property
    def _ssm(self) -> Any:
        return self.clients.get("ssm")

    def _new_info(self) -> LockInfo:
        if self.holder is None:
            from mldeploy.release.stores import aws_actor

            self.holder = aws_actor(self.clients)
        now = time.time()
        return LockInfo(holder=self.holder, pid=os.getpid(), host=socket.gethostname(), command=self.command,
                        token=secrets.token_hex(8), acquired_at=now, expires_at=now + self.ttl_s)

    def _put(self, info: LockInfo, overwrite: bool) -> None:
        kwargs: dict[str, Any] = {"Name": self.name, "Value": json.dumps(asdict(info)), "Type": "String",
                                  "Overwrite": overwrite}
        if not overwrite:
            kwargs["Description"] = f"mldeploy deployment lock for {self.base}"
        self._ssm.put_parameter(**kwargs)

    def read(self) -> LockInfo | None:
        """The current lock (None when free)."""
        from botocore.exceptions import ClientError

        from mldeploy.aws.clients import aws_errors, error_code

        with aws_errors(f"ssm:GetParameter {self.name}"):
            try:
                value = self._ssm.get_parameter(Name=self.name)["Parameter"]["Value"]
            except ClientError as e:
                if error_code(e) == "ParameterNotFound":
                    return None
                raise
        try:
            return LockInfo(**json.loads(value))
        except (TypeError, ValueError):  # unreadable: treat as held by someone unknown, expired
            return LockInfo("unknown", 0, "?", value[:80], "", 0.0, 0.0)

    def acquire(self) -> None:
        from botocore.exceptions import ClientError

        from mldeploy.aws.clients import aws_errors, error_code

        info = self._new_info()
        for _attempt in range(3):
            with aws_errors(f"ssm:PutParameter {self.name}"):
                try:
                    self._put(info, overwrite=False)
                    self.info = info
                    return
                except ClientError as e:
                    if error_code(e) != "ParameterAlreadyExists":
                        raise
            held = self.read()
            if held is None:
                continue  # released between our put and our read: try again
            if self.force_unlock or held.orphaned:
                if not self.force_unlock:
                    from mldeploy.ui import Ui

                    (self.ui or Ui()).warn(f"breaking the deployment lock left by {held.describe()}: that process "
                                           "no longer exists on this machine")
                self._delete()
                self.broken = held
                self.force_unlock = False  # break at most one lock
                continue
            base = self.base
            if held.expired:
                raise LockHeldError(
                    f"the deployment lock for {base} is stale: held by {held.describe()}, expired at "
                    f"{_fmt(held.expires_at)} (SSM parameter {self.name})",
                    hint="that job probably died; check nothing is deploying, then re-run with --force-unlock")
            raise LockHeldError(
                f"another deployment of {base} is in progress: the lock is held by {held.describe()} "
                f"(SSM parameter {self.name})",
                hint="wait for it to finish and retry; if that job died, re-run with --force-unlock")
        raise LockHeldError(f"could not acquire the deployment lock {self.name} (contention)", hint="retry")

    def refresh(self) -> None:
        """Push the expiry forward (long bakes); fails if the lock was broken by someone else."""
        if self.info is None:
            return
        from mldeploy.aws.clients import aws_errors

        held = self.read()
        if held is None or held.token != self.info.token:
            raise LockHeldError(f"lost the deployment lock {self.name}: it was broken"
                                + (f" and is now held by {held.describe()}" if held else ""),
                                hint="someone ran --force-unlock; check the state with `mldeploy status`")
        self.info.expires_at = time.time() + self.ttl_s
        with aws_errors(f"ssm:PutParameter {self.name}"):
            self._put(self.info, overwrite=True)

    def release(self) -> None:
        """Delete the lock if it is still ours (read-then-delete; SSM has no conditional delete)."""
        if self.info is None:
            return
        try:
            held = self.read()
            if held is not None and held.token == self.info.token:
                self._delete()
        except AwsError:
            pass  # the lock expires on its own; never hide the command's real outcome behind this
        self.info = None

    def _delete(self) -> None:
        from botocore.exceptions import ClientError

        from mldeploy.aws.clients import aws_errors, error_code

        with aws_errors(f"ssm:DeleteParameter {self.name}"):
            try:
                self._ssm.delete_parameter(Name=self.name)
            except ClientError as e:
                if error_code(e) != "ParameterNotFound":
                    raise

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """CI cancels jobs with SIGTERM: turn it into KeyboardInterrupt so ``finally`` blocks release the lock."""

    def _handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
