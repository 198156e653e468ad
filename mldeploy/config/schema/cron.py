"""AWS cron expressions (Application Auto Scaling scheduled actions), checked at ``validate`` time."""

from __future__ import annotations

import re

CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_CRON_FIELD = {
    # Application Auto Scaling user guide, "Schedule recurring scaling actions using cron expressions" (the
    # EventBridge cron format): values, ranges a-b, lists a,b, increments a/b, * (all) and ? (any); L and W for
    # day-of-month, L and # for day-of-week
    "minutes": r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "hours": r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "day-of-month": r"\?|L|\d{1,2}W|(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,\d{1,2}(-\d{1,2})?)*",
    "month": r"(\*|(\d{1,2}|[A-Z]{3})(-(\d{1,2}|[A-Z]{3}))?)(/\d{1,2})?(,(\d{1,2}|[A-Z]{3})(-(\d{1,2}|[A-Z]{3}))?)*",
    "day-of-week": r"\?|[1-7A-Z]{1,3}L|[1-7A-Z]{1,3}#[1-5]|(\*|([1-7]|[A-Z]{3})(-([1-7]|[A-Z]{3}))?)(/\d)?"
                   r"(,([1-7]|[A-Z]{3})(-([1-7]|[A-Z]{3}))?)*",
    "year": r"(\*|\d{4}(-\d{4})?)(/\d{1,3})?(,\d{4}(-\d{4})?)*",
}
_CRON_RANGE = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12),
               "day-of-week": (1, 7), "year": (1970, 2199)}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # day-of-week 1-7 = SUN-SAT


def parse_cron(text: str) -> str:
    """``cron(m h dom mon dow year)`` (the ``cron(...)`` wrapper optional) → the six fields, or ValueError.

    botocore application-autoscaling PutScheduledActionRequest.Schedule: "The cron format consists of six fields
    separated by white spaces: [Minutes] [Hours] [Day_of_Month] [Month] [Day_of_Week] [Year]" (UTC by default);
    the user guide: "You can't specify the Day-of-month and Day-of-week fields in the same cron expression. If you
    specify a value (or a *) in one of the fields, you must use a ? (question mark) in the other"."""
    inner = text.strip()
    if inner.startswith("cron(") and inner.endswith(")"):
        inner = inner[5:-1].strip()
    fields = inner.upper().split()
    if len(fields) != 6:
        raise ValueError(f"{text!r} has {len(fields)} fields; AWS cron has 6: minutes hours day-of-month month "
                         "day-of-week year, e.g. '0 20 ? * MON-FRI *'")
    for name, value in zip(CRON_FIELDS, fields, strict=True):
        if not re.fullmatch(_CRON_FIELD[name], value):
            raise ValueError(f"{text!r}: {name} field {value!r} is not a cron value, range, list or increment")
        names = {"month": _MONTHS, "day-of-week": _DAYS}.get(name, ())
        if bad := [w for w in re.findall(r"[A-Z]{3}", value) if w not in names]:
            raise ValueError(f"{text!r}: {name} {bad[0]} is not one of {', '.join(names) or 'the numbers'}")
        low, high = _CRON_RANGE[name]
        for number in re.findall(r"(?<![/#])\b\d+", value):
            if not low <= int(number) <= high:
                raise ValueError(f"{text!r}: {name} {number} is outside {low}–{high}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"{text!r}: exactly one of day-of-month and day-of-week must be '?' (AWS cron)")
    return " ".join(fields)
