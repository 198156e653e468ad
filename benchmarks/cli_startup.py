"""`mldeploy --help` wall time against `python -c pass`, measured in the same run.

Usage: python benchmarks/cli_startup.py [--runs N]
Goal: --help ≤ 0.3 s. Prints a table with the median, best and the ratio to the interpreter baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

GOAL_S = 0.3


def measure(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("mldeploy")
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "python -m mldeploy --help": [sys.executable, "-m", "mldeploy", "--help"],
    }
    if exe:
        cases["mldeploy --help (console script)"] = [exe, "--help"]
        cases["mldeploy validate --help"] = [exe, "validate", "--help"]
    for cmd in cases.values():  # warm the OS file cache
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    results = {name: measure(cmd, args.runs) for name, cmd in cases.items()}
    base = statistics.median(results["python -c pass (baseline)"])
    print(f"{'command':<36} {'median s':>9} {'best s':>8} {'× baseline':>11} {'goal':>8}")
    worst = 0.0
    for name, times in results.items():
        med = statistics.median(times)
        goal = "" if "baseline" in name else ("ok" if med <= GOAL_S else "MISSED")
        if "baseline" not in name:
            worst = max(worst, med)
        print(f"{name:<36} {med:>9.3f} {min(times):>8.3f} {med / base:>11.1f} {goal:>8}")
    print(f"\nstartup overhead over the interpreter: {worst - base:.3f} s (goal: total ≤ {GOAL_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
