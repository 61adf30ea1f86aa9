"""The prediction time: ONE function, used by the labels (training spine) and by scoring.

``prediction_time = floor(reference - lead, batch_interval)`` on the local clock of the system's zone,
returned in UTC. For flights: reference = scheduled departure, lead = 2 h, interval = 1 day, so a
flight is scored at the New York midnight that opens the batch at least 2 h before it departs.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from fti.timeutil import UTC

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column


def _check(interval: dt.timedelta) -> int:
    seconds = int(interval.total_seconds())
    if seconds <= 0 or 86400 % seconds:
        raise ValueError(f"batch_interval must divide a day (1d, 12h, 6h, 1h...), not {interval}")
    return seconds


def prediction_time_col(reference: Column, *, lead: dt.timedelta, interval: dt.timedelta, tz: str) -> Column:
    """Spark column: the prediction time of each row's reference instant (UTC timestamps in and out)."""
    from pyspark.sql import functions as F

    step = _check(interval)
    shifted = F.timestamp_seconds(F.unix_seconds(reference) - int(lead.total_seconds()))
    wall = F.from_utc_timestamp(shifted, tz)  # local wall clock, held as a UTC timestamp
    floored = F.timestamp_seconds(F.floor(F.unix_seconds(wall) / step) * step)
    return F.to_utc_timestamp(floored, tz)


def prediction_time(reference: dt.datetime, *, lead: dt.timedelta, interval: dt.timedelta, tz: str) -> dt.datetime:
    """Python twin of :func:`prediction_time_col` for one instant (tests and the CLI use it)."""
    step = _check(interval)
    wall = (reference.astimezone(UTC) - lead).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    midnight = dt.datetime.combine(wall.date(), dt.time())
    since = int((wall - midnight).total_seconds()) // step * step
    return (midnight + dt.timedelta(seconds=since)).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
