"""Benchmark: one monthly incremental feature run of the flights groups (February 2013 landed on top of a
featurized January, as `make demo` does) vs DuckDB computing the same feature rows from the same raw rows.

Usage: python bench/feature_run.py [--repeat R]
Ratio is time(fti run) / time(DuckDB) (goal <= 5, rows equal). DuckDB is the single-node limit: it reads the
raw Delta tables' parquet files at the version the run read (the run's look-back included), parses and dedupes
the flights and weather as fti's parsers do for good rows, and computes the five groups' rows for the days the
run rewrote. The rows are compared whole (floats to 1e-9) before the ratio is reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, record, spark_session  # noqa: E402

JAN, FEB = dt.date(2013, 1, 31), dt.date(2013, 2, 28)
KEYS = {"carrier_delay": ["carrier"], "origin_delay": ["origin"], "route_delay": ["origin", "dest"],
        "origin_weather": ["origin", "event_time"], "aircraft_legs": ["tailnum", "event_time"]}


def _flights_sql(files: list[str], zones: dict[str, str]) -> str:
    """Good flights (typed, deduplicated by flight id, latest landing wins) with their UTC instants."""
    zone_rows = ", ".join(f"('{k}', '{v}')" for k, v in sorted(zones.items()))
    return f"""
    CREATE OR REPLACE TEMP TABLE zones AS SELECT * FROM (VALUES {zone_rows}) z(faa, tz);
    CREATE OR REPLACE TEMP TABLE f AS
    WITH typed AS (
      SELECT *, TRY_CAST(trim(dep_delay) AS DOUBLE) AS d_dep, TRY_CAST(trim(arr_delay) AS DOUBLE) AS d_arr,
             TRY_CAST(trim(arr_time) AS DOUBLE) AS d_arr_time, TRY_CAST(trim(minute) AS DOUBLE) AS d_minute,
             TRY_CAST(trim(flight) AS DOUBLE) AS d_flight, TRY_STRPTIME(time_hour, '%Y-%m-%dT%H:%M:%SZ') AS th
      FROM read_parquet({files!r})
      WHERE nullif(trim(carrier), '') IS NOT NULL AND nullif(trim(flight), '') IS NOT NULL
        AND nullif(trim(origin), '') IS NOT NULL AND nullif(trim(dest), '') IS NOT NULL
    ), ided AS (
      SELECT *, th + to_minutes(CAST(d_minute AS INTEGER)) AS sched,
             strftime(th + to_minutes(CAST(d_minute AS INTEGER)), '%Y%m%dT%H%MZ') || '-' || trim(carrier) || '-'
               || CAST(CAST(d_flight AS INTEGER) AS VARCHAR) AS flight_id
      FROM typed WHERE th IS NOT NULL
    ), latest AS (
      SELECT * FROM ided QUALIFY row_number() OVER (PARTITION BY flight_id ORDER BY ingested_at DESC, _batch DESC) = 1
    ), dep AS (
      SELECT l.*, CASE WHEN d_dep IS NOT NULL THEN sched + to_minutes(CAST(d_dep AS INTEGER)) END AS actual_dep,
             z.tz AS dest_tz
      FROM latest l LEFT JOIN zones z ON z.faa = trim(l.dest)
    ), cand AS (
      SELECT *, CAST(CAST(timezone(dest_tz, actual_dep AT TIME ZONE 'UTC') AS DATE) AS TIMESTAMP)
                  + to_minutes(CAST(floor(d_arr_time / 100) * 60 + d_arr_time % 100 AS INTEGER)) AS cand_local
      FROM dep
    )
    SELECT flight_id, CAST(timezone('America/New_York', sched AT TIME ZONE 'UTC') AS DATE) AS day,
           trim(carrier) AS carrier, nullif(trim(tailnum), '') AS tailnum, trim(origin) AS origin, trim(dest) AS dest,
           d_dep AS dep_delay, d_arr AS arr_delay, actual_dep,
           CASE WHEN d_arr_time IS NOT NULL AND dest_tz IS NOT NULL AND actual_dep IS NOT NULL THEN
             CASE WHEN timezone('UTC', timezone(dest_tz, cand_local)) < actual_dep
                  THEN timezone('UTC', timezone(dest_tz, cand_local + INTERVAL 1 DAY))
                  ELSE timezone('UTC', timezone(dest_tz, cand_local)) END END AS actual_arr
    FROM cand;
    """


def _trailing_sql(keys: list[str], time_col: str, delay_col: str, windows: tuple[int, ...], prefix: str,
                  first: dt.date, last: dt.date) -> str:
    k = ", ".join(keys)
    feats = []
    for w in windows:
        frame = f"(PARTITION BY {k} ORDER BY dn RANGE BETWEEN {w - 1} PRECEDING AND CURRENT ROW)"
        feats += [f"sum(_late) OVER {frame} / sum(_n) OVER {frame} AS {prefix}_delay_rate_{w}d",
                  f"sum(_n) OVER {frame} AS flights_{w}d", f"sum(_delay) OVER {frame} / sum(_n) OVER {frame} "
                  f"AS mean_{prefix}_delay_{w}d"]
    longest = f"(PARTITION BY {k} ORDER BY dn RANGE BETWEEN {max(windows) - 1} PRECEDING AND CURRENT ROW)"
    return f"""
    WITH daily AS (
      SELECT {k}, day, count(*) AS _n, sum(CAST({delay_col} > 15 AS BIGINT)) AS _late, sum({delay_col}) AS _delay,
             max({time_col}) AS _known, day - DATE '1970-01-01' AS dn
      FROM f WHERE {time_col} IS NOT NULL AND {delay_col} IS NOT NULL GROUP BY {k}, day
    ), w AS (SELECT {k}, day, max(_known) OVER {longest} AS event_time, {", ".join(feats)} FROM daily)
    SELECT * FROM w WHERE day BETWEEN DATE '{first}' AND DATE '{last}'"""


def _weather_sql(files: list[str], first: dt.date, last: dt.date) -> str:
    from fti.examples.flights.parse import WEATHER_FLOATS, WEATHER_RANGES

    casts = ", ".join(f"TRY_CAST(trim({c}) AS DOUBLE) AS {c}_v" for c in WEATHER_FLOATS)
    in_range = " AND ".join(f"({c}_v IS NULL OR {c}_v BETWEEN {lo} AND {hi})" for c, (lo, hi) in WEATHER_RANGES.items())
    return f"""
    WITH typed AS (SELECT *, {casts}, TRY_STRPTIME(time_hour, '%Y-%m-%dT%H:%M:%SZ') AS th
                   FROM read_parquet({files!r}) WHERE nullif(trim(origin), '') IS NOT NULL),
    good AS (SELECT * FROM typed WHERE th IS NOT NULL AND {in_range}
             QUALIFY row_number() OVER (PARTITION BY trim(origin), time_hour ORDER BY ingested_at DESC, _batch DESC) = 1)
    SELECT trim(origin) AS origin, CAST(timezone('America/New_York', th AT TIME ZONE 'UTC') AS DATE) AS day,
           th AS event_time, temp_v AS temp, wind_speed_v AS wind_speed, precip_v AS precip, visib_v AS visib,
           pressure_v AS pressure
    FROM good WHERE CAST(timezone('America/New_York', th AT TIME ZONE 'UTC') AS DATE) BETWEEN DATE '{first}' AND DATE '{last}'"""


def _legs_sql(first: dt.date, last: dt.date) -> str:
    return f"""
    WITH legs AS (
      SELECT tailnum, day, coalesce(actual_arr, actual_dep) AS event_time, dep_delay AS prev_dep_delay,
             arr_delay AS prev_arr_delay,
             CAST(row_number() OVER (PARTITION BY tailnum, day ORDER BY actual_dep, flight_id) AS INTEGER) AS legs_today
      FROM f WHERE tailnum IS NOT NULL AND actual_dep IS NOT NULL)
    SELECT * FROM legs WHERE day BETWEEN DATE '{first}' AND DATE '{last}'
    QUALIFY row_number() OVER (PARTITION BY tailnum, event_time ORDER BY legs_today DESC) = 1"""


def reference(log, version: dict[str, int], zones: dict[str, str], days: dict[str, tuple[dt.date, dt.date]]):
    """The five groups' rows for the days the run rewrote, computed by DuckDB from the raw tables' files."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    flights = log.file_uris("flights/raw_flights", version=version["raw_flights"])
    weather = log.file_uris("flights/raw_weather", version=version["raw_weather"])
    con.execute(_flights_sql(flights, zones))
    sql = {
        "carrier_delay": _trailing_sql(["carrier"], "actual_dep", "dep_delay", (7, 28), "dep", *days["carrier_delay"]),
        "origin_delay": _trailing_sql(["origin"], "actual_dep", "dep_delay", (7,), "dep", *days["origin_delay"]),
        "route_delay": _trailing_sql(["origin", "dest"], "actual_arr", "arr_delay", (28,), "arr", *days["route_delay"]),
        "origin_weather": _weather_sql(weather, *days["origin_weather"]),
        "aircraft_legs": _legs_sql(*days["aircraft_legs"]),
    }
    return {group: con.execute(q).df() for group, q in sql.items()}


def compare(ours, theirs, keys: list[str]) -> None:
    import numpy as np
    import pandas as pd

    cols = sorted(ours.columns)
    assert sorted(theirs.columns) == cols, (sorted(theirs.columns), cols)
    a = ours[cols].sort_values(keys + ["day"]).reset_index(drop=True)
    b = theirs[cols].sort_values(keys + ["day"]).reset_index(drop=True)
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
    for c in cols:
        if pd.api.types.is_float_dtype(a[c]) or pd.api.types.is_float_dtype(b[c]):
            assert np.allclose(a[c].astype(float), b[c].astype(float), rtol=1e-9, atol=1e-9, equal_nan=True), c
        elif pd.api.types.is_datetime64_any_dtype(a[c]) or pd.api.types.is_datetime64_any_dtype(b[c]):
            assert (pd.to_datetime(a[c]).values == pd.to_datetime(b[c]).values).all(), c
        else:
            assert [str(x) for x in a[c]] == [str(x) for x in b[c]], c


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from fti.config import load_config
    from fti.features import pipeline
    from fti.ingest import load_through
    from fti.projects import load_project
    from fti.store import DeltaLog, open_store

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        spark, spark_start = spark_session(folder / "spark-home")
        january = folder / "january"
        settings = load_config("flights", home=january)
        store = open_store(spark, settings)
        first = load_through(store, settings, through=JAN, batch="month")
        pipeline.run(store, settings, now=first[-1].now)
        homes = []
        for i in range(args.repeat + 1):  # each timed run starts from its own copy with February landed
            home = folder / f"run-{i}"
            shutil.copytree(january, home, ignore=shutil.ignore_patterns("_locks"))
            s = load_config("flights", home=home)
            batch = load_through(open_store(spark, s), s, through=FEB, batch="month")[-1]
            homes.append((s, batch))

        def ours():
            s, batch = homes.pop()
            return s, pipeline.run(open_store(spark, s), s, now=batch.now)

        ours()  # warm-up
        ours_s, ours_runs, (s, run) = median_of(ours, args.repeat)
        log = DeltaLog(s.home)
        days = {o.table.split("/")[1]: (o.first_day, o.last_day) for o in run.outputs if o.first_day}
        zones = load_project(s).reference_data(open_store(spark, s))["airport_zones"]
        versions = dict(run.raw_versions)
        ref_s, ref_runs, theirs = median_of(lambda: reference(log, versions, zones, days), args.repeat)
        fti_store = open_store(spark, s)
        for group, keys in KEYS.items():
            first_day, last_day = days[group]
            frame = fti_store.read(f"flights/{group}").where(f"day BETWEEN '{first_day}' AND '{last_day}'")
            frame = frame.drop("ingested_at").toPandas()  # the run's clock (when the rows were stored), not a feature
            compare(frame, theirs[group], keys)
        rows = {g: len(theirs[g]) for g in KEYS}
        ratio = ours_s / ref_s
        record("feature_run", {"ours_s": ours_s, "ours_runs_s": ours_runs, "reference": "DuckDB (same raw files, same rows)",
                               "reference_s": ref_s, "reference_runs_s": ref_runs, "ratio": ratio, "rows_equal": rows,
                               "days": {g: f"{a}..{b}" for g, (a, b) in days.items()},
                               "new_flights": run.new_rows.get("raw_flights"), "spark_start_s": spark_start},
               goal="ratio <= 5 and rows equal", met=ratio <= 5)
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"bench/feature_run.py: {time.perf_counter() - t0:.0f} s")
    sys.exit(code)
