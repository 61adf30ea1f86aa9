"""Benchmark: appending a DataFrame through the store layer (Spark parquet + the delta-rs commit) vs a plain
Spark parquet write of the same cached DataFrame.

Usage: python bench/delta_write.py [--rows N] [--repeat R]
Ratio is in rows/s, ours over plain Spark (goal >= 0.9). Each run writes a new table / folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, record, spark_session  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_WRITE_ROWS", 5_000_000)))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from fti.store import RunContext
    from fti.store.delta_rs import DeltaRsStore

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        spark, spark_start = spark_session(folder / "home")
        store = DeltaRsStore(spark, folder / "home")
        df = spark.range(args.rows).select(
            F.col("id").cast("string").alias("k"),
            F.timestamp_seconds(F.lit(1_356_998_400) + F.col("id") % 31_536_000).alias("event_time"),
            F.to_date(F.timestamp_seconds(F.lit(1_356_998_400) + F.col("id") % 31_536_000)).alias("day"),
            *[(F.rand(seed=i) * 100).alias(f"f{i}") for i in range(6)],
            (F.col("id") % 7).alias("n"),
        ).cache()
        assert df.count() == args.rows and len(df.columns) == 10
        runs = {"n": 0}

        def ours() -> int:
            runs["n"] += 1
            name = f"bench/write_{runs['n']}"
            store.create_table(name, df.schema, kind="feature_group")
            return store.append(name, df, run=RunContext(pipeline="bench")).rows

        def plain() -> None:
            out = folder / f"plain-{time.time_ns()}"
            df.write.mode("overwrite").option("compression", "snappy").parquet(str(out))
            shutil.rmtree(out)

        ours()  # warm-up of both paths (JIT, first file system touches)
        plain()
        ours_s, ours_runs, rows = median_of(ours, args.repeat)
        ref_s, ref_runs, _ = median_of(plain, args.repeat)
        assert rows == args.rows, rows
        ratio = ref_s / ours_s  # rows/s ours over rows/s plain
        record("delta_write", {"ours_s": ours_s, "ours_runs_s": ours_runs, "reference": "plain Spark parquet write",
                               "reference_s": ref_s, "reference_runs_s": ref_runs, "ratio": ratio,
                               "ratio_meaning": "rows/s ours / rows/s reference",
                               "rows_per_s": args.rows / ours_s, "spark_start_s": spark_start,
                               "sizes": {"rows": args.rows, "columns": 10}},
               goal="ratio >= 0.9 (rows/s)", met=ratio >= 0.9)
    return 0


if __name__ == "__main__":
    sys.exit(main())
