"""``fti demo``: the whole FTI cycle built so far, on the real flights data, in one process.

Lands Jan 1 - Dec 1 2013 in monthly batches with an incremental feature run after each batch (the
feature run's clock is the batch's arrival time), then prints what is in the home. A rerun continues
where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fti.features import pipeline
from fti.features.flights import replay

if TYPE_CHECKING:
    from fti.config import Settings
    from fti.store import TableStore

log = logging.getLogger(__name__)
DEMO_THROUGH = dt.date(2013, 12, 1)


@dataclass
class DemoReport:
    batches: list[replay.BatchResult] = field(default_factory=list)
    feature_runs: list[pipeline.FeatureRunReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def month_ends(start: dt.date, through: dt.date) -> list[dt.date]:
    """The last day of each month from ``start`` to ``through`` (``through`` itself closes the list)."""
    ends = [last for _, last in replay.plan_batches(start, through, "month")]
    return ends


def run_demo(store: TableStore, settings: Settings, *, through: dt.date = DEMO_THROUGH) -> DemoReport:
    """Ingest and featurize month by month up to ``through``, continuing from what is already landed."""
    if settings.system != "flights":
        raise ValueError("the demo runs the flights system")
    report = DemoReport()
    t0 = time.perf_counter()
    done = replay.landed_through(store, settings.system)
    first = done + dt.timedelta(days=1) if done else replay.FIRST_DAY
    for last in month_ends(first, through):
        batches = replay.replay(store.spark, store, settings.system, through=last, batch="month")
        report.batches += batches
        clock = batches[-1].now if batches else None
        report.feature_runs.append(pipeline.run(store, settings, now=clock))
    # a previous demo may have landed data and stopped before featurizing it
    if not report.feature_runs:
        clock = replay.day_start(through + dt.timedelta(days=1), replay.TZ)
        report.feature_runs.append(pipeline.run(store, settings, now=clock))
    report.seconds["ingest+features"] = time.perf_counter() - t0
    return report
