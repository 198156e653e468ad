"""Fakes for unit tests that compare plans as data (Chalice ``tests/unit/deploy/test_planner.py`` style).

``FakeRemote`` answers the describe calls planners make from canned answers; anything not declared raises, so a
test states exactly what exists. ``project(**overrides)`` builds a validated project without files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mldeploy.aws.engine.spec import StackSpec

ACCOUNT, REGION = "123456789012", "us-east-1"

BASE_CONFIG = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
"""


def project(yaml_text: str = BASE_CONFIG, env: str | None = None, root: Path | None = None) -> Any:
    """A validated ``Project`` from YAML text (the model file need not exist for AWS planning)."""
    from mldeploy.config import Project, parse_text

    config, raw = parse_text(yaml_text, env=env, environ={})
    return Project(config=config, path=(root or Path("/nonexistent")) / "mldeploy.yaml", env=env or "default",
                   raw=raw)


def spec(proj: Any = None, **kwargs: Any) -> StackSpec:
    return StackSpec(project=proj or project(), region=REGION, account=ACCOUNT, **kwargs)


class FakeRemote:
    """Canned answers keyed by (service, op): a dict/list answer, or a function of the call's params.

    ``missing`` answers (the error codes a planner tolerates) are modelled by answering ``None``.
    """

    def __init__(self, answers: dict[tuple[str, str], Any] | None = None) -> None:
        self.answers: dict[tuple[str, str], Any] = dict(answers or {})
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.region, self.account, self.partition = REGION, ACCOUNT, "aws"

    def answer(self, service: str, op: str, value: Any | Callable[..., Any]) -> FakeRemote:
        self.answers[(service, op)] = value
        return self

    def get(self, service: str, op: str, *, missing: tuple[str, ...] = (), **params: Any) -> Any:
        self.calls.append((service, op, params))
        if (service, op) not in self.answers:
            args = json.dumps(params, default=str)
            raise AssertionError(f"FakeRemote: no answer declared for {service}.{op}({args})")
        value = self.answers[(service, op)]
        return value(**params) if callable(value) else value

    def pages(self, service: str, op: str, key: str, **params: Any) -> list[Any]:
        got = self.get(service, op, **params)
        return list(got.get(key, [])) if isinstance(got, dict) else list(got or [])

    def forget(self) -> None:
        return None


def owned_tags(env: str = "default", app: str = "demo", key: str = "Key", value: str = "Value") -> list[dict]:
    return [{key: "mldeploy:app", value: app}, {key: "mldeploy:env", value: env}]
