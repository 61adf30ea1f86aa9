"""``fti demo``: the whole FTI cycle on a project, in one process with one Spark session.

Runs on any project whose project file has a ``demo`` section (the flights example's: Jan 1 - Dec 1 2013, real
data). Lands month by month with the project's own loader from ``ingest.start`` through ``demo.through``, with
an incremental feature run after each landed month (the feature run's clock is the batch's arrival time),
builds the training set, trains on Ray and registers in MLflow, scores as of ``demo.score_as_of`` (flights:
2013-12-01T00:00 New York), and runs monitoring. A rerun continues where the last one stopped: nothing new is
landed or featurized, the model is not retrained when its training set's inputs are unchanged, and scoring
replaces its own rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fti.errors import ConfigError
from fti.features import pipeline
from fti.ingest import load_through
from fti.timeutil import day_start, parse_day, parse_instant, plan_batches

if TYPE_CHECKING:
    from fti.authoring import LandedBatch
    from fti.config import Settings
    from fti.progress import StageProgress
    from fti.store import TableStore

log = logging.getLogger(__name__)


@dataclass
class DemoReport:
    batches: list[LandedBatch] = field(default_factory=list)
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


def demo_plan(settings: Settings) -> tuple[dt.date, dt.date, dt.datetime]:
    """(first day, last day, scoring instant) of the project's demo.

    Raises:
        ConfigError: The project file has no ``demo`` section, or no ``ingest.start``.
    """
    cfg = settings.config
    if cfg.demo is None or not cfg.ingest.start or cfg.training is None:
        missing = "demo" if cfg.demo is None else "ingest.start" if not cfg.ingest.start else "training"
        raise ConfigError(f"project {settings.system} ({settings.source}) has no '{missing}' section for fti demo",
                          hint="give it ingest.start, training and demo: {through: DAY, score_as_of: TIMESTAMP} "
                               "(see the flights example's), or run the commands one by one")
    return (parse_day(cfg.ingest.start, option="ingest.start"), parse_day(cfg.demo.through, option="demo.through"),
            parse_instant(cfg.demo.score_as_of, cfg.timezone, option="demo.score_as_of"))


def run_demo(store: TableStore, settings: Settings, *, progress: StageProgress | None = None) -> DemoReport:
    """Ingest and featurize month by month up to ``demo.through``, continuing from what is already landed; then
    train, score and monitor. ``progress`` gets one line per stage (each month, training, scoring, monitoring)."""
    first, through, as_of = demo_plan(settings)
    report = DemoReport()
    t0 = time.perf_counter()
    months = month_ends(first, through)
    if progress:
        progress.plan(len(months) + 3, first=f"month {months[0]:%Y-%m}" if months else "features")
    for i, last in enumerate(months):
        t = time.perf_counter()
        batches = load_through(store, settings, through=last, batch="month")
        report.batches += batches
        landed = ", ".join(f"{sum(b.counts.get(k, 0) for b in batches):,} {k}" for k in batches[0].counts) \
            if batches else "nothing new"
        written = ""
        if batches:  # an already landed month was featurized by the run after its landing (or by the one below)
            run = pipeline.run(store, settings, now=batches[-1].now)
            report.feature_runs.append(run)
            written = f", {_written(run)} of {len(run.outputs)} tables written"
        if progress:
            progress.done(f"month {last:%Y-%m}: landed {landed}{written}", time.perf_counter() - t,
                          next_stage=f"month {months[i + 1]:%Y-%m}" if i + 1 < len(months) else "training")
    # a previous demo may have landed data and stopped before featurizing it
    if not report.feature_runs:
        t = time.perf_counter()
        clock = day_start(through + dt.timedelta(days=1), settings.config.timezone)
        if progress:
            progress.plan(progress.total + 1, first="features")
        report.feature_runs.append(pipeline.run(store, settings, now=clock))
        if progress:
            progress.done(f"features: {_written(report.feature_runs[-1])} of "
                          f"{len(report.feature_runs[-1].outputs)} tables written", time.perf_counter() - t)
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
        t = report.train
        what = (f"trained {t.model_name}/{t.version} -> {t.alias}, test {'AUC' if t.metric == 'auc' else t.metric} "
                f"{t.metrics['test_' + t.metric]:.4f}" if t is not None
                else f"model version {report.trained_version} already trained on these inputs")
        progress.done(what, report.seconds["train"], next_stage="scoring")
    t2 = time.perf_counter()
    from fti.inference import monitoring
    from fti.inference.pipeline import run as score

    report.score = score(store, settings, as_of=as_of)
    report.seconds["score"] = time.perf_counter() - t2
    if progress:
        progress.done(f"scored {report.score.scored:,} entities as of {as_of.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M}Z",
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
