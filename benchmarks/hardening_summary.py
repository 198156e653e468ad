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


TESTS = ["tests/test_hardening_fuzz.py", "tests/test_hardening_container.py", "tests/test_hardening_faults.py",
         "tests/test_hardening_supply.py"]
FULL = {"MLDEPLOY_SOAK_S": "60", "MLDEPLOY_FAULT_FULL": "1", "MLDEPLOY_FUZZ_REQUESTS": "30600"}
SECTIONS = {"fuzz": "fuzzing", "soak": "soak + drain", "overload": "overload", "faults": "deployment faults",
            "secrets": "supply chain / secrets"}


def _fmt(figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}:{v}" for k, v in value.items()) or "-"
            value = "{" + value + "}"
        parts.append(f"{key}={value}")
    return "  ".join(parts)


def table(rows: list[dict[str, Any]]) -> None:
    """One table, every figure (rich, to stdout)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="mldeploy hardening figures (issue 10)", show_lines=True)
    t.add_column("area", no_wrap=True)
    t.add_column("check")
    t.add_column("figures")
    order = list(SECTIONS)
    for row in sorted(rows, key=lambda r: order.index(r["section"]) if r["section"] in order else 99):
        t.add_row(SECTIONS.get(row["section"], row["section"]), row["check"], _fmt(row["figures"]))
    Console(width=int(os.environ.get("COLUMNS", "160"))).print(t)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="60 s soak, every fault point, 30,600 fuzz requests")
    p.add_argument("--report", help="print an existing report file (JSON lines) instead of running the checks")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args, pytest_args = p.parse_known_args(argv)  # the rest goes to pytest (e.g. -k fuzz, --durations=0)
    rc = 0
    if args.report:
        path = Path(args.report)
    else:
        path = Path(tempfile.mkstemp(prefix="hardening-", suffix=".jsonl")[1])
        env = dict(os.environ, MLDEPLOY_HARDENING_REPORT=str(path), **(FULL if args.full else {}))
        root = Path(__file__).resolve().parent.parent
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS, *pytest_args]
        rc = subprocess.run(cmd, cwd=root, env=env).returncode
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        table(rows)
    if not args.report:
        print(f"report: {path}  (pytest exit code {rc})")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
