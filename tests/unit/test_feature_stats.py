"""Statistics recorded with each feature commit, on a host that is not set to UTC."""

from __future__ import annotations

import datetime as dt
import os
import time

from fti.features.pipeline import stat_value


def test_naive_timestamps_from_collect_are_local_time_not_utc(monkeypatch):
    """PySpark's collect() returns naive datetimes in the process's zone: 00:00 in New York is 05:00 UTC (the
    stats used to label it 00:00Z, so freshness was off by the host's UTC offset)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert stat_value(dt.datetime(2013, 1, 1, 0, 0)) == "2013-01-01T05:00:00.000000Z"
        assert stat_value(dt.datetime(2013, 7, 1, 0, 0)) == "2013-07-01T04:00:00.000000Z"
    finally:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
    assert os.environ["TZ"] == "UTC"
    assert stat_value(dt.datetime(2013, 1, 1, 0, 0, tzinfo=dt.timezone.utc)) == "2013-01-01T00:00:00.000000Z"
    assert stat_value(dt.date(2013, 1, 1)) == "2013-01-01" and stat_value(3) == 3
