"""How training rows are split over Ray Train workers: every row of each window goes to exactly one worker."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fti.errors import FtiError
from fti.training.ray_train import plan_shards, read_shard

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
WINDOWS = {"train": (T0, T0 + dt.timedelta(days=10)),
           "validation": (T0 + dt.timedelta(days=10), T0 + dt.timedelta(days=12))}


def _write(path, ids, days, row_group_size):
    times = pa.array([T0 + dt.timedelta(days=d, hours=1) for d in days], pa.timestamp("us", tz="UTC"))
    table = pa.table({"id": pa.array(ids, pa.int64()), "x": pa.array([float(i) for i in ids]),
                      "y": pa.array([i % 2 for i in ids], pa.int64()), "t": times})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path.as_uri()


def _all_rows(plan):
    got = {name: [] for name in WINDOWS}
    for units in plan:
        frames = read_shard(units, columns=["id", "x", "y"], time_col="t", windows=WINDOWS)
        for name, frame in frames.items():
            assert list(frame.columns) == ["id", "x", "y"]
            assert len(frame) > 0, (name, units)
            got[name] += frame["id"].tolist()
    return {name: sorted(ids) for name, ids in got.items()}


def test_many_row_groups_are_dealt_whole(tmp_path):
    # 4 files x 5 row groups, every row group holding both windows' rows and one row outside them
    files = [_write(tmp_path / f"{f}.parquet", list(range(f * 100, f * 100 + 100)),
                    [i % 13 for i in range(100)], 20) for f in range(4)]
    plan = plan_shards(files, time_col="t", windows=WINDOWS, num_workers=3)
    assert all(step == 1 for units in plan for _, _, step, _ in units)
    assert sorted(len(units) for units in plan) == [6, 7, 7]
    dealt = sorted((uri, rg) for units in plan for uri, rg, _, _ in units)
    assert dealt == sorted((uri, rg) for uri in files for rg in range(5))
    every = pd.concat([pq.read_table(f.removeprefix("file://")).to_pandas() for f in files])
    for name, ids in _all_rows(plan).items():
        lo, hi = WINDOWS[name]
        assert ids == sorted(every[(every.t >= lo) & (every.t < hi)]["id"].tolist()), name


def test_time_sorted_files_are_striped_so_each_worker_gets_each_window(tmp_path):
    # one file sorted by time: dealing whole row groups would give one worker no validation rows
    files = [_write(tmp_path / "sorted.parquet", list(range(120)), sorted(i % 12 for i in range(120)), 60)]
    plan = plan_shards(files, time_col="t", windows=WINDOWS, num_workers=2)
    assert plan == [[(files[0], 0, 2, 0), (files[0], 1, 2, 0)], [(files[0], 0, 2, 1), (files[0], 1, 2, 1)]]
    rows = _all_rows(plan)
    assert rows == {"train": list(range(100)), "validation": list(range(100, 120))}


def test_an_empty_window_is_named(tmp_path):
    files = [_write(tmp_path / "early.parquet", list(range(10)), [0] * 10, 10)]
    with pytest.raises(FtiError, match=r"the validation window 2024-01-11\.\.2024-01-13 of the training set has no"):
        plan_shards(files, time_col="t", windows=WINDOWS, num_workers=2)
