"""insert(df): rows a user's own Spark job computed, handed to a source (landed as a batch, featurized by the next
run) or merged into an inserted feature group (history, statistics, time travel), refused whole when they do not
fit (the column, the row count, nothing committed)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from chispa import assert_df_equality

from fti.authoring import Feature, FeatureGroup
from fti.config import load_config
from fti.errors import FtiError
from fti.features import pipeline
from fti.features.insert import insert
from fti.ingest import load_through
from fti.projects import load_project
from fti.store import open_store

UTC = dt.timezone.utc
SCORES = FeatureGroup(name="credit", keys=("entity_id",), description="A credit score the user's own job computes",
                      ttl_seconds=30 * 86400, owner="risk team",
                      features=(Feature("score", "double", "credit score", 0, 1000),
                                Feature("band", "string", "score band")))
SCHEMA = "entity_id string, event_time timestamp, score double, band string, day date"


@pytest.fixture(scope="module")
def home(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("insert")
    settings = load_config("synthetic", home=home)
    store = open_store(spark, settings)
    load_through(store, settings, through=dt.date(2024, 1, 7), batch="week", entities=20)
    pipeline.run(store, settings, now=dt.datetime(2024, 1, 8, tzinfo=UTC))
    project = load_project(settings)
    return store, settings, dataclasses.replace(project, groups=(*project.groups, SCORES))


def test_rows_inserted_into_a_source_land_as_a_batch_and_the_next_run_featurizes_them(spark, home):
    store, settings, project = home
    rows = spark.createDataFrame([("e999999", dt.datetime(2024, 1, 6, 12, 0, tzinfo=UTC), "activity", 12.5),
                                  ("e999999", dt.datetime(2024, 1, 7, 9, 30, tzinfo=UTC), "activity", 7.5)],
                                 "entity_id string, event_ts timestamp, kind string, amount double")
    result = insert(store, settings, "raw_events", rows, now=dt.datetime(2024, 1, 8, 1, tzinfo=UTC), project=project)
    assert result.table == "synthetic/raw_events" and result.rows == 2
    landed = store.read(result.table, version=result.version).where("_source = 'insert'")
    expected = spark.createDataFrame([("e999999", "2024-01-06T12:00:00Z", "activity", "12.5", result.run_id),
                                      ("e999999", "2024-01-07T09:30:00Z", "activity", "7.5", result.run_id)],
                                     "entity_id string, event_ts string, kind string, amount string, _batch string")
    assert_df_equality(landed.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    report = pipeline.run(store, settings, now=dt.datetime(2024, 1, 8, 2, tzinfo=UTC), system=project)
    assert report.new_rows["raw_events"] == 2 and report.bad_rows["raw_events"] == 0
    got = store.read("synthetic/activity").where("entity_id = 'e999999'").select("day", "events_7d", "mean_amount_7d")
    want = spark.createDataFrame([(dt.date(2024, 1, 6), 1, 12.5), (dt.date(2024, 1, 7), 2, 10.0)],
                                 "day date, events_7d bigint, mean_amount_7d double")
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


def test_an_insert_into_a_source_with_the_wrong_columns_lands_nothing(spark, home):
    store, settings, project = home
    before = store.version("synthetic/raw_events")
    rows = spark.createDataFrame([("e1", "2024-01-06T12:00:00Z", 1.0)], "entity_id string, event_ts string, amt double")
    with pytest.raises(FtiError, match=r"insert into source 'raw_events' of project synthetic: missing column\(s\) "
                                       r"kind, amount; unknown column\(s\) amt; nothing was landed"):
        insert(store, settings, "raw_events", rows, project=project)
    assert store.version("synthetic/raw_events") == before


def test_an_inserted_group_merges_by_key_and_event_time_and_keeps_history(spark, home):
    store, settings, project = home
    t = lambda d, h: dt.datetime(2024, 1, d, h, tzinfo=UTC)  # noqa: E731
    first = spark.createDataFrame([("e000001", t(5, 8), 700.0, "good"), ("e000002", t(5, 9), 420.5, "fair"),
                                   ("e000001", t(6, 8), 710.0, "good")],
                                  "entity_id string, event_time timestamp, score double, band string")
    one = insert(store, settings, "credit", first, now=t(7, 0), project=project)
    assert (one.table, one.rows, one.replaced, one.days) == ("synthetic/credit", 3, 0, (dt.date(2024, 1, 5),
                                                                                       dt.date(2024, 1, 6)))
    # e000002's Jan 5 score is corrected, e000003 is new on Jan 6; e000001's rows stay as they were
    second = spark.createDataFrame([("e000002", t(5, 9), 455.0, "fair"), ("e000003", t(6, 10), 610.0, "fair")],
                                   "entity_id string, event_time timestamp, score double, band string")
    two = insert(store, settings, "credit", second, now=t(8, 0), project=project)
    assert (two.rows, two.replaced) == (2, 1)
    want = spark.createDataFrame([("e000001", t(5, 8), 700.0, "good", dt.date(2024, 1, 5), t(7, 0)),
                                  ("e000002", t(5, 9), 455.0, "fair", dt.date(2024, 1, 5), t(8, 0)),
                                  ("e000001", t(6, 8), 710.0, "good", dt.date(2024, 1, 6), t(7, 0)),
                                  ("e000003", t(6, 10), 610.0, "fair", dt.date(2024, 1, 6), t(8, 0))],
                                 f"{SCHEMA}, ingested_at timestamp")
    got = store.read("synthetic/credit").select(*want.columns)
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)
    # time travel: the first insert's version still reads the old score; the replaced row is in the history
    old = store.read("synthetic/credit", version=one.version).where("entity_id = 'e000002'").first()
    assert old.score == 420.5
    history = store.read("synthetic/history/credit").where("entity_id = 'e000002'").collect()
    assert [(r.score, r.replaced_at) for r in history] == [(420.5, t(8, 0).replace(tzinfo=None))]
    commit = next(h for h in store.history("synthetic/credit") if h["version"] == two.version)
    assert (commit["run_id"], commit["pipeline"], commit["fti.days"]) == (two.run_id, "insert", "2024-01-05..2024-01-06")
    assert '"score": {"count": 4' in commit["fti.stats"].replace("'", '"')  # observed in the write's own pass
    assert store.info("synthetic/credit").kind == "feature_group"
    # feature runs leave an inserted group alone
    assert "synthetic/credit" not in {o.table for o in pipeline.run(store, settings, system=project,
                                                                   now=t(8, 1)).outputs}


def test_an_insert_that_does_not_fit_the_group_is_refused_whole(spark, home):
    store, settings, project = home
    before = store.version("synthetic/credit") if store.exists("synthetic/credit") else None
    bad = spark.createDataFrame([(None, "2024-01-05 08:00:00", "700", "good"),
                                 ("e000004", "2024-01-05 08:00:00", "1200", "good"),
                                 ("e000005", "not a time", "300", "poor"),
                                 ("e000006", "2024-01-05 08:00:00", "x", "poor"),
                                 ("e000007", "2024-01-05 08:00:00", "100", "poor"),
                                 ("e000007", "2024-01-05 08:00:00", "101", "poor")],
                                "entity_id string, event_time string, score string, band string")
    with pytest.raises(FtiError) as err:
        insert(store, settings, "credit", bad, project=project)
    text = str(err.value)
    for part in ("insert into feature group 'credit' of project synthetic", "1 value(s) of event_time are not timestamp",
                 "1 value(s) of score are not double", "1 row(s) have no entity_id", "1 row(s) have no event_time",
                 "1 value(s) of score are above its max 1000", "2 row(s) share their keys and event_time",
                 "(of 6 row(s)); nothing was written"):
        assert part in text, text
    with pytest.raises(FtiError, match=r"missing column\(s\) band; unknown column\(s\) grade"):
        insert(store, settings, "credit", bad.drop("band").withColumn("grade", bad.score), project=project)
    with pytest.raises(FtiError, match="is computed by fti from source\\(s\\) raw_events"):
        insert(store, settings, "activity", bad, project=project)
    assert (store.version("synthetic/credit") if store.exists("synthetic/credit") else None) == before
