"""Test seams installed as ``Clients`` hooks when their environment variable is set (inert otherwise):
``faults`` (stop after the N-th mutating call) and ``aws_rules`` (reject what AWS documents as invalid, on top of
an emulator that accepts it; ``MLDEPLOY_STRICT_AWS_TLS=1`` also counts its plain-http endpoint as TLS for bucket
policies' ``aws:SecureTransport``). The CLI's session passes ``hooks_from_env()`` to its ``Clients``."""

from __future__ import annotations

import os
from typing import Any


def hooks_from_env() -> list[tuple[str, Any]]:
    """botocore (event, handler) pairs of the test seams whose environment variable is set (none normally)."""
    hooks: list[tuple[str, Any]] = []
    if os.environ.get("MLDEPLOY_FAULT_AFTER"):
        from mldeploy.testing import faults

        hooks.append(("after-call.*.*", faults.after_call))
    if os.environ.get("MLDEPLOY_FAULT_ERROR"):  # transient AWS errors, injected before the call
        from mldeploy.testing import faults

        hooks.append(faults.HOOK)
    if os.environ.get("MLDEPLOY_STRICT_AWS") == "1":
        from mldeploy.testing import aws_rules

        hooks += aws_rules.HOOKS
    return hooks
