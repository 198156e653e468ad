"""EC2 Auto Scaling groups and Application Auto Scaling scheduled actions."""

from __future__ import annotations

import re

from mldeploy.testing.aws_rules.core import Call, as_int, in_range, reject, rule


@rule("autoscaling", "CreateAutoScalingGroup", "UpdateAutoScalingGroup")
def auto_scaling_group(call: Call) -> None:
    # botocore autoscaling CreateAutoScalingGroupType.AutoScalingGroupName: "You cannot use a colon (:) in the
    # name"; MinSize ≤ MaxSize (the API answers ValidationError "Max bound, …, must be greater than or equal to min
    # bound"); a group has "LaunchConfigurationName, LaunchTemplate, InstanceId or MixedInstancesPolicy" — only one.
    p = call.params
    if ":" in str(p.get("AutoScalingGroupName", "")):
        reject("ValidationError", "You cannot use a colon (:) in the Auto Scaling group name")
    lo, hi = as_int(p.get("MinSize")), as_int(p.get("MaxSize"))
    if lo is not None and hi is not None and hi < lo:
        reject("ValidationError", f"Max bound, {hi}, must be greater than or equal to min bound, {lo}")
    if p.get("LaunchTemplate") and p.get("MixedInstancesPolicy"):
        reject("ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, "
                                  "InstanceId or MixedInstancesPolicy parameter.")
    dist = (p.get("MixedInstancesPolicy") or {}).get("InstancesDistribution") or {}
    in_range("ValidationError", "OnDemandPercentageAboveBaseCapacity", dist.get("OnDemandPercentageAboveBaseCapacity"),
           0, 100)


_CRON_CALL = re.compile(r"cron\((\S+ ){5}\S+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\S+\)")


@rule("application-autoscaling", "PutScheduledAction")
def scheduled_action(call: Call) -> None:
    # botocore application-autoscaling PutScheduledActionRequest.Schedule: "At expressions - "at(yyyy-mm-ddThh:mm:ss)"
    # Rate expressions - "rate(value unit)" Cron expressions - "cron(fields)" … The cron format consists of six
    # fields"; user guide: one of day-of-month / day-of-week must be "?"; ScalableTargetAction MinCapacity ≤
    # MaxCapacity ("ValidationException: Minimum capacity cannot be greater than maximum capacity").
    p = call.params
    schedule = str(p.get("Schedule", ""))
    if not _CRON_CALL.fullmatch(schedule):
        reject("ValidationException", f"Schedule {schedule!r} is not a valid at(), rate() or six-field cron() "
                                      "expression")
    if schedule.startswith("cron("):
        fields = schedule[5:-1].split()
        if (fields[2] == "?") == (fields[4] == "?"):
            reject("ValidationException", "Cron expression: one of day-of-month and day-of-week must be '?'")
    action = p.get("ScalableTargetAction") or {}
    lo, hi = as_int(action.get("MinCapacity")), as_int(action.get("MaxCapacity"))
    if lo is not None and hi is not None and lo > hi:
        reject("ValidationException", "Minimum capacity cannot be greater than maximum capacity")


_SCALE_IN_PROTECTED = ("Refresh", "Ignore", "Wait")  # botocore autoscaling ScaleInProtectedInstances enum
_STANDBY = ("Terminate", "Ignore", "Wait")  # botocore autoscaling StandbyInstances enum


@rule("autoscaling", "StartInstanceRefresh")
def instance_refresh(call: Call) -> None:
    # botocore autoscaling RefreshPreferences.MaxHealthyPercentage: "If you specify MaxHealthyPercentage, you must
    # also specify MinHealthyPercentage, and the difference between them cannot be greater than 100" (the 0–100 /
    # 100–200 ranges themselves are the model's min/max, checked by limits.model_limits); the enums are not checked
    # by botocore client-side (botocore/validate.py validates types and minima only).
    prefs = call.params.get("Preferences") or {}
    lo, hi = as_int(prefs.get("MinHealthyPercentage")), as_int(prefs.get("MaxHealthyPercentage"))
    if hi is not None and lo is None:
        reject("ValidationError", "MaxHealthyPercentage requires MinHealthyPercentage")
    if hi is not None and lo is not None and hi - lo > 100:
        reject("ValidationError", f"The difference between MaxHealthyPercentage ({hi}) and MinHealthyPercentage "
                                  f"({lo}) cannot be greater than 100")
    for key, allowed in (("ScaleInProtectedInstances", _SCALE_IN_PROTECTED), ("StandbyInstances", _STANDBY)):
        value = prefs.get(key)
        if value is not None and value not in allowed:
            reject("ValidationError", f"1 validation error detected: Value '{value}' at 'preferences.{key[:1].lower()}"
                                      f"{key[1:]}' failed to satisfy constraint: Member must satisfy enum value set: "
                                      f"[{', '.join(allowed)}]")
