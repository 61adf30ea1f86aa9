"""Seeded event generator of the synthetic system (day by day, so any day regenerates identically).

Each entity has a hidden propensity. Every day it produces ``events_per_day`` activity events whose
amounts grow with the propensity, and with that probability a ``purchase`` event: the day's label. The
canary feature group publishes each day's purchase count at the END of the day: joined as of the
prediction time (the start of the day) it can only show yesterday's; a same-day join leaks the label.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import numpy as np

from fti.authoring import UTC, LandedBatch, Source, day_start, plan_batches

if TYPE_CHECKING:
    import pandas as pd

    from fti.authoring import Landing

log = logging.getLogger(__name__)
TAG = "synthetic"  # the generator's marks in the raw table's commits


def _ymd_day():
    from pyspark.sql import functions as F

    return F.expr("try_to_date(substr(event_ts, 1, 10), 'yyyy-MM-dd')")


EVENTS = Source(
    name="raw_events",
    columns=("entity_id", "event_ts", "kind", "amount"),
    description="Synthetic entity events (activity and purchase), UTC ISO timestamps",
    day=_ymd_day,
)


def day_events(day: dt.date, *, entities: int, events_per_day: int, seed: int) -> pd.DataFrame:
    """All events of one day (deterministic in seed and day)."""
    import pandas as pd

    propensity = np.random.default_rng(seed).beta(1.2, 6.0, entities)
    rng = np.random.default_rng([seed, day.toordinal()])
    n = entities * events_per_day
    ent = np.repeat(np.arange(entities), events_per_day)
    secs = np.sort(rng.integers(0, 86400, n).reshape(entities, events_per_day), axis=1).ravel()
    amount = rng.lognormal(mean=1.0 + 2.0 * propensity[ent], sigma=0.5)
    buys = rng.random(entities) < propensity
    buy_ent = np.nonzero(buys)[0]
    buy_secs = rng.integers(0, 86400, len(buy_ent))
    start = np.datetime64(day.isoformat())
    frame = pd.DataFrame({
        "entity_id": np.concatenate([ent, buy_ent]).astype(str),
        "event_ts": np.concatenate([start + secs.astype("timedelta64[s]"), start + buy_secs.astype("timedelta64[s]")]),
        "kind": ["activity"] * n + ["purchase"] * len(buy_ent),
        "amount": np.concatenate([np.round(amount, 2), np.round(rng.lognormal(3.0, 0.3, len(buy_ent)), 2)]),
    })
    frame["event_ts"] = pd.to_datetime(frame["event_ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["entity_id"] = "e" + frame["entity_id"].str.zfill(6)
    frame["amount"] = frame["amount"].astype(str)
    return frame


def load(landing: Landing, *, through: dt.date, batch: str = "week", now: dt.datetime | None = None,
         entities: int | None = None, events_per_day: int | None = None) -> list[LandedBatch]:
    """Land generated days up to ``through`` in batches, continuing after the last landed day (the sizes and
    seed come from ``ingest`` in the project file unless given)."""
    import pandas as pd

    cfg = landing.config.ingest
    entities = entities or cfg.entities
    events_per_day = events_per_day or cfg.events_per_day
    done = landing.landed(EVENTS, tag=TAG)
    first = dt.date.fromordinal(done) + dt.timedelta(days=1) if done else dt.date.fromisoformat(cfg.start or "2024-01-01")
    results = []
    for first_day, last_day in plan_batches(first, through, batch):
        frames = [day_events(first_day + dt.timedelta(days=i), entities=entities, events_per_day=events_per_day,
                             seed=cfg.seed) for i in range((last_day - first_day).days + 1)]
        frame = pd.concat(frames, ignore_index=True)
        clock = now or day_start(last_day + dt.timedelta(days=1), "UTC")
        version = landing.land(EVENTS, frame, ingested_at=clock, label=f"generator(seed={cfg.seed}, entities={entities})",
                               tag=TAG, mark=last_day.toordinal())
        results.append(LandedBatch(first_day, last_day, clock.astimezone(UTC), {"events": len(frame)}, version))
        log.info("generated %s..%s: %d events (raw_events v%d)", first_day, last_day, len(frame), version)
    return results
