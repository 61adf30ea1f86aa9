"""Declared aggregations compiled to Spark, on hand-written rows compared whole with chispa: every function, a
``where``, buckets, two windows; the group's ``event_time`` is the latest row its longest window covers."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_approx_df_equality

from fti.authoring import Aggregation, FeatureGroup

UTC = dt.timezone.utc


def ts(d: int, h: int) -> dt.datetime:
    return dt.datetime(2024, 3, d, h, tzinfo=UTC)


GROUP = FeatureGroup(
    name="spend", keys=("user_id",), sources=("orders",), description="a user's trailing orders",
    aggregations=(
        Aggregation(None, "count", ("1d", "3d"), name="orders_{window}"),
        Aggregation("amount", "sum", "3d"),
        Aggregation("amount", "mean", "3d"),
        Aggregation("amount", "min", "3d"),
        Aggregation("amount", "max", "3d"),
        Aggregation("amount", "variance", "3d"),
        Aggregation("amount", "stddev", ("1d", "3d")),
        Aggregation("amount", "last", "3d"),
        Aggregation("item", "count_distinct", "3d", name="items_{window}"),
        Aggregation(None, "count", "3d", bucket_by="channel", buckets=("web", "app"), name="orders_{bucket}_{window}"),
        Aggregation("amount", "sum", "3d", where="amount > 15", name="big_spend_{window}"),
    ),
)

ROWS = [
    ("u1", dt.date(2024, 3, 1), ts(1, 10), 10.0, "web", "a"),
    ("u1", dt.date(2024, 3, 1), ts(1, 12), 20.0, "app", "b"),
    ("u1", dt.date(2024, 3, 2), ts(2, 9), 30.0, "web", "a"),
    ("u1", dt.date(2024, 3, 4), ts(4, 8), None, "app", "c"),
    ("u1", dt.date(2024, 3, 4), None, 99.0, "web", "d"),  # not known yet: counts nowhere
    ("u2", dt.date(2024, 3, 2), ts(2, 11), 5.0, "web", "a"),
]
SCHEMA = "user_id string, day date, event_time timestamp, amount double, channel string, item string"

EXPECTED_SCHEMA = (
    "user_id string, day date, event_time timestamp, orders_1d bigint, orders_3d bigint, sum_amount_3d double, "
    "mean_amount_3d double, min_amount_3d double, max_amount_3d double, variance_amount_3d double, "
    "stddev_amount_1d double, stddev_amount_3d double, last_amount_3d double, items_3d bigint, orders_web_3d bigint, "
    "orders_app_3d bigint, big_spend_3d double")
S2 = 50 ** 0.5
EXPECTED = [
    ("u1", dt.date(2024, 3, 1), ts(1, 12), 2, 2, 30.0, 15.0, 10.0, 20.0, 50.0, S2, S2, 20.0, 2, 1, 1, 20.0),
    ("u1", dt.date(2024, 3, 2), ts(2, 9), 1, 3, 60.0, 20.0, 10.0, 30.0, 100.0, None, 10.0, 30.0, 2, 2, 1, 50.0),
    # Mar 4: its one known row has no amount; the window Mar 2..4 still holds Mar 2's
    ("u1", dt.date(2024, 3, 4), ts(4, 8), 1, 2, 30.0, 30.0, 30.0, 30.0, None, None, None, 30.0, 2, 1, 1, 30.0),
    ("u2", dt.date(2024, 3, 2), ts(2, 11), 1, 1, 5.0, 5.0, 5.0, 5.0, None, None, None, 5.0, 1, 1, 0, None),
]


def test_every_declared_function_over_trailing_windows(spark):
    got = GROUP.transform({"orders": spark.createDataFrame(ROWS, SCHEMA)})
    assert_approx_df_equality(got, spark.createDataFrame(EXPECTED, EXPECTED_SCHEMA), 1e-9, ignore_row_order=True,
                              ignore_nullable=True)


def test_partials_of_separate_days_combine_to_the_recompute(spark):
    """The state's way: each day's partials computed on their own (as a run recomputes only its days), unioned with
    the stored ones, combine to the same rows."""
    from functools import reduce

    from pyspark.sql import functions as F

    rows = spark.createDataFrame(ROWS, SCHEMA)
    days = [r.day for r in rows.select("day").distinct().collect()]
    parts = [GROUP.daily({"orders": rows.where(F.col("day") == d)}) for d in days]
    got = GROUP.combine(reduce(lambda a, b: a.unionByName(b), parts))
    assert_approx_df_equality(got, spark.createDataFrame(EXPECTED, EXPECTED_SCHEMA), 1e-9, ignore_row_order=True,
                              ignore_nullable=True)


@pytest.mark.parametrize("day", [dt.date(2024, 3, 2), dt.date(2024, 3, 4)])
def test_combine_of_the_days_written_equals_those_rows_of_the_whole_combine(spark, day):
    """What an incremental run asks for (``days=``): only those days' rows, each aggregating the partials its
    windows cover (a join), equal to the same rows of the window-function combine."""
    from pyspark.sql import functions as F

    partials = GROUP.daily({"orders": spark.createDataFrame(ROWS, SCHEMA)})
    expected = spark.createDataFrame(EXPECTED, EXPECTED_SCHEMA).where(F.col("day") == day)
    assert expected.count() > 0
    assert_approx_df_equality(GROUP.combine(partials, days=[day]), expected, 1e-9, ignore_row_order=True,
                              ignore_nullable=True)
