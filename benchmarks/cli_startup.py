"""`mldeploy --help` and every `mldeploy <command> --help`: wall time against `python -c pass`, same run.

Usage: python benchmarks/cli_startup.py [--runs N] [--commands validate,up,...]
Goal: each --help ≤ 0.3 s. The cases are measured round-robin (one run of every case, then the next run), so a load
change on a shared machine hits all of them alike; the table gives the median, best, the ratio to the interpreter
baseline and the ratio to `mldeploy --help` (a subcommand's help should cost what the top-level help costs).
The load average is printed before and after: absolute figures only mean something next to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 0.3
BASELINE = "python -c pass (baseline)"
TOP_HELP = "mldeploy --help"


def console_script() -> list[str]:
    """The installed ``mldeploy`` next to this interpreter (a pyenv/asdf shim would add its own shell start-up),
    else whatever is on PATH, else ``python -m mldeploy``."""
    beside = Path(sys.executable).with_name("mldeploy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("mldeploy")
    return [found] if found else [sys.executable, "-m", "mldeploy"]


def subcommands() -> list[str]:
    """Every registered command, in the order of ``mldeploy --help``."""
    import typer

    from mldeploy.cli.app import app

    return list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--commands", default="", help="comma-separated subset of commands (default: all)")
    args = parser.parse_args()
    exe = console_script()
    commands = [c for c in args.commands.split(",") if c] or subcommands()
    cases = {
        BASELINE: [sys.executable, "-c", "pass"],
        "python -m mldeploy --help": [sys.executable, "-m", "mldeploy", "--help"],
        TOP_HELP: [*exe, "--help"],
        **{f"mldeploy {c} --help": [*exe, c, "--help"] for c in commands},
    }
    print(f"before: {load()} ({os.cpu_count()} CPUs); console script: {' '.join(exe)}")
    for name, cmd in cases.items():  # warm the OS file cache; a failing help is an error, not a fast figure
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if r.returncode != 0:
            print(f"{name}: exit {r.returncode}\n{r.stderr.decode(errors='replace')}", file=sys.stderr)
            return 1
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, cmd in cases.items():
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            results[name].append(time.perf_counter() - start)
    base = statistics.median(results[BASELINE])
    top = statistics.median(results[TOP_HELP])
    print(f"{'command':<36} {'median s':>9} {'best s':>8} {'× baseline':>11} {'× --help':>9} {'goal':>7}")
    worst_name, worst = "", 0.0
    for name, times in results.items():
        med = statistics.median(times)
        goal = "" if name == BASELINE else ("ok" if med <= GOAL_S else "MISSED")
        if name != BASELINE and med > worst:
            worst_name, worst = name, med
        print(f"{name:<36} {med:>9.3f} {min(times):>8.3f} {med / base:>11.1f} {med / top:>9.2f} {goal:>7}")
    print(f"\nafter: {load()}; {args.runs} runs each, round-robin")
    print(f"slowest: {worst_name} {worst:.3f} s = {worst / top:.2f} × `mldeploy --help`; "
          f"overhead over the interpreter: {worst - base:.3f} s (goal: total ≤ {GOAL_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
