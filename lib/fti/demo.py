"""``fti demo``: the whole FTI cycle on the real flights data, in one process with one Spark session.

Lands Jan 1 - Dec 1 2013 in monthly batches with an incremental feature run after each batch (the
feature run's clock is the batch's arrival time), builds the training set, trains on Ray and registers
in MLflow, scores the flights of Dec 1 (prediction time 2013-12-01T00:00 New York), and runs
monitoring. A rerun continues where the last one stopped: nothing new is landed or featurized, the
model is not retrained when its training set's inputs are unchanged, and scoring replaces its own rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fti.features import pipeline
from fti.features.flights import replay
from fti.timeutil import plan_batches

if TYPE_CHECKING:
    from fti.config import Settings
    from fti.progress import StageProgress
    from fti.store import TableStore

log = logging.getLogger(__name__)
DEMO_THROUGH = dt.date(2013, 12, 1)


DEMO_AS_OF = dt.datetime(2013, 12, 1, 5, 0, tzinfo=dt.timezone.utc)  # 2013-12-01T00:00 New York


@dataclass
class DemoReport:
    batches: list[replay.BatchResult] = field(default_factory=list)
    feature_runs: list[pipeline.FeatureRunReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    train: object | None = None
    trained_version: int | None = None
    score: object | None = None
    monitor: dict | None = None


def month_ends(start: dt.date, through: dt.date) -> list[dt.date]:
    """The last day of each month from ``start`` to ``through`` (``through`` itself closes the list)."""
    ends = [last for _, last in plan_batches(start, through, "month")]
    return ends


def run_demo(store: TableStore, settings: Settings, *, through: dt.date = DEMO_THROUGH,
             progress: StageProgress | None = None) -> DemoReport:
    """Ingest and featurize month by month up to ``through``, continuing from what is already landed; then train,
    score and monitor. ``progress`` gets one line per stage (each month, training, scoring, monitoring)."""
    if settings.system != "flights":
        raise ValueError("the demo runs the flights system")
    report = DemoReport()
    t0 = time.perf_counter()
    done = replay.landed_through(store, settings.system)
    first = done + dt.timedelta(days=1) if done else replay.FIRST_DAY
    months = month_ends(first, through)
    if progress:
        progress.plan(max(len(months), 1) + 3, first=f"month {months[0]:%Y-%m}" if months else "features")
    for i, last in enumerate(months):
        t = time.perf_counter()
        batches = replay.replay(store.spark, store, settings.system, through=last, batch="month")
        report.batches += batches
        clock = batches[-1].now if batches else None
        run = pipeline.run(store, settings, now=clock)
        report.feature_runs.append(run)
        if progress:
            progress.done(f"month {last:%Y-%m}: landed {sum(b.flights for b in batches):,} flights, "
                          f"{_written(run)} of {len(run.outputs)} tables written", time.perf_counter() - t,
                          next_stage=f"month {months[i + 1]:%Y-%m}" if i + 1 < len(months) else "training")
    # a previous demo may have landed data and stopped before featurizing it
    if not report.feature_runs:
        t = time.perf_counter()
        clock = replay.day_start(through + dt.timedelta(days=1), replay.TZ)
        report.feature_runs.append(pipeline.run(store, settings, now=clock))
        if progress:
            progress.done(f"features: {_written(report.feature_runs[-1])} of "
                          f"{len(report.feature_runs[-1].outputs)} tables written", time.perf_counter() - t,
                          next_stage="training")
    report.seconds["ingest+features"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    existing = _model_for_current_inputs(store, settings)
    if existing is None:
        from fti.training.pipeline import run as train

        report.train = train(store, settings)
        report.trained_version = report.train.version
    else:
        log.info("model %s already trained on the current inputs: not retrained", existing)
        report.trained_version = existing
    report.seconds["train"] = time.perf_counter() - t1
    if progress:
        what = (f"trained {report.train.model_name}/{report.train.version} -> {report.train.alias}, test AUC "
                f"{report.train.metrics['test_auc']:.4f}" if report.train is not None
                else f"model version {report.trained_version} already trained on these inputs")
        progress.done(what, report.seconds["train"], next_stage="scoring")
    t2 = time.perf_counter()
    from fti.inference import monitoring
    from fti.inference.pipeline import run as score

    report.score = score(store, settings, as_of=DEMO_AS_OF)
    report.seconds["score"] = time.perf_counter() - t2
    if progress:
        progress.done(f"scored {report.score.scored:,} flights as of {DEMO_AS_OF:%Y-%m-%d %H:%M}Z",
                      report.seconds["score"], next_stage="monitoring")
    t3 = time.perf_counter()
    report.monitor = monitoring.run(store, settings)
    report.seconds["monitor"] = time.perf_counter() - t3
    if progress:
        progress.done(f"monitored {len(report.monitor['runs'])} scoring run(s)", report.seconds["monitor"])
    return report


def _written(run: pipeline.FeatureRunReport) -> int:
    return sum(o.status == "written" for o in run.outputs)


def _model_for_current_inputs(store: TableStore, settings: Settings) -> int | None:
    """A registered version trained on a training set whose pinned inputs are the current versions."""
    from fti.registry import MANIFEST_TAG, client, mlflow_store_exists
    from fti.store.feature_store import FeatureStore
    from fti.timeutil import parse_day
    from fti.training.pipeline import _reusable

    cfg = settings.config.training
    ts = _reusable(store, FeatureStore(store, settings), cfg.feature_view, parse_day(cfg.train.start),
                   parse_day(cfg.test.end))
    if ts is None or not mlflow_store_exists(settings):
        return None
    for mv in client(settings).search_model_versions(f"name='{cfg.model_name}'"):
        if (mv.tags or {}).get(MANIFEST_TAG) == ts.manifest.output.table:
            return int(mv.version)
    return None
