"""Several model versions in one process: weighted routing (sticky by a request-key hash), pinning by header.

``routing.json`` in MLDEPLOY_MODELS_DIR — ``{"weights": {"1.0.0": 90, "1.1.0": 10}, "sticky_header":
"X-Request-Key"}`` — is re-read when its mtime changes (checked at most every ``check_interval_s``). Its optional
``shadow`` object names a loaded version evaluated off the request path (``runtime.shadow.ShadowConfig``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path

log = logging.getLogger("mldeploy.routing")
PIN_HEADER = "x-model-version"


class UnknownVersionError(Exception):
    pass


def _semver_key(v: str) -> tuple:
    parts = v.split("-", 1)[0].split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts) + (0 if "-" in v else 1,)


class Router:
    def __init__(self, versions: list[str], routing_file: Path | None = None, check_interval_s: float = 1.0) -> None:
        if not versions:
            raise ValueError("no model versions")
        self.versions = sorted(versions, key=_semver_key)
        self.routing_file = routing_file
        self.check_interval_s = check_interval_s
        self.sticky_header: str | None = None
        self.shadow = None  # runtime.shadow.ShadowConfig | None, from routing.json's "shadow"
        self._mtime: float | None = None
        self._checked = 0.0
        self._set_weights({self.versions[-1]: 100})
        self.refresh(force=True)

    @property
    def weights(self) -> dict[str, int]:
        return dict(self._weights)

    def _set_weights(self, weights: dict[str, int]) -> None:
        self._weights = {v: w for v, w in weights.items() if w > 0}
        self._cum: list[tuple[int, str]] = []
        total = 0
        for v, w in self._weights.items():
            total += w
            self._cum.append((total, v))
        self._total = total

    def refresh(self, force: bool = False) -> None:
        """Reload routing.json if it changed; a broken file is logged and the previous weights kept."""
        now = time.monotonic()
        if self.routing_file is None or (not force and now - self._checked < self.check_interval_s):
            return
        self._checked = now
        try:
            mtime = self.routing_file.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            doc = json.loads(self.routing_file.read_text(encoding="utf-8"))
            weights = {str(k): int(v) for k, v in doc.get("weights", {}).items()}
            unknown = sorted(set(weights) - set(self.versions))
            if unknown:
                raise ValueError(f"weights name versions {unknown} that are not loaded ({self.versions})")
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
            from runtime.shadow import ShadowConfig

            shadow = ShadowConfig.parse(doc.get("shadow"), self.versions)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("ignoring %s: %s", self.routing_file, e)
            return
        self.sticky_header = (doc.get("sticky_header") or "").lower() or None
        self._set_weights(weights)
        self.shadow = shadow
        log.info("routing weights %s (sticky header %s, shadow %s)", self._weights, self.sticky_header, shadow)

    def choose(self, headers, pinned: str | None = None) -> str:
        pin = pinned or headers.get(PIN_HEADER)
        if pin:
            if pin not in self.versions:
                raise UnknownVersionError(f"model version {pin!r} is not served; available: {', '.join(self.versions)}")
            return pin
        self.refresh()
        if len(self._cum) == 1:
            return self._cum[0][1]
        key = headers.get(self.sticky_header) if self.sticky_header else None
        if key:
            point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % self._total
        else:
            point = random.randrange(self._total)  # noqa: S311 - traffic split, not security
        for bound, version in self._cum:
            if point < bound:
                return version
        return self._cum[-1][1]
