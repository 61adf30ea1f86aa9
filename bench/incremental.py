"""Benchmark: an incremental feature run that adds day 60 on top of 59 days of history, vs the run that adds
day 1 to an empty system (the synthetic system: every feature group, the quarantine and the labels).

Usage: python bench/incremental.py [--entities N] [--events-per-day E] [--repeat R]
Ratio is time(day 60) / time(day 1) (goal <= 1.3): the cost of a run must not grow with the history.
Each timed run starts from a copy of the same prepared home.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, record, spark_session  # noqa: E402

DAY1 = dt.date(2024, 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=int(os.environ.get("BENCH_INCR_ENTITIES", 10_000)))
    parser.add_argument("--events-per-day", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from fti.config import load_config
    from fti.features import pipeline
    from fti.ingest import load_through
    from fti.store.delta_rs import DeltaRsStore
    from fti.timeutil import day_start

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        spark, spark_start = spark_session(folder / "spark-home")

        def land(home: Path, through: dt.date, batch: str) -> None:
            load_through(DeltaRsStore(spark, home), load_config("synthetic", home=home), through=through, batch=batch,
                   entities=args.entities, events_per_day=args.events_per_day)

        def featurize(home: Path, day: dt.date):
            return pipeline.run(DeltaRsStore(spark, home), load_config("synthetic", home=home),
                                now=day_start(day + dt.timedelta(days=1), "UTC"))

        land(folder / "day1", DAY1, "day")
        history = folder / "day59"
        land(history, DAY1 + dt.timedelta(days=58), "week")
        featurize(history, DAY1 + dt.timedelta(days=58))
        rows_history = DeltaRsStore(spark, history).info("synthetic/raw_events").rows
        copies = {"n": 0}

        def fresh(src: Path) -> Path:
            copies["n"] += 1
            dst = folder / f"run-{copies['n']}"
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_locks"))
            return dst

        day60_homes = []
        for _ in range(args.repeat + 1):
            home = fresh(history)
            land(home, DAY1 + dt.timedelta(days=59), "day")
            day60_homes.append(home)
        day1_homes = [fresh(folder / "day1") for _ in range(args.repeat + 1)]

        featurize(day1_homes.pop(), DAY1)  # warm-ups of both paths
        featurize(day60_homes.pop(), DAY1 + dt.timedelta(days=59))
        day1_s, day1_runs, r1 = median_of(lambda: featurize(day1_homes.pop(), DAY1), args.repeat)
        day60_s, day60_runs, r60 = median_of(lambda: featurize(day60_homes.pop(), DAY1 + dt.timedelta(days=59)),
                                             args.repeat)
        days60 = {o.table: o.days for o in r60.outputs}
        ratio = day60_s / day1_s
        record("incremental", {"ours_s": day60_s, "ours_runs_s": day60_runs, "reference": "the feature run adding day 1",
                               "reference_s": day1_s, "reference_runs_s": day1_runs, "ratio": ratio,
                               "days_rewritten_by_day60_run": days60, "raw_rows_of_history": rows_history,
                               "spark_start_s": spark_start,
                               "sizes": {"entities": args.entities, "events_per_day": args.events_per_day,
                                         "history_days": 59}},
               goal="ratio <= 1.2", met=ratio <= 1.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
