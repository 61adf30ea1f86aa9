"""The incremental feature pipeline on small hand-made raw batches (real Spark, real Delta tables)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from chispa import assert_df_equality

from fti.errors import FaultInjected, FtiError
from fti.features import pipeline, quarantine
from fti.features.aggregations import Aggregation

from fti.examples.flights.sources import AIRPORTS, FLIGHTS, WEATHER
from fti.projects import load_project
from fti.ingest import BadFileError, land, land_file
from tests.helpers.tz import aware, utc

UTC = dt.timezone.utc
GROUP_TABLES = ["flights/carrier_delay", "flights/origin_delay", "flights/route_delay", "flights/origin_weather",
                "flights/aircraft_legs", "flights/labels"]


def fl(day, hhmm, delay, carrier="UA", num=1, tail="N1", dest="ORD", month=1):
    hour, minute = divmod(hhmm, 100)
    th = dt.datetime(2013, month, day, hour) + dt.timedelta(hours=5)
    dep_delay = None if delay is None else str(delay)
    arr = None if delay is None else f"{(hour + 1) % 24}{minute:02d}"
    values = dict(year="2013", month=str(month), day=str(day), dep_time=None, sched_dep_time=str(hhmm),
                  dep_delay=dep_delay, arr_time=arr, sched_arr_time=None, arr_delay=dep_delay, carrier=carrier,
                  flight=str(num), tailnum=tail, origin="EWR", dest=dest, air_time="100", distance="719",
                  hour=str(hour), minute=str(minute), time_hour=th.strftime("%Y-%m-%dT%H:00:00Z"))
    return tuple(values[c] for c in FLIGHTS.columns)


def wx(day, hour, temp="40"):
    th = dt.datetime(2013, 1, day, hour) + dt.timedelta(hours=5)
    values = dict(origin="EWR", year="2013", month="1", day=str(day), hour=str(hour), temp=temp, dewp=None,
                  humid=None, wind_dir=None, wind_speed="5", wind_gust=None, precip="0", pressure="1010", visib="10",
                  time_hour=th.strftime("%Y-%m-%dT%H:00:00Z"))
    return tuple(values[c] for c in WEATHER.columns)


@pytest.fixture(scope="module")
def settings(home):
    """This module's batches are tiny: one bad row in five must not stop the run."""
    from fti.config import load_config

    return load_config("flights", home=home, env={"FTI__FEATURES__MAX_BAD_SHARE": "0.5"})


def land_rows(spark, store, source, rows, now):
    df = spark.createDataFrame(rows, ", ".join(f"`{c}` string" for c in source.columns))
    return land(store, "flights", source, df, ingested_at=now, source_label="test")


def clock(day):
    return dt.datetime(2013, 1, day, 5, tzinfo=UTC)


def versions(store):
    return {t: store.version(t) for t in GROUP_TABLES}


@pytest.fixture(scope="module")
def first_run(spark, store, settings):
    land_rows(spark, store, AIRPORTS, [("ORD", "Chicago", None, None, None, "-6", "A", "America/Chicago")], clock(1))
    batch1 = [fl(1, 800, 20, num=1), fl(1, 1200, 0, num=2, tail="N2"), fl(1, 1600, 45, num=3),
              fl(2, 900, -3, num=4), fl(2, 1000, None, num=5, tail="N3"), fl(2, 1300, 16, carrier="AA", num=6, tail="N4"),
              fl(3, 700, 0, carrier="AA", num=7, tail="N4")]
    land_rows(spark, store, FLIGHTS, batch1, clock(4))
    land_rows(spark, store, WEATHER, [wx(1, 10), wx(2, 10), wx(3, 10)], clock(4))
    return pipeline.run(store, settings, now=clock(4))


def test_first_run_one_version_per_table(first_run, store):
    assert versions(store) == {t: 1 for t in GROUP_TABLES}
    assert [o.status for o in first_run.outputs] == ["written"] * 6
    assert store.read("flights/labels").count() == 7
    assert first_run.new_rows == {"raw_flights": 7, "raw_weather": 3}
    assert first_run.bad_rows == {"raw_flights": 0, "raw_weather": 0}
    props = store.properties("flights/carrier_delay")
    assert props["fti.kind"] == "feature_group" and '"keys": ["carrier"]' in props["fti.definition"]


def test_feature_rows_by_hand(first_run, spark, store):
    got = store.read("flights/carrier_delay").select("carrier", "day", "event_time", "dep_delay_rate_7d", "flights_7d")
    expected = spark.createDataFrame([
        ("UA", dt.date(2013, 1, 1), aware(2013, 1, 1, 21, 45), 2 / 3, 3),
        ("UA", dt.date(2013, 1, 2), aware(2013, 1, 2, 13, 57), 0.5, 4),
        ("AA", dt.date(2013, 1, 2), aware(2013, 1, 2, 18, 16), 1.0, 1),
        ("AA", dt.date(2013, 1, 3), aware(2013, 1, 3, 12, 0), 0.5, 2),
    ], "carrier string, day date, event_time timestamp, dep_delay_rate_7d double, flights_7d long")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_second_run_is_a_noop(first_run, store, settings):
    before = versions(store)
    q_before = store.version("flights/quarantine")
    report = pipeline.run(store, settings, now=clock(4))
    assert report.up_to_date
    assert versions(store) == before
    assert store.version("flights/quarantine") == q_before


def test_bad_rows_quarantined_good_rows_written(first_run, spark, store, settings):
    bad = list(fl(4, 900, 5, num=10))
    bad[FLIGHTS.columns.index("dep_delay")] = "abc"
    raw = land_rows(spark, store, FLIGHTS, [fl(4, 800, 1, num=8), fl(4, 1000, 2, num=9), tuple(bad),
                                            fl(4, 1100, 3, num=11), fl(4, 1200, 4, num=12)], clock(5))
    report = pipeline.run(store, settings, now=clock(5))
    assert report.bad_rows["raw_flights"] == 1 and report.new_rows["raw_flights"] == 5
    q = store.read("flights/quarantine").where("source = 'raw_flights'")
    rows = q.collect()
    assert len(rows) == 1
    assert rows[0].reason == "unparseable dep_delay: 'abc'"
    assert rows[0].raw_version == raw.version and rows[0].run_id == report.run_id
    assert '"dep_delay":"abc"' in rows[0].raw_row
    assert store.read("flights/labels").where("day = '2013-01-04'").count() == 4


def test_late_rows_recompute_only_their_windows(first_run, spark, store, settings):
    land_rows(spark, store, FLIGHTS, [fl(2, 1500, 60, num=13, tail="N9")], clock(6))  # arrives days late
    report = pipeline.run(store, settings, now=clock(6))
    windows = {o.table: (o.first_day, o.last_day) for o in report.outputs}
    assert windows["flights/carrier_delay"] == (dt.date(2013, 1, 2), dt.date(2013, 1, 29))
    assert windows["flights/origin_delay"] == (dt.date(2013, 1, 2), dt.date(2013, 1, 8))
    assert windows["flights/aircraft_legs"] == (dt.date(2013, 1, 2), dt.date(2013, 1, 2))
    assert windows["flights/labels"] == (dt.date(2013, 1, 2), dt.date(2013, 1, 2))
    assert windows["flights/origin_weather"] is not None
    weather = [o for o in report.outputs if o.table == "flights/origin_weather"][0]
    assert weather.status == "up to date"  # no new weather: that group is not touched
    ua2 = store.read("flights/carrier_delay").where("carrier = 'UA' and day = '2013-01-02'").first()
    assert ua2.flights_7d == 5 and utc(ua2.event_time) == dt.datetime(2013, 1, 2, 21, 0)
    # the history says which days each commit replaced
    assert store.history("flights/aircraft_legs")[0]["fti.days"] == "2013-01-02..2013-01-02"


def test_late_rows_keep_history_for_bitemporal_reads(first_run, spark, store, settings):
    """After the late flight above: rows whose values did not change keep their ingested_at (they used to be
    re-stamped); the replaced UA row of Jan 2 stays readable in the group's history table, so a bi-temporal
    read at a time before the revision gives what was known then, for training and for scoring alike."""
    from fti.features.pipeline import history_table
    from fti.store.feature_store import FeatureStore, FeatureView, ViewGroup

    rows = {(r.carrier, r.day): r for r in store.read("flights/carrier_delay").collect()}
    assert utc(rows[("AA", dt.date(2013, 1, 2))].ingested_at) == dt.datetime(2013, 1, 4, 5)  # unchanged: kept
    assert utc(rows[("UA", dt.date(2013, 1, 2))].ingested_at) == dt.datetime(2013, 1, 6, 5)  # revised
    history = store.read(history_table("flights/carrier_delay")).where("carrier = 'UA' and day = '2013-01-02'")
    old = history.collect()
    assert len(old) == 1 and old[0].flights_7d == 4 and utc(old[0].ingested_at) == dt.datetime(2013, 1, 4, 5)
    assert utc(old[0].replaced_at) == dt.datetime(2013, 1, 6, 5)
    view = FeatureView(name="late_check", spine_table="", spine_keys=["carrier"], spine_time="prediction_time",
                       label="delayed", spine_features=[],
                       groups=[ViewGroup("carrier_delay", "flights/carrier_delay", {"carrier": "carrier"},
                                         {"flights_7d": "flights_7d"}, None)])
    known_then = dt.datetime(2013, 1, 5, 0, tzinfo=UTC)  # after the first run stored Jan 2, before the revision
    spine = spark.createDataFrame([("UA", known_then, 1)], "carrier string, prediction_time timestamp, delayed int")
    fs = FeatureStore(store, settings)
    training = fs.get_training_set(spine, view, bitemporal=True)
    assert [r.flights_7d for r in training.df.collect()] == [4]
    assert training.manifest.groups[0].history_table == "flights/history/carrier_delay"
    scoring = fs.get_batch_features(view, as_of=known_then, population_df=spine.select("carrier"), bitemporal=True)
    assert [r.flights_7d for r in scoring.collect()] == [4]


def test_backfill_equals_incremental(first_run, store, settings):
    cols = ["carrier", "day", "event_time", "dep_delay_rate_7d", "flights_7d", "mean_dep_delay_28d"]
    before = store.read("flights/carrier_delay").select(*cols)
    v = store.version("flights/carrier_delay")
    report = pipeline.run(store, settings, now=clock(7), start=dt.date(2013, 1, 1), end=dt.date(2013, 1, 6),
                          groups=["carrier_delay"])
    assert [o.status for o in report.outputs] == ["written"]
    assert store.version("flights/carrier_delay") == v + 1
    assert_df_equality(store.read("flights/carrier_delay").select(*cols), before, ignore_row_order=True)


def test_failed_run_then_rerun_no_duplicates(first_run, spark, store, settings, monkeypatch):
    bad = list(fl(5, 900, 5, num=20))
    bad[FLIGHTS.columns.index("carrier")] = ""
    land_rows(spark, store, FLIGHTS, [fl(5, 800, 1, num=21), tuple(bad), fl(5, 1000, 1, num=22),
                                      fl(5, 1100, 1, num=23), fl(5, 1200, 1, num=24)], clock(7))
    monkeypatch.setenv("FTI_FAULT", "after_commit@flights/origin_delay:raise")
    one_at_a_time = dataclasses.replace(settings, config=settings.config.model_copy(update={
        "features": settings.config.features.model_copy(update={"parallel_outputs": 1})}))
    with pytest.raises(FaultInjected):  # outputs one at a time: the fault has one known place
        pipeline.run(store, one_at_a_time, now=clock(7))
    monkeypatch.delenv("FTI_FAULT")
    # quarantine and the groups before the fault committed; the others did not move
    assert store.read("flights/quarantine").where("reason = 'null or empty key: carrier'").count() == 1
    report = pipeline.run(store, settings, now=clock(7))
    statuses = {o.table: o.status for o in report.outputs}
    assert statuses["flights/carrier_delay"] == "up to date" and statuses["flights/labels"] == "written"
    assert store.read("flights/quarantine").where("reason = 'null or empty key: carrier'").count() == 1
    assert store.read("flights/labels").where("day = '2013-01-05'").count() == 4


def test_too_many_bad_rows_stop_before_features(first_run, spark, store, settings):
    rows = []
    for i in range(4):
        r = list(fl(6, 800 + i * 100, 1, num=30 + i))
        r[FLIGHTS.columns.index("time_hour")] = "yesterday"
        rows.append(tuple(r))
    land_rows(spark, store, FLIGHTS, rows + [fl(6, 1300, 1, num=40)], clock(8))
    before = versions(store)
    with pytest.raises(quarantine.TooManyBadRows, match="4 of 5 new rows of flights/raw_flights failed validation \\(80.0% > 50.0%\\)"):
        pipeline.run(store, settings, now=clock(8))
    assert versions(store) == before
    assert store.read("flights/quarantine").where("reason like 'unparseable time_hour%'").count() == 4
    # a plain rerun keeps refusing the rejected batch (it used to featurize its good rows), saying how to accept
    with pytest.raises(quarantine.TooManyBadRows, match="was rejected .* and is not accepted") as refused:
        pipeline.run(store, settings, now=clock(8))
    assert "fti features accept --system flights --source raw_flights" in refused.value.hint
    assert versions(store) == before
    assert store.read("flights/quarantine").where("reason like 'unparseable time_hour%'").count() == 4
    # a raised share accepts it too; here the explicit command does, and the next run featurizes its good row
    assert quarantine.accept_rejected(store, settings, source="raw_flights") == store.version("flights/raw_flights")
    report = pipeline.run(store, settings, now=clock(8))
    assert {o.table for o in report.outputs if o.status == "written"} >= {"flights/labels", "flights/carrier_delay"}
    assert store.read("flights/labels").where("day = '2013-01-06'").count() == 1
    with pytest.raises(FtiError, match="no rejected batch of raw_flights"):
        quarantine.accept_rejected(store, settings, source="raw_flights")


def test_bad_files_refused_whole(first_run, spark, store, tmp_path):
    import pandas as pd

    before = store.version("flights/raw_flights")
    good = dict(zip(FLIGHTS.columns, fl(7, 800, 1)))
    extra = tmp_path / "extra.csv"
    pd.DataFrame([{**good, "gate": "A1"}]).to_csv(extra, index=False)
    with pytest.raises(BadFileError, match="unknown column\\(s\\) gate; nothing was landed"):
        land_file(spark, store, "flights", FLIGHTS, extra, now=clock(8))
    missing = tmp_path / "missing.csv"
    pd.DataFrame([{k: v for k, v in good.items() if k not in ("tailnum", "dest")}]).to_csv(missing, index=False)
    with pytest.raises(BadFileError, match="missing column\\(s\\) tailnum, dest"):
        land_file(spark, store, "flights", FLIGHTS, missing, now=clock(8))
    empty = tmp_path / "empty.csv"
    pd.DataFrame(columns=list(FLIGHTS.columns)).to_csv(empty, index=False)
    with pytest.raises(BadFileError, match="has no rows"):
        land_file(spark, store, "flights", FLIGHTS, empty, now=clock(8))
    truncated = tmp_path / "cut.parquet"
    pd.DataFrame([good]).to_parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(BadFileError, match="cannot read .*cut.parquet"):
        land_file(spark, store, "flights", FLIGHTS, truncated, now=clock(8))
    assert store.version("flights/raw_flights") == before
    ok = tmp_path / "ok.parquet"
    pd.DataFrame([good]).to_parquet(ok)
    assert land_file(spark, store, "flights", FLIGHTS, ok, now=clock(8)).version == before + 1


def test_rows_compacted_by_another_writer_before_the_run_are_featurized(first_run, spark, store, settings):
    """A late row lands, another writer compacts the raw table (a rewrite without data change that merges the
    new file with an already featurized one) before the feature run: the run still finds the new row (by the
    landing batch it carries; it used to find nothing), and old rows are not quarantined twice."""
    land_rows(spark, store, FLIGHTS, [fl(10, 800, 30, num=50, tail="N50")], clock(11))
    pipeline.run(store, settings, now=clock(11))
    assert store.read("flights/labels").where("day = '2013-01-10'").count() == 1
    land_rows(spark, store, FLIGHTS, [fl(10, 900, 0, num=51, tail="N51")], clock(11))
    quarantined = store.read("flights/quarantine").count()
    compacted = store.compact("flights/raw_flights")
    assert compacted.files_removed > 1
    report = pipeline.run(store, settings, now=clock(11))
    assert report.new_rows["raw_flights"] == 1
    assert store.read("flights/labels").where("day = '2013-01-10'").count() == 2
    assert store.read("flights/carrier_delay").where("day = '2013-01-10'").first().flights_7d >= 2
    assert store.read("flights/quarantine").count() == quarantined
    assert pipeline.run(store, settings, now=clock(11)).up_to_date


def test_forget_removes_an_entity_for_good(first_run, spark, store, settings):
    """A data-protection deletion removes the entity from raw and every derived table, and nothing brings it
    back: a backfill over its days (it used to), a recompute after late rows, or a late batch of its rows."""
    from fti.forget import forget, forgotten

    tables = [t for t in store.list_tables() if "carrier" in store.schema(t).fieldNames()
              and store.read(t).where("carrier = 'AA'").count()]
    assert {"flights/raw_flights", "flights/carrier_delay", "flights/labels"} <= set(tables)
    before = {t: store.version(t) for t in tables}
    result = forget(store, settings, where="carrier=AA", pins=[])
    assert result.deleted["flights/raw_flights"] >= 2 and result.deleted["flights/carrier_delay"] >= 2
    assert set(result.deleted) == set(tables)
    for table in tables:
        assert store.read(table).where("carrier = 'AA'").count() == 0, table
        assert store.read(table, version=before[table]).where("carrier = 'AA'").count() > 0, table  # until vacuum
    assert forgotten(store, "flights") == [("carrier", "AA")]
    assert "fti vacuum --retention-hours 0 --force" in result.message
    # a backfill over its days, a late batch of its rows (and of another carrier's), the next incremental run
    pipeline.run(store, settings, now=clock(8), start=dt.date(2013, 1, 1), end=dt.date(2013, 1, 6),
                 groups=["carrier_delay"])
    land_rows(spark, store, FLIGHTS, [fl(3, 900, 50, carrier="AA", num=60, tail="N60"),
                                      fl(3, 1000, 10, carrier="UA", num=61, tail="N61")], clock(9))
    pipeline.run(store, settings, now=clock(9))
    for table in tables:
        assert store.read(table).where("carrier = 'AA'").count() == 0, table
    assert store.read("flights/labels").where("flight = 61").count() == 1
    with pytest.raises(FtiError, match="'day' is not an entity key of system flights"):
        forget(store, settings, where="day=2013-01-01", pins=[])


def test_forget_by_a_derived_key_removes_its_raw_and_quarantined_rows(first_run, spark, store, settings):
    """``flight_id`` is not a raw column (the parser derives it): forgetting one flight removes the raw row it came
    from and that row's quarantined duplicate too (both used to stay, with "removed from every table"), and says
    that a re-landing of the same raw row lands it."""
    from pyspark.sql import functions as F

    from fti.forget import forget

    dup = fl(4, 700, 5, carrier="B6", num=77, tail="N77")
    land_rows(spark, store, FLIGHTS, [dup, dup, fl(4, 800, 5, carrier="B6", num=78, tail="N78")], clock(10))
    pipeline.run(store, settings, now=clock(10))
    label = store.read("flights/labels").where("flight = 77").select("flight_id").collect()
    assert len(label) == 1
    flight_id = label[0].flight_id
    raw_before = store.read("flights/raw_flights").count()
    quarantined = store.read("flights/quarantine").where(F.get_json_object("raw_row", "$.flight") == "77").count()
    assert quarantined == 1, "the duplicate of flight 77 is quarantined"
    result = forget(store, settings, where=f"flight_id={flight_id}", pins=[])
    assert result.deleted["flights/raw_flights"] == 2
    assert store.read("flights/raw_flights").count() == raw_before - 2
    assert store.read("flights/raw_flights").where("flight = '77'").count() == 0
    assert store.read("flights/raw_flights").where("flight = '78'").count() == 1
    assert store.read("flights/quarantine").where(F.get_json_object("raw_row", "$.flight") == "77").count() == 0
    assert store.read("flights/labels").where(F.col("flight_id") == flight_id).count() == 0
    assert store.read("flights/labels").where("flight = 78").count() == 1
    assert result.derived_in == ["flights/raw_flights"]
    assert "a later landing of the same raw rows lands them" in result.message
    pipeline.run(store, settings, now=clock(10), start=dt.date(2013, 1, 4), end=dt.date(2013, 1, 5))
    assert store.read("flights/labels").where(F.col("flight_id") == flight_id).count() == 0
    pipeline.run(store, settings, now=clock(10))  # the later tests start with every output past the deletion


def test_rows_another_writer_appended_are_featurized_by_the_next_run(first_run, spark, store, settings):
    """Raw rows added by a plain Spark SQL ``INSERT INTO`` (not ``fti ingest``, no fti run id on the commit) are
    found by the next incremental run and featurized (the old code only warned, and a backfill was needed); a
    foreign row without a ``land_day`` cannot be placed on a day: the run says so and is not "up to date"."""
    from pyspark.sql import functions as F

    pipeline.run(store, settings, now=clock(10))
    assert pipeline.run(store, settings, now=clock(10)).up_to_date
    text = ", ".join(f"`{c}` string" for c in FLIGHTS.columns)
    raw = FLIGHTS.to_raw(spark.createDataFrame([fl(6, 1100, 12, carrier="DL", num=90, tail="N90")], text),
                         ingested_at=clock(10), source_label="sql", batch="someone-else")
    raw.createOrReplaceTempView("foreign_rows")
    spark.sql(f"INSERT INTO delta.`{store.uri('flights/raw_flights')}` SELECT * FROM foreign_rows")
    report = pipeline.run(store, settings, now=clock(10))
    assert report.new_rows["raw_flights"] == 1 and report.unattributed["raw_flights"] == []
    assert store.read("flights/labels").where("flight = 90").count() == 1
    assert store.read("flights/carrier_delay").where("carrier = 'DL' AND day = '2013-01-06'").count() == 1
    assert pipeline.run(store, settings, now=clock(10)).up_to_date

    dayless = FLIGHTS.to_raw(spark.createDataFrame([fl(6, 1200, 5, carrier="DL", num=92, tail="N92")], text),
                             ingested_at=clock(10), source_label="sql", batch="someone-else-2") \
        .withColumn("land_day", F.lit(None).cast("date"))
    dayless.createOrReplaceTempView("dayless_rows")
    spark.sql(f"INSERT INTO delta.`{store.uri('flights/raw_flights')}` SELECT * FROM dayless_rows")
    inserted = store.version("flights/raw_flights")
    report = pipeline.run(store, settings, now=clock(10))
    assert not report.up_to_date
    assert report.unattributed["raw_flights"] == [(None, inserted, 1, "WRITE")]
    hints = report.unattributed_hints("flights")
    assert "1 raw row(s) of raw_flights (no land_day) were added by raw version(s)" in hints[0], hints
    # the hint's way out: give the row its day; the next incremental run featurizes it
    spark.sql(f"UPDATE delta.`{store.uri('flights/raw_flights')}` SET land_day = DATE'2013-01-06' WHERE flight = '92'")
    report = pipeline.run(store, settings, now=clock(10))
    assert report.unattributed["raw_flights"] == [] and store.read("flights/labels").where("flight = 92").count() == 1
    # the later tests start with every output past the inserts: a landing and an incremental run
    land_rows(spark, store, FLIGHTS, [fl(6, 1500, 3, carrier="DL", num=91, tail="N91")], clock(10))
    pipeline.run(store, settings, now=clock(10))


def test_schema_evolution_in_place_and_breaking_change(first_run, store, settings):
    system = load_project(settings)
    old = system.group("carrier_delay")
    # a declared group gains an aggregation: an additive change
    wider = dataclasses.replace(old, aggregations=old.aggregations + (
        Aggregation("dep_delay", "max", "28d", name="dep_delay_max_28d", description="max delay"),))
    evolved = dataclasses.replace(system, groups=tuple(wider if g.name == "carrier_delay" else g for g in system.groups))
    v = store.version("flights/carrier_delay")
    pipeline.run(store, settings, now=clock(8), start=dt.date(2013, 1, 3), end=dt.date(2013, 1, 4),
                 groups=["carrier_delay"], system=evolved)
    assert "dep_delay_max_28d" in store.schema("flights/carrier_delay").fieldNames()
    by_day = {r.day: r.dep_delay_max_28d for r in store.read("flights/carrier_delay").collect()}
    assert by_day[dt.date(2013, 1, 3)] is not None and by_day[dt.date(2013, 1, 1)] is None  # old rows read as null
    assert "dep_delay_max_28d" not in store.read("flights/carrier_delay", version=v).columns
    assert "dep_delay_max_28d" in store.properties("flights/carrier_delay")["fti.definition"]
    # a type change is refused, and a v2 group is a new table that leaves the old one readable
    retyped = dataclasses.replace(old, aggregations=(
        Aggregation("dep_delay", "count", "7d", name="flights_7d", type="double", description="now a double"),)
        + old.aggregations[2:])
    broken = dataclasses.replace(system, groups=(retyped,))
    with pytest.raises(FtiError, match="name it carrier_delay_v2"):
        pipeline.run(store, settings, now=clock(8), groups=["carrier_delay"], system=broken,
                     start=dt.date(2013, 1, 3), end=dt.date(2013, 1, 4))
    v2 = dataclasses.replace(retyped, name="carrier_delay_v2")
    pipeline.run(store, settings, now=clock(8), groups=["carrier_delay_v2"], system=dataclasses.replace(system, groups=(v2,)),
                 start=dt.date(2013, 1, 1), end=dt.date(2013, 1, 4))
    assert store.read("flights/carrier_delay_v2").count() > 0
    assert store.read("flights/carrier_delay").count() > 0


def test_catalog_lists_feature_groups_with_stats_and_freshness(first_run, store, settings):
    from fti.catalog import build_catalog

    now = dt.datetime(2013, 1, 10, 5, tzinfo=UTC)
    catalog = build_catalog(settings, store, now=now)
    groups = {g["name"]: g for g in catalog["feature_groups"]}
    assert {"carrier_delay", "origin_delay", "route_delay", "origin_weather", "aircraft_legs"} <= set(groups)
    carrier = groups["carrier_delay"]
    assert carrier["keys"] == ["carrier"] and carrier["ttl_seconds"] == 7 * 86400
    assert {"name": "flights_7d", "type": "bigint"} in [{k: f[k] for k in ("name", "type")} for f in carrier["features"]]
    stats = carrier["last_stats"]["dep_delay_rate_7d"]
    assert set(stats) >= {"count", "nulls", "min", "max", "mean"} and 0 <= stats["min"] <= stats["max"] <= 1
    newest = dt.datetime.fromisoformat(carrier["last_stats"]["event_time"]["max"].replace("Z", "+00:00"))
    assert carrier["freshness_seconds"] == int((now - newest).total_seconds())
    kinds = {t["name"]: t["kind"] for t in catalog["tables"]}
    assert kinds["flights/quarantine"] == "quarantine" and kinds["flights/labels"] == "labels"


def test_each_run_writes_one_file_per_table(first_run, store):
    """Tables are not partitioned by day: the first run wrote one data file per table, not one per day."""
    for table in GROUP_TABLES:
        assert len(store.file_uris(table, version=1)) == 1, table
        assert store.partition_by(table) == []


def test_backfill_over_days_without_raw_rows_reports_no_data(first_run, store, settings):
    """A backfill before the data starts used to fail with a KeyError; it changes nothing and says why."""
    before = versions(store)
    report = pipeline.run(store, settings, now=clock(8), start=dt.date(2012, 6, 1), end=dt.date(2012, 6, 3))
    assert {o.status for o in report.outputs} == {"no data"}
    assert versions(store) == before


def test_a_run_with_no_bad_rows_makes_no_quarantine_commit(first_run, spark, store, settings):
    """Clean rows are judged once and leave the quarantine table alone: the outputs' watermarks say they were
    judged (a second run neither judges them again nor commits)."""
    # (two groups: an earlier test of this module left carrier_delay's table behind its definition)
    groups = ["origin_delay", "aircraft_legs"]
    q_before = store.version("flights/quarantine")
    land_rows(spark, store, FLIGHTS, [fl(12, 800, 3, num=70, tail="N70"), fl(12, 900, 30, num=71, tail="N71")],
              clock(13))
    report = pipeline.run(store, settings, now=clock(13), groups=groups)
    assert report.new_rows["raw_flights"] == 2 and report.bad_rows["raw_flights"] == 0
    assert {o.table: o.status for o in report.outputs} == {"flights/origin_delay": "written",
                                                           "flights/aircraft_legs": "written"}
    assert store.version("flights/quarantine") == q_before
    again = pipeline.run(store, settings, now=clock(13), groups=groups)
    assert again.up_to_date and again.new_rows["raw_flights"] == 0
    assert store.version("flights/quarantine") == q_before
