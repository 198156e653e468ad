"""CloudWatch rules: metric alarms (Metrics vs single metric, periods, M out of N, tags)."""

from __future__ import annotations

from mldeploy.testing.aws_rules.core import Call, as_int, reject, rule

_SINGLE_METRIC = ("Namespace", "MetricName", "Dimensions", "Period", "Unit", "Statistic", "ExtendedStatistic")


@rule("cloudwatch", "PutMetricAlarm")
def metric_alarm(call: Call) -> None:
    # botocore cloudwatch PutMetricAlarmInput.Metrics: "If you use the Metrics parameter, you cannot include the
    # Namespace, MetricName, Dimensions, Period, Unit, Statistic, or ExtendedStatistic parameters"; MetricName: "you
    # must specify either MetricName, a Metrics array, or an EvaluationCriteria"; DatapointsToAlarm is the M of an
    # "M out of N" alarm whose N is EvaluationPeriods; Period: "Valid values are 10, 20, 30, and any multiple of
    # 60", "Period multiplied by EvaluationPeriods can't be more than 604,800 seconds. For alarms with a period of
    # less than one hour (3,600 seconds), the total evaluation period can't be longer than one day"; Tags: "as many
    # as 50 tags".
    p = call.params
    if p.get("Metrics") and any(p.get(k) is not None for k in _SINGLE_METRIC):
        reject("InvalidParameterCombination", "Metrics cannot be combined with " +
               ", ".join(k for k in _SINGLE_METRIC if p.get(k) is not None))
    if not (p.get("Metrics") or p.get("MetricName") or p.get("EvaluationCriteria")):
        reject("ValidationError", "One of MetricName, Metrics or EvaluationCriteria must be specified")
    n, m = as_int(p.get("EvaluationPeriods")), as_int(p.get("DatapointsToAlarm"))
    if n is not None and m is not None and m > n:
        reject("ValidationError", f"DatapointsToAlarm ({m}) must be less than or equal to EvaluationPeriods ({n})")
    periods = [as_int(p.get("Period"))] + [as_int((q.get("MetricStat") or {}).get("Period") or q.get("Period"))
                                         for q in p.get("Metrics") or []]
    for period in (x for x in periods if x is not None):
        if period not in (10, 20, 30) and period % 60:
            reject("ValidationError", f"Period ({period}) must be 10, 20, 30 or a multiple of 60")
        if n is not None and period * n > (604800 if period >= 3600 else 86400):
            reject("ValidationError", f"Period ({period}) x EvaluationPeriods ({n}) exceeds the maximum evaluation "
                                      "range")
    if len(p.get("Tags") or []) > 50:
        reject("LimitExceeded", "The maximum number of tags for an alarm is 50")
