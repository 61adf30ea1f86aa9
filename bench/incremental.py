"""Benchmark: an incremental feature run that adds day 60 on top of 59 days of history, vs the run that adds
day 1 to an empty system (the synthetic system: every feature group, the quarantine and the labels); and the same
for a declared-aggregation group (count, sum, mean, stddev, max, count_distinct over 1, 7 and 28 days) that adds
day 365 on top of 364 days of history (``incremental_declared``).

Usage: python bench/incremental.py [--entities N] [--events-per-day E] [--repeat R] [--declared-days D]
       [--declared-only]
Ratio is time(day N) / time(day 1) (goal <= 1.2): the cost of a run must not grow with the history.
Each timed run starts from a copy of the same prepared home.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, record, spark_session  # noqa: E402

DAY1 = dt.date(2024, 1, 1)


def _declared():
    from fti.authoring import Aggregation, FeatureGroup

    return FeatureGroup(
        name="declared_28d", keys=("entity_id",), sources=("raw_events",), ttl_seconds=28 * 86400,
        description="Trailing 1/7/28-day aggregations of every event, declared",
        aggregations=(Aggregation(None, "count", ("1d", "7d", "28d"), name="events_{window}"),
                      Aggregation("amount", "sum", "28d", name="amount_sum_{window}"),
                      Aggregation("amount", "mean", ("7d", "28d"), name="amount_mean_{window}"),
                      Aggregation("amount", "stddev", "28d", name="amount_std_{window}"),
                      Aggregation("amount", "max", "28d", name="amount_max_{window}"),
                      Aggregation("kind", "count_distinct", "28d", name="kinds_{window}")))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=int(os.environ.get("BENCH_INCR_ENTITIES", 10_000)))
    parser.add_argument("--events-per-day", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--declared-days", type=int, default=int(os.environ.get("BENCH_INCR_DECLARED_DAYS", 365)),
                        help="days of history of the declared-aggregation run (0: skip it)")
    parser.add_argument("--declared-only", action="store_true", help="only the declared-aggregation run")
    args = parser.parse_args()

    from fti.config import load_config
    from fti.projects import load_project

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        spark, spark_start = spark_session(folder / "spark-home")
        synthetic = load_project(load_config("synthetic", home=folder / "probe"))
        if not args.declared_only:
            measure(spark, folder / "all", synthetic, days=60, args=args, name="incremental", spark_start=spark_start)
        if args.declared_days:
            declared = dataclasses.replace(synthetic, groups=(_declared(),))
            measure(spark, folder / "declared", declared, days=args.declared_days, args=args,
                    name="incremental_declared", spark_start=spark_start)
    return 0


def measure(spark, folder: Path, project, *, days: int, args, name: str, spark_start: float) -> None:
    """Time the run that adds day ``days`` on top of the days before against the run that adds day 1."""
    from fti.config import load_config
    from fti.features import pipeline
    from fti.ingest import load_through
    from fti.store.delta_rs import DeltaRsStore
    from fti.timeutil import day_start

    folder.mkdir(parents=True)

    def land(home: Path, through: dt.date, batch: str) -> None:
        load_through(DeltaRsStore(spark, home), load_config("synthetic", home=home), through=through, batch=batch,
                     entities=args.entities, events_per_day=args.events_per_day)

    def featurize(home: Path, day: dt.date):
        return pipeline.run(DeltaRsStore(spark, home), load_config("synthetic", home=home), system=project,
                            now=day_start(day + dt.timedelta(days=1), "UTC"))

    last = DAY1 + dt.timedelta(days=days - 1)
    land(folder / "day1", DAY1, "day")
    history = folder / "history"
    land(history, last - dt.timedelta(days=1), "week")
    featurize(history, last - dt.timedelta(days=1))
    rows_history = DeltaRsStore(spark, history).info("synthetic/raw_events").rows
    copies = {"n": 0}

    def fresh(src: Path) -> Path:
        copies["n"] += 1
        dst = folder / f"run-{copies['n']}"
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_locks"))
        return dst

    last_homes = []
    for _ in range(args.repeat + 1):
        home = fresh(history)
        land(home, last, "day")
        last_homes.append(home)
    day1_homes = [fresh(folder / "day1") for _ in range(args.repeat + 1)]

    featurize(day1_homes.pop(), DAY1)  # warm-ups of both paths
    featurize(last_homes.pop(), last)
    day1_s, day1_runs, _ = median_of(lambda: featurize(day1_homes.pop(), DAY1), args.repeat)
    last_s, last_runs, report = median_of(lambda: featurize(last_homes.pop(), last), args.repeat)
    ratio = last_s / day1_s
    record(name, {"ours_s": last_s, "ours_runs_s": last_runs, "reference": "the feature run adding day 1",
                  "reference_s": day1_s, "reference_runs_s": day1_runs, "ratio": ratio,
                  f"days_rewritten_by_day{days}_run": {o.table: o.days for o in report.outputs},
                  "from_state": {o.table: o.from_state for o in report.outputs},
                  "groups": [g.name for g in project.groups], "raw_rows_of_history": rows_history,
                  "spark_start_s": spark_start,
                  "sizes": {"entities": args.entities, "events_per_day": args.events_per_day,
                            "history_days": days - 1}},
           goal="ratio <= 1.2", met=ratio <= 1.2)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
