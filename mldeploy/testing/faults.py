"""Fault injection for the deployment fault tests (``tests/test_hardening_faults.py``,
``tests/test_aws_transient.py``); inert unless enabled.

``MLDEPLOY_FAULT_AFTER=N`` stops the process right after its N-th successful *mutating* AWS call (the call took
effect, the CLI never learns it did: the worst moment to die). ``MLDEPLOY_FAULT_MODE=kill`` (default) sends
SIGKILL to the process (no cleanup, no ``finally``); ``error`` raises an AwsError instead. Every AWS client of
``mldeploy.aws.clients`` registers the hook (``test_hooks``), so ``up``, ``canary``, ``promote``, ``rollback``
and ``down`` share it.

``MLDEPLOY_FAULT_ERROR="service:Operation:Code:Message:N"`` (several separated by ``;``) makes the first ``N``
matching calls fail *before* they reach AWS with a real botocore ``ClientError`` (that code, a message containing
``Message``), as AWS answers while it is eventually consistent; ``N@K`` lets the first ``K`` matching calls through
first. ``Message`` may contain ``:``. Example:
``ecs:CreateService:InvalidParameterException:Unable to assume the service linked role:3``.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from mldeploy.errors import AwsError

ERROR_ENV = "MLDEPLOY_FAULT_ERROR"

_lock = threading.Lock()
_count = 0


def enabled() -> bool:
    return bool(os.environ.get("MLDEPLOY_FAULT_AFTER"))


def after_call(model: Any, http_response: Any = None, parsed: Any = None, **_: Any) -> None:
    """botocore ``after-call`` handler: count successful mutating calls, fail after the configured one."""
    global _count
    from mldeploy.aws.clients import is_mutating

    status = (parsed or {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 200) if isinstance(parsed, dict) \
        else 200
    if not is_mutating(model.name) or status >= 300:
        return
    with _lock:
        _count += 1
        n = _count
    if n != int(os.environ["MLDEPLOY_FAULT_AFTER"]):
        return
    if os.environ.get("MLDEPLOY_FAULT_MODE", "kill") == "error":
        raise AwsError(f"injected fault after mutating call {n} ({model.service_model.service_name}:{model.name})",
                       hint="MLDEPLOY_FAULT_AFTER is set (fault-injection tests); unset it")
    os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------ injected AWS errors


@dataclass
class InjectedError:
    """Fail ``times`` matching calls (after letting ``skip`` through) with ``code`` / ``message``."""

    service: str
    op: str
    code: str
    message: str
    times: int
    skip: int = 0
    seen: int = field(default=0, compare=False)

    def fires(self) -> bool:
        """Count one matching call; True when it must fail."""
        self.seen += 1
        return self.skip < self.seen <= self.skip + self.times


def parse_errors(text: str) -> list[InjectedError]:
    """``service:Operation:Code:Message:N[@K]`` entries separated by ``;`` (see the module docstring)."""
    out = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        head, _, count = entry.rpartition(":")
        parts = head.split(":", 3)
        if len(parts) != 4 or not count:
            raise ValueError(f"{ERROR_ENV}: {entry!r} is not service:Operation:Code:Message:N[@K]")
        times, _, skip = count.partition("@")
        out.append(InjectedError(*parts, times=int(times), skip=int(skip or 0)))
    return out


_errors: list[InjectedError] | None = None


def _configured() -> list[InjectedError]:
    global _errors
    if _errors is None:
        _errors = parse_errors(os.environ.get(ERROR_ENV, ""))
    return _errors


def before_call(model: Any, **_: Any) -> None:
    """botocore ``before-call`` handler: raise the configured ``ClientError`` instead of sending the request."""
    service, op = model.service_model.service_name, model.name
    with _lock:
        # every entry counts every matching call, so "N@K" entries can follow each other on one operation
        hits = [e for e in _configured() if (e.service, e.op) == (service, op) and e.fires()]
    hit = hits[0] if hits else None
    if hit is None:
        return
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": hit.code, "Message": f"{hit.message} (injected: {ERROR_ENV})",
                                 "Type": "Sender"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, op)


HOOK = ("before-call.*.*", before_call)
