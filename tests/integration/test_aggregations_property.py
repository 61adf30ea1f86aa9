"""Declared aggregations, property-tested: random events (late rows, duplicates, nulls, bad rows, several users, a
DST change in the project's zone) and random declarations, landed batch by batch; after every incremental run (which
combines the stored per-day partials with the recomputed days) and after a backfill of a copy, every feature row equals
an independent DuckDB recomputation of the same windows from all the good raw rows landed so far.

The reference shares nothing with fti but the declaration: days are computed with zoneinfo in Python, duplicates and
bad rows are dropped in Python, the windows are a DuckDB self-join with FILTER clauses."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from fti.authoring import Aggregation, FeatureGroup, Labels, Project, Source
from fti.config import load_config
from fti.features import pipeline
from fti.ingest import land
from fti.store import open_store

UTC = dt.timezone.utc
ZONE = "America/New_York"
LENIENT = {"FTI__FEATURES__MAX_BAD_SHARE": "0.5"}
TS = "try_to_timestamp(ts, \"yyyy-MM-dd'T'HH:mm:ss'Z'\")"
COLUMNS = ("user_id", "ts", "amount", "channel", "item")
EVENTS = Source(name="events", columns=COLUMNS, description="random events",
                day=lambda: F.to_date(F.from_utc_timestamp(F.expr(TS), ZONE)))
WINDOWS = (1, 2, 3, 5, 8)


def _parse(raw, *, now, **_):
    from pyspark.sql import Window

    ts = F.expr(TS)
    reason = (F.when(F.col("user_id").isNull(), F.lit("null key: user_id"))
              .when(ts.isNull(), F.lit("unparseable ts")))
    order = Window.partitionBy(*COLUMNS).orderBy(F.col("ingested_at"), F.col("_batch"))
    dup = F.when(F.row_number().over(order) > 1, F.lit("duplicate row"))
    return raw.select("user_id", ts.alias("event_time"), F.to_date(F.from_utc_timestamp(ts, ZONE)).alias("day"),
                      F.col("amount").cast("double").alias("amount"), "channel", "item", "ingested_at",
                      F.coalesce(reason, dup).alias("_reason"), *[c for c in raw.columns if c.startswith("_raw_")])


def _labels(events, *, config):
    return events.groupBy("user_id", "day").agg(F.count(F.lit(1)).alias("events")) \
        .select("user_id", "day", F.col("day").cast("timestamp").alias("prediction_time"), "events")


def _declarations(rng: np.random.Generator) -> tuple[Aggregation, ...]:
    """A random set of declarations: every function at least once over random windows, some filtered or bucketed."""
    out = []
    for i, function in enumerate(("count", "sum", "mean", "min", "max", "stddev", "variance", "last",
                                  "count_distinct")):
        column = "item" if function == "count_distinct" else (None if function == "count" and rng.random() < 0.5
                                                               else "amount")
        windows = tuple(f"{w}d" for w in sorted(rng.choice(WINDOWS, size=int(rng.integers(1, 3)), replace=False)))
        kw = {}
        if rng.random() < 0.3:
            kw["where"] = f"amount > {int(rng.integers(20, 80))}"
        if rng.random() < 0.3:
            kw.update(bucket_by="channel", buckets=("web", "app"))
        name = f"f{i}_{{window}}" + ("_{bucket}" if "buckets" in kw else "")
        out.append(Aggregation(column, function, windows, name=name, **kw))
    return tuple(out)


def _project(aggregations: tuple[Aggregation, ...]) -> Project:
    return Project(
        sources={"events": EVENTS}, parsers={"events": _parse},
        groups=(FeatureGroup(name="declared", keys=("user_id",), sources=("events",), aggregations=aggregations,
                             description="random declared aggregations"),),
        labels=Labels(source="events", transform=_labels, description="events of a user's day",
                      schema_ddl="user_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                                 "events bigint, ingested_at timestamp NOT NULL"),
        name="synthetic")


def _events(rng: np.random.Generator, first: dt.date, days: int) -> list[dict]:
    """Rows of text as a source delivers them, each tagged with the batch that lands it (late ones later)."""
    rows = []
    for user in ("u1", "u2", "u3"):
        seconds = rng.choice(days * 86400, size=int(rng.integers(15, 40)), replace=False)  # distinct times
        for s in seconds:
            moment = dt.datetime.combine(first, dt.time(5), UTC) + dt.timedelta(seconds=int(s))
            amount = None if rng.random() < 0.1 else str(int(rng.integers(0, 100)))
            rows.append({"user_id": user, "ts": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "amount": amount,
                         "channel": str(rng.choice(["web", "app", "shop"])), "item": str(rng.choice(list("abcdefg"))),
                         "_day": (moment - dt.datetime.combine(first, dt.time(5), UTC)).days})
    bad = [{"user_id": None, "ts": "2024-01-01T00:00:00Z", "amount": "1", "channel": "web", "item": "a", "_day": 0},
           {"user_id": "u1", "ts": "yesterday", "amount": "1", "channel": "web", "item": "a", "_day": 1}]
    rows += bad
    rows += [dict(r) for r in rng.choice(rows[:-2], size=4, replace=False)]  # exact duplicates
    batches = 4
    for r in rows:  # mostly in order; some rows arrive one or two batches late
        on_time = min(batches - 1, r["_day"] * batches // days)
        r["_batch"] = min(batches - 1, on_time + int(rng.choice([0, 0, 0, 1, 2])))
    return rows


def _good(rows: list[dict]) -> pd.DataFrame:
    """The reference's good rows: parsed in Python, bad ones and repeats of a row's exact content dropped."""
    zone, seen, good = ZoneInfo(ZONE), set(), []
    for r in rows:
        content = tuple(r[c] for c in COLUMNS)
        if r["user_id"] is None or content in seen:
            continue
        try:
            moment = dt.datetime.strptime(r["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        seen.add(content)
        good.append({"user_id": r["user_id"], "ts": int(moment.timestamp()), "day": moment.astimezone(zone).date().isoformat(),
                     "amount": None if r["amount"] is None else float(r["amount"]), "channel": r["channel"],
                     "item": r["item"]})
    return pd.DataFrame(good)


def _reference(good: pd.DataFrame, aggregations: tuple[Aggregation, ...]) -> pd.DataFrame:
    """The same windows in DuckDB: for each user's day with rows, the rows of the window's days before it."""
    sql_function = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max",
                    "stddev": "stddev_samp", "variance": "var_samp", "count_distinct": "count"}
    selects, longest = [], 1
    for agg in aggregations:
        for name, bucket, _, days in agg.outputs():
            longest = max(longest, days)
            conditions = [f"g.day > k.day - {days}"]
            conditions += [agg.where.replace("amount", "g.amount")] if agg.where else []
            conditions += [f"g.channel = '{bucket}'"] if bucket is not None else []
            where = " AND ".join(conditions)
            value = "*" if agg.column is None else f"g.{agg.column}"
            if agg.function == "last":
                expr = f"arg_max(g.amount, g.ts) FILTER (WHERE {where} AND g.amount IS NOT NULL)"
            elif agg.function == "count_distinct":
                expr = f"count(DISTINCT g.item) FILTER (WHERE {where})"
            else:
                expr = f"{sql_function[agg.function]}({value}) FILTER (WHERE {where})"
            selects.append(f"{expr} AS {name}")
    con = duckdb.connect()
    con.register("good_rows", good)
    return con.execute(f"""
        WITH good AS (SELECT * REPLACE (CAST(day AS DATE) AS day) FROM good_rows),
        k AS (SELECT DISTINCT user_id, day FROM good)
        SELECT k.user_id, k.day, max(g.ts) AS event_epoch, {", ".join(selects)}
        FROM k JOIN good g ON g.user_id = k.user_id AND g.day <= k.day AND g.day > k.day - {longest}
        GROUP BY k.user_id, k.day ORDER BY k.user_id, k.day""").df().assign(day=lambda f: f.day.astype(str))


def _check(store, good: pd.DataFrame, aggregations: tuple[Aggregation, ...], *, when: str) -> None:
    want = _reference(good, aggregations)
    names = [c for c in want.columns if c not in ("user_id", "day", "event_epoch")]
    got = (store.read("synthetic/declared").select("user_id", "day", F.unix_timestamp("event_time").alias("event_epoch"),
                                                   *names).toPandas().assign(day=lambda f: f.day.astype(str))
           .sort_values(["user_id", "day"]).reset_index(drop=True))
    assert list(zip(got.user_id, got.day)) == list(zip(want.user_id, want.day)), f"{when}: other rows"
    assert got.event_epoch.tolist() == want.event_epoch.astype("int64").tolist(), f"{when}: event_time"
    distinct = {name for a in aggregations if a.function == "count_distinct" for name, *_ in a.outputs()}
    for name in names:
        for (user, day), g, w in zip(zip(got.user_id, got.day), got[name], want[name]):
            missing_g = g is None or (isinstance(g, float) and math.isnan(g))
            missing_w = w is None or (isinstance(w, float) and math.isnan(w)) or pd.isna(w)
            where = f"{when}: {name} of {user} on {day}: fti {g}, DuckDB {w}"
            if name in distinct:  # HLL: approximate, exact at these sizes up to rounding
                assert not missing_g and abs(g - w) <= max(1.0, 0.02 * w), where
            else:
                assert missing_g == missing_w, where
                assert missing_g or math.isclose(float(g), float(w), rel_tol=1e-9, abs_tol=1e-9), where


@pytest.mark.parametrize("seed, first", [(0, dt.date(2024, 3, 6)), (1, dt.date(2024, 10, 29)), (2, dt.date(2024, 6, 1))])
def test_incremental_and_backfill_runs_equal_a_duckdb_recompute(spark, tmp_path, seed, first):
    rng = np.random.default_rng(seed)
    days = 12  # both seeds' ranges hold a DST change of New York (Mar 10, Nov 3)
    aggregations = _declarations(rng)
    project = _project(aggregations)
    rows = _events(rng, first, days)
    home = tmp_path / "home"
    settings = load_config("synthetic", home=home, env=LENIENT)
    store = open_store(spark, settings)
    landed: list[dict] = []
    from_state = []
    for batch in range(4):
        new = [r for r in rows if r["_batch"] == batch]
        clock = dt.datetime.combine(first + dt.timedelta(days=(batch + 1) * days // 4 + 1), dt.time(), UTC)
        frame = spark.createDataFrame([tuple(r[c] for c in COLUMNS) for r in new],
                                      ", ".join(f"{c} string" for c in COLUMNS))
        land(store, "synthetic", EVENTS, frame, ingested_at=clock, source_label=f"batch {batch}")
        landed += new
        report = pipeline.run(store, settings, system=project, now=clock)
        out = next(o for o in report.outputs if o.table == "synthetic/declared")
        from_state.append(out.from_state)
        _check(store, _good(landed), aggregations, when=f"seed {seed}, after batch {batch}")
    assert any(from_state[1:]), "no incremental run combined stored partials: the property was not exercised"
    assert not any(o.joined_days for o in report.outputs), "three-day batches of an 8-day look-back take windows"

    # one new day: the combine joins that day's rows with the partials its windows cover
    clock = dt.datetime.combine(first + dt.timedelta(days=days + 1), dt.time(12), UTC)
    new = [{"user_id": user, "ts": (dt.datetime.combine(first + dt.timedelta(days=days), dt.time(12), UTC)
                                    + dt.timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": str(int(rng.integers(0, 100))), "channel": "web", "item": "a"}
           for user in ("u1", "u3") for s in rng.choice(36000, size=3, replace=False)]  # one New York day
    frame = spark.createDataFrame([tuple(r[c] for c in COLUMNS) for r in new], ", ".join(f"{c} string" for c in COLUMNS))
    land(store, "synthetic", EVENTS, frame, ingested_at=clock, source_label="one day")
    landed += new
    report = pipeline.run(store, settings, system=project, now=clock)
    out = next(o for o in report.outputs if o.table == "synthetic/declared")
    assert out.from_state and out.joined_days == 1, out
    _check(store, _good(landed), aggregations, when=f"seed {seed}, after the one-day batch")

    copy = tmp_path / "copy"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("_locks"))
    copied = load_config("synthetic", home=copy, env=LENIENT)
    copied_store = open_store(spark, copied)
    backfill = pipeline.run(copied_store, copied, system=project, now=clock, start=first - dt.timedelta(days=1),
                            end=first + dt.timedelta(days=days + 2), groups=["declared"])
    assert not backfill.outputs[0].from_state
    _check(copied_store, _good(landed), aggregations, when=f"seed {seed}, backfill")
