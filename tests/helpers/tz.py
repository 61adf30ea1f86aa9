"""Timestamps collected from Spark are naive datetimes in the PROCESS's local zone (PySpark converts with the
local clock, whatever the session zone): tests that may run under another zone than UTC (``FTI_TEST_TZ``)
compare them through :func:`utc`, and build expected rows from aware datetimes."""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive local datetime from ``collect()`` as the naive UTC wall clock it stands for (aware ones too)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None)


def aware(*args: int) -> dt.datetime:
    """``dt.datetime(*args)`` in UTC: what ``createDataFrame`` reads the same in every process zone."""
    return dt.datetime(*args, tzinfo=UTC)
