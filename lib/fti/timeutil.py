"""Time on the command line and in pipelines: calendar days in the system's zone, instants in UTC.

Dates (``--through``, ``--start``, ``--end``) are calendar days in the system's zone; ``--start`` is
inclusive, ``--end`` exclusive, ``--through`` inclusive. Timestamps (``--as-of``, ``--now``) are
ISO-8601; without an offset they are in the system's zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo

from fti.errors import ConfigError

UTC = dt.timezone.utc
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> dt.timedelta:
    """``"2h"``, ``"1d"``, ``"30m"``, ``"7d"`` or seconds as a number -> timedelta."""
    if isinstance(text, (int, float)):
        return dt.timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"duration {text!r} is not understood", hint="write it like 90s, 30m, 2h, 1d or 7d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_day(text: str, *, option: str = "date") -> dt.date:
    """Parse a calendar day ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date", hint="write days as YYYY-MM-DD") from None


def parse_instant(text: str, tz: str, *, option: str = "timestamp") -> dt.datetime:
    """Parse an ISO-8601 timestamp; without an offset it is in zone ``tz``. Returns UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO-8601 timestamp",
                          hint="write it like 2013-12-01T00:00 (system time zone) or 2013-12-01T05:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def day_start(day: dt.date, tz: str) -> dt.datetime:
    """The UTC instant at which local calendar day ``day`` begins in zone ``tz``."""
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_day(instant: dt.datetime, tz: str) -> dt.date:
    """The local calendar day of a UTC instant in zone ``tz``."""
    return instant.astimezone(ZoneInfo(tz)).date()


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Days from ``start`` inclusive to ``end`` exclusive."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def plan_batches(start: dt.date, through: dt.date, batch: str) -> list[tuple[dt.date, dt.date]]:
    """Split ``start..through`` (inclusive) into batches of a day, 7 days, or to each month's end."""
    batches = []
    day = start
    while day <= through:
        if batch == "day":
            last = day
        elif batch == "week":
            last = day + dt.timedelta(days=6)
        elif batch == "month":
            last = dt.date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
        else:
            raise ValueError(f"batch must be day, week or month, not {batch!r}")
        last = min(last, through)
        batches.append((day, last))
        day = last + dt.timedelta(days=1)
    return batches
