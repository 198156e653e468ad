"""Read-only view of what exists in the account: cached describe/list calls (Chalice ``planner.RemoteState``).

Planners read through a ``Remote`` and never call boto3 themselves; unit tests give them a fake with canned
answers (``tests/unit/fakes.py``). Errors are translated to ``AwsError`` like every other call.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import call

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients


class Remote:
    """Describe calls through ``clients``, each answered once per plan (same service, operation and params)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._cache: dict[str, Any] = {}

    @property
    def region(self) -> str:
        return self.clients.region

    @property
    def account(self) -> str:
        return self.clients.account

    @property
    def partition(self) -> str:
        return self.clients.partition

    def get(self, service: str, op: str, *, missing: tuple[str, ...] = (), **params: Any) -> Any:
        """The response of ``service.op(**params)``, or None when AWS answers one of the ``missing`` codes."""
        key = json.dumps([service, op, params], sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = call(getattr(self.clients.get(service), op), missing=missing, **params)
        return self._cache[key]

    def pages(self, service: str, op: str, key: str, **params: Any) -> list[Any]:
        """Every item under ``key`` across the paginator's pages (not cached: used by ``down`` only)."""
        from mldeploy.aws.clients import aws_errors

        items: list[Any] = []
        with aws_errors():
            for page in self.clients.get(service).get_paginator(op).paginate(**params):
                items += page.get(key, [])
        return items

    def forget(self) -> None:
        """Drop cached answers (re-plan after waiting for the deployment lock)."""
        self._cache.clear()
