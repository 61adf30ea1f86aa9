"""`fti plan` says what a feature run would do and changes nothing: the tables a first run creates, the days each
output rewrites and whether the state's partials serve it (the same days the run then rewrites), a definition
change (additive: the new columns; breaking: refused with the versioned-name hint), and each source's unprocessed
rows."""

from __future__ import annotations

import dataclasses
import datetime as dt

from fti.authoring import Aggregation
from fti.config import load_config
from fti.features import pipeline
from fti.ingest import load_through
from fti.projects import load_project
from fti.store import open_store

UTC = dt.timezone.utc


def _versions(store):
    return {t: store.version(t) for t in store.list_tables()}


def test_plan_says_what_the_run_does_and_changes_nothing(spark, tmp_path, capsys):
    from fti.cli import main

    home = tmp_path / "home"
    settings = load_config("synthetic", home=home)
    store = open_store(spark, settings)
    load_through(store, settings, through=dt.date(2024, 1, 14), batch="week", entities=20)
    before = _versions(store)

    first = pipeline.plan(store, settings)
    assert _versions(store) == before  # no table created, not even the quarantine
    assert {o.table: (o.definition, o.state) for o in first.outputs} == {
        "synthetic/activity": ("create", "create"), "synthetic/canary": ("create", ""), "synthetic/labels": ("create", "")}
    raw = store.version("synthetic/raw_events")
    (events,) = first.sources
    assert (events.source, events.version, events.watermark, events.days) == ("raw_events", raw, None, 14)
    assert events.new_rows == store.read("synthetic/raw_events").count()

    run = pipeline.run(store, settings, now=dt.datetime(2024, 1, 15, tzinfo=UTC))
    assert {o.table: o.days for o in run.outputs} == {o.table: len(o.days) for o in first.outputs}

    # a new week: the plan's days and state are what the run then does
    load_through(store, settings, through=dt.date(2024, 1, 21), batch="week", entities=20)
    before = _versions(store)
    second = pipeline.plan(store, settings)
    assert _versions(store) == before
    activity = next(o for o in second.outputs if o.table == "synthetic/activity")
    assert activity.definition == "same" and activity.state == "stored partials" and activity.input_days == 7
    assert second.sources[0].watermark == raw and second.sources[0].days == 7
    code = main(["plan", "--system", "synthetic", "--home", str(home)])
    out = capsys.readouterr().out
    assert code == 0 and "synthetic/activity  same" in out and "stored partials" in out, out
    assert _versions(store) == before
    run = pipeline.run(store, settings, now=dt.datetime(2024, 1, 22, tzinfo=UTC))
    done = {o.table: (o.days, o.first_day, o.last_day, o.from_state) for o in run.outputs}
    assert done == {o.table: (len(o.days), o.days[0], o.days[-1], o.state == "stored partials")
                    for o in second.outputs}

    after_run = _versions(store)

    # definition changes: an added aggregation is additive, a retyped feature is breaking (with the hint)
    system = load_project(settings)
    group = system.group("activity")
    wider = dataclasses.replace(group, aggregations=group.aggregations + (Aggregation("amount", "max", "7d"),))
    retyped = dataclasses.replace(group, aggregations=(
        Aggregation(None, "count", "7d", name="events_{window}", type="double"),) + group.aggregations[1:])
    for changed, definition, state in ((wider, "additive: +max_amount_7d", "same"),
                                       (retyped, "breaking: column 'events_7d' is bigint in the table, double in the "
                                                 "definition", "same")):
        project = dataclasses.replace(system, groups=(changed,) + system.groups[1:])
        planned = pipeline.plan(store, settings, system=project, groups=["activity"])
        (out,) = planned.outputs
        assert (out.definition, out.days, out.state) == (definition, (), state), out
        assert out.breaking == definition.startswith("breaking")
    assert planned.breaking[0].hint.startswith("a breaking change is a new group version: name it activity_v2")
    backfill = pipeline.plan(store, settings, system=project, groups=["activity"], start=dt.date(2024, 1, 1),
                             end=dt.date(2024, 1, 8))
    assert backfill.outputs[0].days == tuple(dt.date(2024, 1, d) for d in range(1, 8))
    assert _versions(store) == after_run  # no plan wrote anything, the breaking one included
