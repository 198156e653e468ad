"""Fault injection for the deployment fault tests (``tests/test_hardening_faults.py``); inert unless enabled.

``MLDEPLOY_FAULT_AFTER=N`` stops the process right after its N-th successful *mutating* AWS call (the call took
effect, the CLI never learns it did: the worst moment to die). ``MLDEPLOY_FAULT_MODE=kill`` (default) sends
SIGKILL to the process (no cleanup, no ``finally``); ``error`` raises an AwsError instead. Every AWS client of
``mldeploy.aws.clients`` registers the hook (``test_hooks``), so ``up``, ``canary``, ``promote``, ``rollback``
and ``down`` share it.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from mldeploy.errors import AwsError

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
