"""Trailing-window groups keep per-day partial aggregates in a state table: an incremental run reads the raw rows
of the days it recomputes only, combines stored days with them, and gives the rows a recompute from raw gives."""

from __future__ import annotations

import datetime as dt
import shutil

from chispa import assert_df_equality

from fti.config import load_config
from fti.features import pipeline
from fti.examples.synthetic.generate import EVENTS
from fti.ingest import load_through
from fti.ingest import land
from fti.store import open_store

UTC = dt.timezone.utc
ACTIVITY = "synthetic/activity"
STATE = "synthetic/state/activity"


def _rows(store, table):
    return store.read(table).drop("ingested_at")


def test_an_incremental_run_combines_stored_partials_and_equals_a_recompute_from_raw(spark, tmp_path):
    home = tmp_path / "home"
    settings = load_config("synthetic", home=home)
    store = open_store(spark, settings)
    load_through(store, settings, through=dt.date(2024, 1, 14), batch="week", entities=40)
    first = pipeline.run(store, settings, now=dt.datetime(2024, 1, 15, tzinfo=UTC))
    activity = next(o for o in first.outputs if o.table == ACTIVITY)
    assert not activity.from_state  # the first run reads the whole look-back and builds the state
    assert store.info(STATE).kind == "feature_state"
    assert store.watermark(STATE, "raw_events") == store.watermark(ACTIVITY, "raw_events")

    # a new week, and a late event of an old day (Jan 5: its window days Jan 5..11 change)
    load_through(store, settings, through=dt.date(2024, 1, 21), batch="week", entities=40)
    late = spark.createDataFrame([("e000001", "2024-01-05T12:34:56Z", "activity", "99.5")], "entity_id string, "
                                 "event_ts string, kind string, amount string").select(*EVENTS.columns)
    land(store, "synthetic", EVENTS, late, ingested_at=dt.datetime(2024, 1, 22, tzinfo=UTC), source_label="late")
    second = pipeline.run(store, settings, now=dt.datetime(2024, 1, 22, tzinfo=UTC))
    activity = next(o for o in second.outputs if o.table == ACTIVITY)
    assert activity.status == "written" and activity.from_state
    # raw rows of the touched days only (Jan 5 and Jan 15-21), not the 7-day look-back of each rewritten day
    assert activity.input_days == 8, activity
    assert store.watermark(STATE, "raw_events") == store.watermark(ACTIVITY, "raw_events")

    # the same rows as a recompute of every day from raw (a backfill reads the whole look-back)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("_locks"))
    copied = load_config("synthetic", home=copy)
    copied_store = open_store(spark, copied)
    backfill = pipeline.run(copied_store, copied, now=dt.datetime(2024, 1, 22, tzinfo=UTC), start=dt.date(2024, 1, 1),
                            end=dt.date(2024, 1, 29), groups=["activity"])
    assert not backfill.outputs[0].from_state and backfill.outputs[0].status == "written"
    assert_df_equality(_rows(store, ACTIVITY), _rows(copied_store, ACTIVITY), ignore_row_order=True,
                       ignore_nullable=True)
    jan_5 = {r.entity_id: r.events_7d for r in store.read(ACTIVITY).where("day = '2024-01-05'").collect()}
    assert jan_5["e000001"] == 1 + next(r.events_7d for r in store.read(ACTIVITY, version=1)
                                        .where("day = '2024-01-05' AND entity_id = 'e000001'").collect())


def test_a_definition_change_and_its_revert_leave_no_hole_in_the_state(spark, tmp_path):
    """A run under a changed definition does not write the state; after the revert a run rebuilds only its own
    days. On the old code the state then had a hole (the changed run's days) that a later late row's windows
    combined over: rows undercounted and reported "written". Now a state that is not in step with the group starts
    over, and every run equals a recompute from raw. Changed ``daily`` code alone also stops the stored partials."""
    import dataclasses

    from fti.projects import load_project

    home = tmp_path / "home"
    settings = load_config("synthetic", home=home)
    store = open_store(spark, settings)
    system = load_project(settings)
    group = system.group("activity")
    changed = dataclasses.replace(system, groups=tuple(
        dataclasses.replace(g, description=g.description + " (v2)") if g.name == "activity" else g for g in system.groups))
    clock = lambda day: dt.datetime(2024, 1, day, tzinfo=UTC)
    load_through(store, settings, through=dt.date(2024, 1, 14), batch="week", entities=30)
    pipeline.run(store, settings, now=clock(15), groups=["activity"])
    load_through(store, settings, through=dt.date(2024, 1, 21), batch="week", entities=30)
    pipeline.run(store, settings, now=clock(22), groups=["activity"], system=changed)  # the state is not written
    load_through(store, settings, through=dt.date(2024, 1, 28), batch="week", entities=30)
    pipeline.run(store, settings, now=clock(29), groups=["activity"])  # reverted: rebuilds its own days
    late = spark.createDataFrame([("e000001", "2024-01-15T12:00:00Z", "activity", "5.0")], "entity_id string, "
                                 "event_ts string, kind string, amount string").select(*EVENTS.columns)
    land(store, "synthetic", EVENTS, late, ingested_at=clock(30), source_label="late")
    run = pipeline.run(store, settings, now=clock(30), groups=["activity"])
    assert run.outputs[0].status == "written"

    def recomputed(target, *, system=None):
        copy = tmp_path / target
        shutil.copytree(home, copy, ignore=shutil.ignore_patterns("_locks"))
        copied = load_config("synthetic", home=copy)
        copied_store = open_store(spark, copied)
        pipeline.run(copied_store, copied, now=clock(30), start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 29),
                     groups=["activity"], **({"system": system} if system else {}))
        return copied_store

    assert_df_equality(_rows(store, ACTIVITY), _rows(recomputed("copy"), ACTIVITY), ignore_row_order=True,
                       ignore_nullable=True)

    assert pipeline.GroupOutput(system, group).state_usable(store, store.watermark(ACTIVITY, "raw_events"),
                                                             [dt.date(2024, 1, 28)])
    # a changed declaration is a changed definition: the stored partials are not usable for it
    redeclared = dataclasses.replace(group, where="kind = 'activity' AND amount >= 0")
    assert not pipeline.GroupOutput(system, redeclared).state_usable(store, store.watermark(ACTIVITY, "raw_events"),
                                                                      [dt.date(2024, 1, 28)])
    # a hand-written group with the same definition and other daily code: its state's definition differs
    hand = dataclasses.replace(group, aggregations=(), where=None, time_column="event_time", features=group.features,
                               transform=group.transform, daily=group.daily, combine=group.combine)
    other = dataclasses.replace(hand, daily=lambda inputs, **kw: group.daily(inputs, **kw))
    assert hand.to_json() == other.to_json()
    assert pipeline.GroupOutput(system, hand).state_definition() != pipeline.GroupOutput(system, other).state_definition()
