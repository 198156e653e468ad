"""Shadow-evaluation measures as the CLI reads them, the ``release.gates`` judged on them, and the shadow phase of
``canary --auto`` (docs/release-gates.md).

Measures have one shape whichever target they come from (``runtime.shadow.PairStats.to_json``): ``rows``,
``agreement``, ``shift.max_psi``, ``candidate_latency_ms.p99`` … Locally they are read from the runtime's
``GET /shadow`` on its metrics port; on AWS from the CloudWatch metrics its EMF lines create (``Shadow*`` in the
``mldeploy`` namespace, dimensions app, env, Candidate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.errors import ExitCode, MldeployError, RolledBackError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config.schema import ReleaseGates
    from mldeploy.release.history import HistoryStore
    from mldeploy.release.ops import BeforeStart
    from mldeploy.ui import Ui

Measures = dict[str, Any]
NAMESPACE = "mldeploy"  # runtime.settings.Settings.emf_namespace


@dataclass(frozen=True)
class GateResult:
    name: str  # release.gates.<name>
    ok: bool
    detail: str


def evaluate(m: Measures, gates: ReleaseGates) -> list[GateResult]:
    """Every configured gate against the measures (``min_samples`` first; unset gates are skipped)."""
    rows = int(m.get("rows") or 0)
    out = [GateResult("min_samples", rows >= gates.min_samples, f"{rows} shadowed rows (need {gates.min_samples})")]
    if gates.min_agreement is not None:
        a = m.get("agreement")
        out.append(GateResult("min_agreement", a is not None and a >= gates.min_agreement,
                              f"agreement {_pct(a)} (minimum {_pct(gates.min_agreement)})"))
    if gates.max_shift is not None:
        psi = (m.get("shift") or {}).get("max_psi")
        out.append(GateResult("max_shift", psi is not None and psi <= gates.max_shift,
                              f"top-score PSI {psi:.4f} (maximum {gates.max_shift})" if psi is not None else
                              "top-score PSI not measured (the model gives no probabilities)"))
    if gates.max_candidate_p99_ms is not None:
        p99 = (m.get("candidate_latency_ms") or {}).get("p99")
        out.append(GateResult("max_candidate_p99_ms", p99 is not None and p99 <= gates.max_candidate_p99_ms,
                              f"candidate p99 {p99} ms (maximum {gates.max_candidate_p99_ms} ms)"))
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def pair_of(report: dict[str, Any], candidate: str, stable: str | None = None) -> Measures | None:
    """The measures of ``candidate`` (against ``stable`` when given) in a ``GET /shadow`` document."""
    pairs = [p for p in report.get("pairs") or [] if p.get("candidate") == candidate
             and (stable is None or p.get("stable") == stable)]
    return max(pairs, key=lambda p: p.get("rows") or 0) if pairs else None


def read_local(metrics_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """``GET {metrics_url}/shadow`` of a local runtime."""
    import httpx

    url = metrics_url.rstrip("/") + "/shadow"
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        raise MldeployError(f"could not read the shadow measures at {url}: {e}",
                            hint="is the server running with a shadow version? --metrics-url names its metrics "
                                 "port (runtime.metrics_port)", exit_code=ExitCode.NOT_READY) from e
    if r.status_code != 200:
        raise MldeployError(f"{url} answered {r.status_code}: the server has no shadow evaluation (it serves one "
                            "version)", hint="`mldeploy canary --shadow --target local` starts one",
                            exit_code=ExitCode.NOT_READY)
    return dict(r.json())


def read_cloudwatch(clients: Clients, app: str, env: str, candidate: str, since_s: int = 3600,
                    now: float | None = None) -> Measures:
    """The shadow measures of ``candidate`` over the last ``since_s`` from the EMF-created CloudWatch metrics."""
    from datetime import UTC, datetime, timedelta

    from mldeploy.aws.clients import aws_errors

    at = datetime.fromtimestamp(now or time.time(), UTC)
    start = at - timedelta(seconds=since_s)
    # a minute past now: EndTime is exclusive, and a point logged this very second must count (CloudWatch
    # returns nothing for the future part of a window)
    end = at + timedelta(seconds=60)
    window = since_s + 60
    dims = [{"Name": "app", "Value": app}, {"Name": "env", "Value": env}, {"Name": "Candidate", "Value": candidate}]
    # GetMetricStatistics: "The maximum number of data points returned from a single call is 1,440" — one period
    # spanning the window returns one point (Period: "multiple of 60", botocore cloudwatch GetMetricStatistics)
    period = max(60, window + (-window) % 60)  # one period covers the whole window

    def stat(name: str, **kw: Any) -> list[dict[str, Any]]:
        with aws_errors("cloudwatch:GetMetricStatistics"):
            return clients.cloudwatch.get_metric_statistics(
                Namespace=NAMESPACE, MetricName=name, Dimensions=dims, StartTime=start, EndTime=end,
                Period=period, **kw)["Datapoints"]

    def total(name: str) -> float:
        return sum(p.get("Sum", 0.0) for p in stat(name, Statistics=["Sum"]))

    rows, agreements = total("ShadowRows"), total("ShadowAgreements")
    psi = [p["Maximum"] for p in stat("ShadowPSI", Statistics=["Maximum"]) if "Maximum" in p]
    lat = stat("ShadowLatency", ExtendedStatistics=["p50", "p99"])
    ext = [p.get("ExtendedStatistics") or {} for p in lat]
    p99 = max((e["p99"] for e in ext if "p99" in e), default=None)
    p50 = max((e["p50"] for e in ext if "p50" in e), default=None)
    return {"candidate": candidate, "rows": int(rows), "agreements": int(agreements),
            "agreement": round(agreements / rows, 6) if rows else None,
            "shift": {"max_psi": max(psi) if psi else None, "psi": max(psi) if psi else None},
            "candidate_latency_ms": {"p50": p50, "p99": p99, "count": None},
            "source": f"CloudWatch {NAMESPACE} Shadow* metrics, last {since_s}s"}


def lines(m: Measures | None, gates: ReleaseGates | None = None) -> list[str]:
    """The measures (and gate verdicts) for the terminal."""
    if m is None:
        return ["no shadow measures yet (no request was shadowed)"]
    shift = m.get("shift") or {}
    lat = m.get("candidate_latency_ms") or {}
    out = [f"{m.get('stable', 'stable')} vs {m.get('candidate')}: {m.get('rows', 0)} rows, agreement "
           f"{_pct(m.get('agreement'))}",
           "top-score PSI " + (f"{shift['psi']:.4f} (worst class {shift.get('max_psi', 0):.4f})"
                               if shift.get("psi") is not None else "n/a"),
           f"candidate latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms"]
    per = shift.get("per_class") or {}
    if per:
        out.append("PSI per class: " + ", ".join(f"{c} {v:.4f}" for c, v in per.items()))
    if isinstance(m.get("disagreements"), list) and m["disagreements"]:
        out.append(f"{len(m['disagreements'])} most-disagreeing rows kept (see --json)")
    if gates is not None:
        out += [("pass " if g.ok else "FAIL ") + f"{g.name}: {g.detail}" for g in evaluate(m, gates)]
    return out


def shadow_phase(target: Any, history: HistoryStore, ui: Ui, *, gates: ReleaseGates, version: str,
                 read: Callable[[], Measures | None], before_start: BeforeStart | None = None,
                 image: str | None = None, build: Any = None, on_tick: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, interval: float = 1.0) -> Measures:
    """Start the candidate at 0 % with shadow evaluation, wait for ``min_samples``, judge the gates; a failed
    gate (or no samples in ``shadow_timeout_s``) removes the candidate and raises RolledBackError (exit 6)."""
    from mldeploy.release import ops

    ops.canary(target, history, ui, percent=0, image=image, version=version, build=build,
               before_start=before_start)
    try:
        target.set_shadow(version, gates.sample)
    except MldeployError as e:  # e.g. AWS: the tasks cannot hold both models: the 0 % canary goes too
        ops.rollback_canary(ops.load(target, history), ui, f"shadow phase not started: {e.message}")
        raise
    ui.info(f"shadow phase: {version} answers {gates.sample:.0%} of the stable requests off the request path; "
            f"waiting for {gates.min_samples} rows (at most {gates.shadow_timeout_s}s)")
    deadline = time.monotonic() + gates.shadow_timeout_s
    measures: Measures | None = None
    while True:
        try:
            measures = read()
        except MldeployError as e:
            ui.info(f"shadow measures not readable yet: {e.message}")
        if measures is not None and (measures.get("rows") or 0) >= gates.min_samples:
            break
        if time.monotonic() >= deadline:
            break
        if on_tick is not None:
            on_tick()
        sleep(interval)
    results = evaluate(measures or {}, gates)
    for line in lines(measures, gates):
        ui.info(f"  {line}")
    failed = [g for g in results if not g.ok]
    if failed:
        names = ", ".join(f"release.gates.{g.name}" for g in failed)
        reason = "; ".join(f"{g.name}: {g.detail}" for g in failed)
        ops.rollback_canary(ops.load(target, history), ui, f"shadow gate failed: {reason}")
        raise RolledBackError(f"shadow gate {names} failed for {version} ({reason}): the candidate was removed "
                              "before taking any traffic",
                              hint="`mldeploy canary --report` shows the measures of a manual shadow run "
                                   "(`mldeploy canary --shadow`); `mldeploy history` records the outcome")
    ui.success(f"shadow gates passed for {version}: " + "; ".join(g.detail for g in results))
    return measures or {}
