"""The strict layer's core: a request as the rules see it (``Call``), registration (``rule`` / ``RULES`` for checks,
``forward`` / ``FORWARDS`` for what reaches the emulator, ``answer`` / ``ANSWERS`` for what the caller reads back),
the error shape (``Rejected`` / ``reject``, turned into a ``ClientError`` by ``dispatch``) and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One API request as the rules see it."""

    service: str
    op: str
    model: Any
    params: Params
    endpoint: str | None
    region: str | None

    def client(self, service: str) -> Any:
        """A plain boto3 client (no mldeploy hooks) on the request's endpoint, for the rules' describe calls."""
        return plain_client(service, self.endpoint, self.region)


Rule = Callable[[Call], None]
RULES: dict[tuple[str, str], list[Rule]] = {}


def rule(service: str, *ops: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` for ``service`` operations ``ops`` (botocore operation names, e.g. ``CreateLoadBalancer``;
    ``"*"``: every operation of the service)."""
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES.setdefault((service, op), []).append(fn)
        return fn
    return register


Forward = Callable[[Call, dict[str, Any]], None]
"""Rewrites botocore's serialized request dict in place, after every rule passed (what the emulator receives)."""
FORWARDS: dict[tuple[str, str], list[Forward]] = {}

Answer = Callable[[Call, dict[str, Any]], None]
"""Rewrites botocore's parsed response in place (what the caller reads back)."""
ANSWERS: dict[tuple[str, str], list[Answer]] = {}


def forward(service: str, *ops: str) -> Callable[[Forward], Forward]:
    """Register a request rewriter for ``service`` operations ``ops``."""
    def register(fn: Forward) -> Forward:
        for op in ops:
            FORWARDS.setdefault((service, op), []).append(fn)
        return fn
    return register


def answer(service: str, *ops: str) -> Callable[[Answer], Answer]:
    """Register a response rewriter for ``service`` operations ``ops``."""
    def register(fn: Answer) -> Answer:
        for op in ops:
            ANSWERS.setdefault((service, op), []).append(fn)
        return fn
    return register


class Rejected(Exception):
    """A rule's verdict: AWS error ``code`` and ``message`` (and the HTTP status AWS answers with)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def reject(code: str, message: str, status: int = 400) -> None:
    raise Rejected(code, message, status)


_PLAIN: dict[tuple[str, str | None, str | None], Any] = {}


def plain_client(service: str, endpoint: str | None, region: str | None) -> Any:
    """A cached boto3 client without hooks (the rules' own describes must not run the rules again)."""
    key = (service, endpoint, region)
    if key not in _PLAIN:
        import boto3

        _PLAIN[key] = boto3.session.Session().client(service, endpoint_url=endpoint, region_name=region)
    return _PLAIN[key]


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def in_range(code: str, name: str, value: Any, low: int, high: int) -> None:
    if value is not None and not low <= int(value) <= high:
        reject(code, f"{name} must be between {low} and {high}; got {value}")
