"""The shadow queue's limits, declared once: ``runtime.shadow.ShadowConfig`` applies them to ``routing.json``'s
``shadow`` object, ``mldeploy.yaml``'s ``release.gates.queue`` / ``queue_bytes`` and the ``MLDEPLOY_SHADOW_QUEUE*``
variables of an AWS shadow revision (``runtime.model_fetch``) are checked against the same numbers.

Constants only (no imports): the CLI's config schema reads them without loading the server's dependencies.
"""

from __future__ import annotations

QUEUE = 64  # default: offers waiting for the candidate (the newest is dropped beyond)
QUEUE_MIN, QUEUE_MAX = 1, 10_000
QUEUE_BYTES = 64 * 1024 * 1024  # default byte budget of the waiting offers (their inputs' and outputs' nbytes)
QUEUE_BYTES_MIN, QUEUE_BYTES_MAX = 1024, 1 << 40
