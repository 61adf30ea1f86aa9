"""A DeltaSource is an existing Delta table written by plain Spark (not by fti), read in place by its own versions:
after each change a user makes to it (an append with a late row, OPTIMIZE, DELETE, UPDATE, an overwrite) the feature
rows equal an independent pandas recomputation of the same definitions over the table's current rows, and an
OPTIMIZE alone changes nothing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from fti.authoring import DeltaSource, Feature, FeatureGroup, Labels, Project
from fti.config import load_config
from fti.errors import FtiError
from fti.features import pipeline
from fti.store import open_store

UTC = dt.timezone.utc
SCHEMA = "user_id string, ts timestamp, amount double"
LENIENT = {"FTI__FEATURES__MAX_BAD_SHARE": "0.5"}  # one bad row of five is quarantined, not a rejected batch


def _parse(raw, *, now, **_):
    reason = (F.when(F.col("user_id").isNull(), F.lit("null key: user_id"))
              .when(F.col("amount") < 0, F.lit("negative amount")))
    return raw.select("user_id", F.col("ts").alias("event_time"), F.to_date("ts").alias("day"), "amount",
                      "ingested_at", reason.alias("_reason"), *[c for c in raw.columns if c.startswith("_raw_")])


def _daily(inputs, **_):
    return inputs["events"].groupBy("user_id", "day").agg(F.max("event_time").alias("event_time"),
                                                          F.count(F.lit(1)).alias("payments"),
                                                          F.sum("amount").alias("spent"))


def _trailing(inputs, **_):
    from pyspark.sql import Window

    daily = _daily(inputs).withColumn("_d", F.datediff("day", F.lit("1970-01-01").cast("date")))
    w = Window.partitionBy("user_id").orderBy("_d").rangeBetween(-2, 0)
    return daily.select("user_id", "day", F.max("event_time").over(w).alias("event_time"),
                        F.sum("payments").over(w).alias("payments_3d"))


def _labels(events, *, config):
    return events.groupBy("user_id", "day").agg(F.max((F.col("amount") > 100).cast("int")).alias("big")) \
        .select("user_id", "day", F.col("day").cast("timestamp").alias("prediction_time"), "big")


def _project(location: str) -> Project:
    events = DeltaSource(name="events", location=location, columns=("user_id", "ts", "amount"),
                         description="payments, written by the payments team", day=lambda: F.to_date("ts"))
    return Project(
        sources={"events": events}, parsers={"events": _parse},
        groups=(FeatureGroup(name="spend", keys=("user_id",), sources=("events",), transform=_daily,
                             description="payments of the day",
                             features=(Feature("payments", "bigint", "payments that day"),
                                       Feature("spent", "double", "amount paid that day"))),
                FeatureGroup(name="spend_3d", keys=("user_id",), sources=("events",), transform=_trailing,
                             lookback_days=3, description="payments over 3 days",
                             features=(Feature("payments_3d", "bigint", "payments over the last 3 days"),))),
        labels=Labels(source="events", transform=_labels, description="did the user make a big payment that day",
                      schema_ddl="user_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                                 "big int, ingested_at timestamp NOT NULL"),
        name="synthetic")


def _expected(spark, location: str) -> dict[str, pd.DataFrame]:
    """The same definitions in pandas over the table's current rows (good rows only)."""
    ev = spark.read.format("delta").load(location).toPandas()
    ev = ev[ev.user_id.notna() & (ev.amount >= 0)].copy()
    ev["day"] = ev.ts.dt.date
    daily = ev.groupby(["user_id", "day"]).agg(payments=("amount", "size"), spent=("amount", "sum")).reset_index()
    rows = []
    for (user, day), _ in daily.groupby(["user_id", "day"]):
        window = daily[(daily.user_id == user) & (daily.day <= day) & (daily.day > day - dt.timedelta(days=3))]
        rows.append((user, day, int(window.payments.sum())))
    labels = ev.assign(big=(ev.amount > 100).astype(int)).groupby(["user_id", "day"]).big.max().reset_index()
    return {"spend": daily.sort_values(["user_id", "day"]).reset_index(drop=True),
            "spend_3d": pd.DataFrame(rows, columns=["user_id", "day", "payments_3d"]),
            "labels": labels.sort_values(["user_id", "day"]).reset_index(drop=True)}


def _check(spark, store, location):
    want = _expected(spark, location)
    got = {"spend": store.read("synthetic/spend").select("user_id", "day", "payments", "spent"),
           "spend_3d": store.read("synthetic/spend_3d").select("user_id", "day", "payments_3d"),
           "labels": store.read("synthetic/labels").select("user_id", "day", "big")}
    for name, frame in got.items():
        g = frame.toPandas().sort_values(["user_id", "day"]).reset_index(drop=True)
        w = want[name].sort_values(["user_id", "day"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(g, w[g.columns.tolist()], check_dtype=False, obj=name)


def _rows(spark, *rows):
    return spark.createDataFrame([(u, dt.datetime.fromisoformat(t).replace(tzinfo=UTC), a) for u, t, a in rows], SCHEMA)


def test_a_delta_table_written_by_plain_spark_is_read_in_place_through_append_optimize_delete_update(spark, tmp_path):
    from delta.tables import DeltaTable

    location = str(tmp_path / "bronze" / "events")
    settings = load_config("synthetic", home=tmp_path / "home", env=LENIENT)
    store = open_store(spark, settings)
    project = _project(location)

    def run(hour: int):
        return pipeline.run(store, settings, system=project, now=dt.datetime(2024, 3, 10, hour, tzinfo=UTC))

    _rows(spark, ("u1", "2024-03-01T09:00:00", 20.0), ("u1", "2024-03-01T18:00:00", 150.0),
          ("u2", "2024-03-01T10:00:00", 5.0), ("u2", "2024-03-02T11:00:00", 7.0),
          ("u3", "2024-03-02T12:00:00", -1.0)).write.format("delta").save(location)  # version 0 (u3: bad)
    first = run(1)
    assert first.raw_versions == {"events": 0} and first.new_rows["events"] == 5 and first.bad_rows["events"] == 1
    _check(spark, store, location)
    assert store.watermark("synthetic/spend", "events") == 0
    assert store.read("synthetic/quarantine").where("source = 'events'").count() == 1

    # an append (version 1) with a new day and a late row of Mar 1: Mar 1 is recomputed, and the 3-day window
    # of Mar 2 and 3 with it
    _rows(spark, ("u1", "2024-03-03T08:00:00", 30.0), ("u2", "2024-03-01T23:00:00", 1.0)) \
        .write.format("delta").mode("append").save(location)
    second = run(2)
    assert second.new_rows["events"] == 2
    spend = next(o for o in second.outputs if o.table == "synthetic/spend")
    assert (spend.first_day, spend.last_day) == (dt.date(2024, 3, 1), dt.date(2024, 3, 3))
    _check(spark, store, location)

    # OPTIMIZE (version 2, dataChange=false): no new rows, nothing rewritten
    DeltaTable.forPath(spark, location).optimize().executeCompaction()
    before = {t: store.version(t) for t in ("synthetic/spend", "synthetic/spend_3d", "synthetic/labels")}
    third = run(3)
    assert third.new_rows["events"] == 0 and all(o.status == "up to date" for o in third.outputs), third.outputs
    assert {t: store.version(t) for t in before} == before

    # DELETE u1's Mar 1 rows (version 3): Mar 1 of u1 goes from spend, and its payments leave u1's 3-day windows
    DeltaTable.forPath(spark, location).delete("user_id = 'u1' AND to_date(ts) = '2024-03-01'")
    fourth = run(4)
    assert fourth.new_rows["events"] >= 0
    _check(spark, store, location)
    assert store.read("synthetic/spend").where("user_id = 'u1' AND day = '2024-03-01'").count() == 0

    # UPDATE an amount (version 4) and an overwrite of the whole table (version 5)
    DeltaTable.forPath(spark, location).update("user_id = 'u2' AND to_date(ts) = '2024-03-02'", {"amount": "700.0"})
    run(5)
    _check(spark, store, location)
    assert store.read("synthetic/labels").where("user_id = 'u2' AND day = '2024-03-02'").first().big == 1
    _rows(spark, ("u4", "2024-03-02T09:00:00", 3.0), ("u2", "2024-03-03T09:00:00", 4.0)) \
        .write.format("delta").mode("overwrite").save(location)
    run(6)
    _check(spark, store, location)
    assert store.watermark("synthetic/spend", "events") == 5


def test_a_removed_file_that_was_vacuumed_stops_the_run_and_names_the_backfill(spark, tmp_path):
    import shutil

    from delta.tables import DeltaTable

    location = tmp_path / "events"
    settings = load_config("synthetic", home=tmp_path / "home", env=LENIENT)
    store = open_store(spark, settings)
    project = _project(str(location))
    _rows(spark, ("u1", "2024-03-01T09:00:00", 20.0)).write.format("delta").save(str(location))
    pipeline.run(store, settings, system=project, now=dt.datetime(2024, 3, 10, tzinfo=UTC))
    old = {p.name for p in location.glob("*.parquet")}
    DeltaTable.forPath(spark, str(location)).delete("user_id = 'u1'")
    for name in old:  # what VACUUM does once the retention has passed
        (location / name).unlink()
    shutil.rmtree(location / "_delta_log" / "_commits", ignore_errors=True)
    before = store.version("synthetic/spend")
    with pytest.raises(FtiError, match=r"version 1 removed or rewrote rows of 1 file\(s\) that can no longer be read "
                                       r"at version 0.*nothing was written"):
        pipeline.run(store, settings, system=project, now=dt.datetime(2024, 3, 11, tzinfo=UTC))
    assert store.version("synthetic/spend") == before


def test_fti_lands_nothing_into_a_delta_source(spark, tmp_path):
    from fti.features.insert import insert

    location = str(tmp_path / "events")
    settings = load_config("synthetic", home=tmp_path / "home", env=LENIENT)
    store = open_store(spark, settings)
    with pytest.raises(FtiError, match="is the Delta table .* read in place: fti lands nothing into it"):
        insert(store, settings, "events", _rows(spark, ("u1", "2024-03-01T09:00:00", 1.0)), project=_project(location))


def test_a_delta_source_named_in_the_spark_catalog_is_read_at_its_location(spark, tmp_path):
    from fti.features.delta_source import location_of

    location = tmp_path / "catalogued"
    _rows(spark, ("u1", "2024-03-01T09:00:00", 20.0)).write.format("delta").save(str(location))
    spark.sql(f"CREATE TABLE IF NOT EXISTS fti_test_events USING delta LOCATION '{location}'")
    try:
        named = _project("default.fti_test_events")
        assert location_of(spark, named.sources["events"]).local == location.resolve()
        settings = load_config("synthetic", home=tmp_path / "home", env=LENIENT)
        store = open_store(spark, settings)
        report = pipeline.run(store, settings, system=named, now=dt.datetime(2024, 3, 10, tzinfo=UTC))
        assert report.new_rows == {"events": 1}
        _check(spark, store, str(location))
        with pytest.raises(FtiError, match="the Spark catalog has no Delta table default.no_such_table"):
            location_of(spark, _project("default.no_such_table").sources["events"])
    finally:
        spark.sql("DROP TABLE IF EXISTS fti_test_events")
