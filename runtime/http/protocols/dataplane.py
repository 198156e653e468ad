"""The app's data plane with a protocol's own body decoder.

``InferenceService.predict`` routes (weights, pin header or path version), then decodes the body with
``self.decode(request, mv)`` inside its timeout and batching accounting, batches, formats and records metrics. A
protocol subclasses ``ProtocolDataPlane`` and overrides ``decode``; everything else is the app's: the same
settings, repository (versions, router, batchers, row limits), metrics and EMF.
"""

from __future__ import annotations

from runtime.dataplane import InferenceService


class ProtocolDataPlane(InferenceService):
    """A data plane sharing ``base``'s settings, repository, metrics and EMF; subclasses override ``decode``."""

    def __init__(self, base: InferenceService) -> None:
        super().__init__(base.settings, base.repository, base.metrics, base.emf)
