"""``aws.autoscaling``: target tracking bounds and scheduled min/max changes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from mldeploy.config.schema.common import Strict
from mldeploy.config.schema.cron import parse_cron


class ScheduledScaling(Strict):
    """One Application Auto Scaling scheduled action: from ``cron`` on (UTC), keep min–max tasks."""

    cron: str
    min: Annotated[int, Field(ge=0, le=1000)]
    max: Annotated[int, Field(ge=1, le=1000)]

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return parse_cron(v)

    @model_validator(mode="after")
    def _bounds(self) -> ScheduledScaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Autoscaling(Strict):
    min: Annotated[int, Field(ge=0, le=1000)] = 1
    max: Annotated[int, Field(ge=1, le=1000)] = 4
    cpu_target: Annotated[float, Field(gt=0, le=100)] = 60.0
    requests_per_target: Annotated[int, Field(ge=0)] = 0
    scale_in_cooldown_s: Annotated[int, Field(ge=0)] = 120
    scale_out_cooldown_s: Annotated[int, Field(ge=0)] = 30
    schedule: list[ScheduledScaling] = Field(
        default_factory=list, description="Scheduled changes of min/max tasks (Application Auto Scaling scheduled "
        "actions), e.g. a lower minimum at night: [{cron: '0 20 ? * MON-FRI *', min: 1, max: 2}, …] (UTC).")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        crons = [s.cron for s in self.schedule]
        if dupes := sorted({c for c in crons if crons.count(c) > 1}):
            raise ValueError(f"schedule lists {', '.join(dupes)} more than once")
        return self
