"""Placeholder until the strict AWS-rules layer lands: accepts everything."""

from __future__ import annotations

from typing import Any


def before_call(**_: Any) -> None:
    return None
