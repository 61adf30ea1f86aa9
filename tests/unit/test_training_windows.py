"""The training windows are read in one order whatever order the training set's files hold the rows in: XGBoost
(subsampling, histogram sketches) gives a different model for the same rows in another order."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from fti.training.pipeline import read_windows

UTC = dt.timezone.utc


def _write(path, order):
    ids = [f"f{i:03d}" for i in range(40)]
    times = [dt.datetime(2013, 1, 1 + i % 20, tzinfo=UTC) for i in range(40)]
    rows = [(ids[i], times[i], float(i), i % 2) for i in order]
    table = pa.table({"flight_id": [r[0] for r in rows], "prediction_time": pa.array([r[1] for r in rows],
                      pa.timestamp("us", tz="UTC")), "x": [r[2] for r in rows], "delayed": [r[3] for r in rows]})
    pq.write_table(table, path)
    return str(path)


def test_windows_are_read_in_one_order_whatever_the_files_order_of_rows(tmp_path):
    windows = {"train": (dt.datetime(2013, 1, 1, tzinfo=UTC), dt.datetime(2013, 1, 15, tzinfo=UTC)),
               "test": (dt.datetime(2013, 1, 15, tzinfo=UTC), dt.datetime(2013, 1, 21, tzinfo=UTC))}
    forward = _write(tmp_path / "a.parquet", list(range(40)))
    backward = _write(tmp_path / "b.parquet", list(reversed(range(40))))
    one = read_windows([forward], windows, ["x", "delayed"], "prediction_time", table="t", order_by=["flight_id"])
    other = read_windows([backward], windows, ["x", "delayed"], "prediction_time", table="t", order_by=["flight_id"])
    for name in windows:
        assert one[name].num_rows > 0
        assert one[name].equals(other[name]), name
