"""Hardening figures in one table (issue 10): fuzzing, soak/drain/overload, deployment faults, secret scans.

    python benchmarks/hardening_summary.py          # the CI-bounded checks (tests/test_hardening_*.py)
    python benchmarks/hardening_summary.py --full   # 60 s soak, every fault point, 3x the fuzz cases

The checks are the pytest tests themselves; each test calls ``record()``, which appends its figures to the file
named by ``$MLDEPLOY_HARDENING_REPORT`` (a no-op otherwise), and this script prints them as one table.
"""

from __future__ import annotations

import json
import os
from typing import Any


def record(section: str, check: str, figures: dict[str, Any]) -> None:
    """Append one row of figures (called by the hardening tests; inert unless the report file is set)."""
    path = os.environ.get("MLDEPLOY_HARDENING_REPORT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"section": section, "check": check, "figures": figures}, default=str) + "\n")
