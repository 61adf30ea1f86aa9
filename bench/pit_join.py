"""Benchmark: the point-in-time join (Spark, fti.store.pit) vs DuckDB ASOF LEFT JOIN on the same parquet.

Usage: python bench/pit_join.py [--spine N] [--features N] [--entities N] [--groups G] [--repeat R] [--skew S]
Prints our time, DuckDB's, the ratio, checks that both give the same rows, and merges the figures into
bench/results.json. Warm runs: the median of --repeat runs on each side; Spark start is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def generate(folder: Path, *, spine: int, features: int, entities: int, groups: int, skew: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2013-01-01T00:00:00", "us")
    span = 365 * 86400 * 1_000_000

    def keys(n: int) -> np.ndarray:
        k = rng.integers(0, entities, n)
        if skew:
            k[rng.random(n) < skew] = 0  # one hot entity
        return k

    t = pd.to_datetime(start + rng.integers(0, span, spine).astype("timedelta64[us]")).tz_localize("UTC")
    pd.DataFrame({"sid": np.arange(spine), "k": keys(spine), "t": t}).to_parquet(folder / "spine.parquet")
    for g in range(groups):
        et = pd.to_datetime(start + rng.integers(0, span, features).astype("timedelta64[us]")).tz_localize("UTC")
        frame = pd.DataFrame({"k": keys(features), "event_time": et, "v": rng.normal(size=features)})
        frame = frame.drop_duplicates(["k", "event_time"])
        frame["ingested_at"] = frame["event_time"]
        frame.to_parquet(folder / f"g{g}.parquet")


def run_duckdb(folder: Path, groups: int) -> tuple[float, pd.DataFrame]:
    import duckdb

    con = duckdb.connect()
    query = "SELECT s.sid" + "".join(f", g{g}.v AS v{g}" for g in range(groups)) + f" FROM '{folder}/spine.parquet' s"
    for g in range(groups):
        query += (f" ASOF LEFT JOIN '{folder}/g{g}.parquet' g{g} ON s.k = g{g}.k AND s.t >= g{g}.event_time")
    t0 = time.perf_counter()
    out = con.execute(query).df()
    return time.perf_counter() - t0, out


def run_spark(spark, folder: Path, groups: int) -> tuple[float, pd.DataFrame]:
    from fti.store.pit import GroupJoin, point_in_time_join

    spine = spark.read.parquet(str(folder / "spine.parquet"))
    joins = [GroupJoin(f"g{g}", spark.read.parquet(str(folder / f"g{g}.parquet")), {"k": "k"}, {f"v{g}": "v"})
             for g in range(groups)]
    t0 = time.perf_counter()
    frame = point_in_time_join(spine, joins, spine_time="t").frame.select("sid", *[f"v{g}" for g in range(groups)])
    out_dir = folder / f"out-{time.time_ns()}"
    frame.write.parquet(str(out_dir))  # materialize fully, as a training set build does
    seconds = time.perf_counter() - t0
    return seconds, pd.read_parquet(out_dir)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spine", type=int, default=int(os.environ.get("BENCH_SPINE", 200_000)))
    parser.add_argument("--features", type=int, default=int(os.environ.get("BENCH_FEATURES", 1_000_000)))
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--name", default="pit_join")
    args = parser.parse_args()

    from fti.config import load_config
    from fti.spark import get_spark

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        generate(folder, spine=args.spine, features=args.features, entities=args.entities, groups=args.groups,
                 skew=args.skew, seed=7)
        t0 = time.perf_counter()
        spark = get_spark(load_config("flights", home=folder / "home"), ui=False)
        spark_start = time.perf_counter() - t0
        ours, ref = [], []
        for _ in range(args.repeat):
            s, ours_df = run_spark(spark, folder, args.groups)
            ours.append(s)
            d, ref_df = run_duckdb(folder, args.groups)
            ref.append(d)
        a = ours_df.sort_values("sid").reset_index(drop=True)
        b = ref_df.sort_values("sid").reset_index(drop=True)
        same = len(a) == len(b) == args.spine and all(
            np.allclose(a[f"v{g}"].to_numpy(), b[f"v{g}"].to_numpy(), equal_nan=True) for g in range(args.groups))
    result = {"ours_s": statistics.median(ours), "reference": "duckdb ASOF LEFT JOIN",
              "reference_s": statistics.median(ref), "spark_start_s": spark_start,
              "ratio": statistics.median(ours) / statistics.median(ref), "results_identical": bool(same),
              "sizes": {"spine": args.spine, "features_per_group": args.features, "groups": args.groups,
                        "entities": args.entities, "hot_entity_share": args.skew},
              "machine": f"{os.cpu_count()} cores"}
    print(json.dumps({args.name: result}, indent=2))
    path = Path(__file__).with_name("results.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.name] = result
    path.write_text(json.dumps(data, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
