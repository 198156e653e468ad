"""``release:``: canary steps, bake and stability times, and the shadow-evaluation gates."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from mldeploy.config.schema.common import Strict
from runtime.contract import shadow as limits  # the runtime's own bounds (runtime.shadow.ShadowConfig.parse)


class ReleaseGates(Strict):
    """Shadow-evaluation gates for ``canary --auto`` (docs/release-gates.md): unset gates are not checked."""

    min_agreement: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Share of shadowed rows where the candidate gives the stable answer.")
    max_shift: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Largest top-score PSI (overall or per class) of the candidate against stable.")
    max_candidate_p99_ms: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="The candidate's p99 model time on the shadowed requests (ms).")
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=200, description="Shadowed rows needed before the gates are judged.")
    sample: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1, description="Share of stable requests the candidate also answers during the shadow phase.")
    shadow_timeout_s: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=1800, description="How long the shadow phase waits for min_samples before rolling back.")
    queue: Annotated[int, Field(ge=limits.QUEUE_MIN, le=limits.QUEUE_MAX)] = Field(
        default=limits.QUEUE, description="Shadow offers waiting for the candidate; the newest is dropped beyond.")
    queue_bytes: Annotated[int, Field(ge=limits.QUEUE_BYTES_MIN, le=limits.QUEUE_BYTES_MAX)] = Field(
        default=limits.QUEUE_BYTES, description="Bytes (inputs + outputs) the waiting shadow offers may hold; the "
        "newest is dropped beyond.")


class ReleaseSection(Strict):
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [10, 25, 50, 100])
    bake_time_s: Annotated[int, Field(ge=0, le=86400)] = 300
    stability_timeout_s: Annotated[int, Field(ge=10, le=7200)] = 900
    gates: ReleaseGates | None = Field(
        default=None, description="Judge the candidate's predictions on shadowed live requests before any traffic.")

    def shadow_queue(self) -> tuple[int, int]:
        """(``queue``, ``queue_bytes``) every shadow phase runs with: ``release.gates``'s, else the runtime's
        defaults (``canary --shadow`` writes them to routing.json locally, to ``MLDEPLOY_SHADOW_QUEUE*`` on AWS)."""
        g = self.gates
        return (g.queue, g.queue_bytes) if g is not None else (limits.QUEUE, limits.QUEUE_BYTES)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if v != sorted(set(v)):
            raise ValueError("steps must be strictly increasing percentages, e.g. [10, 25, 50, 100]")
        return v
