"""Benchmark: batch scoring of N entities. Ours: features read from a Delta table with Spark, scored by the
Arrow UDF of ``fti score`` (booster broadcast, loaded once per Python worker), predictions appended to a Delta
table through the store. Reference, in this process: the same Delta files read with pyarrow,
``booster.inplace_predict``, one parquet file written.

Usage: python bench/score.py [--entities N] [--features F] [--repeat R]
Ratio is in rows/s, ours over the reference (goal >= 0.6). Also reports the driver's peak memory.
"""

from __future__ import annotations

import argparse
import statistics
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, peak_memory, record, spark_session  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=int(os.environ.get("BENCH_SCORE_ROWS", 1_000_000)))
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import xgboost

    from fti.inference.scoring import score, score_arrow
    from fti.store import RunContext
    from fti.store.delta_rs import DeltaRsStore

    names = [f"f{i}" for i in range(args.features)]
    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        spark, spark_start = spark_session(folder / "home")
        store = DeltaRsStore(spark, folder / "home")
        rng = np.random.default_rng(7)
        x = rng.normal(size=(args.entities, args.features))
        y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=args.entities) > 0).astype(int)
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 2},
                                xgboost.DMatrix(x[:100_000], label=y[:100_000], feature_names=names), 100)
        raw = bytes(booster.save_raw("ubj"))
        table = pa.table({"entity_id": pa.array([f"e{i:08d}" for i in range(args.entities)]),
                          **{n: x[:, i] for i, n in enumerate(names)}})
        features_df = spark.createDataFrame(table.to_pandas())
        store.create_table("bench/features", features_df.schema, kind="feature_group")
        store.append("bench/features", features_df.repartition(4))
        files = [u.removeprefix("file://") for u in store.file_uris("bench/features")]
        runs = {"n": 0}

        def ours() -> int:
            runs["n"] += 1
            scored = score(store.read("bench/features"), booster_raw=raw, key="bench/1", features=names, threshold=0.5)
            out = scored.select("entity_id", "score", "predicted_label")
            name = f"bench/predictions_{runs['n']}"
            store.create_table(name, out.schema, kind="predictions")
            return store.append(name, out, run=RunContext(pipeline="bench")).rows

        parts: dict[str, list[float]] = {"read": [], "score": [], "to_spark_and_commit": []}

        def ours_local() -> int:  # the single-process path of fti score (scoring.engine: local / auto)
            runs["n"] += 1
            t0 = time.perf_counter()
            data = store.arrow_dataset("bench/features").to_table()
            t1 = time.perf_counter()
            scores, labels = score_arrow(data, booster=booster, features=names, threshold=0.5)
            t2 = time.perf_counter()
            out = spark.createDataFrame(pa.table({"entity_id": data.column("entity_id"), "score": scores,
                                                  "predicted_label": labels}))
            name = f"bench/predictions_{runs['n']}"
            store.create_table(name, out.schema, kind="predictions")
            rows = store.append(name, out, run=RunContext(pipeline="bench")).rows
            parts["read"].append(t1 - t0)
            parts["score"].append(t2 - t1)
            parts["to_spark_and_commit"].append(time.perf_counter() - t2)
            return rows

        def reference() -> int:
            data = pq.ParquetDataset(files).read()
            matrix = np.column_stack([data.column(n).to_numpy() for n in names])
            scores = booster.inplace_predict(matrix)
            pq.write_table(pa.table({"entity_id": data.column("entity_id"), "score": scores,
                                     "predicted_label": (scores >= 0.5).astype("int32")}),
                           folder / f"ref-{time.time_ns()}.parquet")
            return data.num_rows

        ours()
        reference()  # warm-ups
        # where the Spark path's time goes: the scoring job alone (no write) against the whole append
        t0 = time.perf_counter()
        score(store.read("bench/features"), booster_raw=raw, key="bench/1", features=names, threshold=0.5).select(
            "entity_id", "score", "predicted_label").write.format("noop").mode("overwrite").save()
        udf_only_s = time.perf_counter() - t0
        with peak_memory() as ours_mem:
            ours_s, ours_runs, rows = median_of(ours, args.repeat)
        with peak_memory() as ref_mem:
            ref_s, ref_runs, ref_rows = median_of(reference, args.repeat)
        assert rows == ref_rows == args.entities, (rows, ref_rows)
        # the same scores on both sides
        ours_scores = store.read(f"bench/predictions_{runs['n']}").orderBy("entity_id").select("score").toPandas()
        ref_scores = booster.inplace_predict(np.column_stack([pq.ParquetDataset(files).read().sort_by("entity_id")
                                                              .column(n).to_numpy() for n in names]))
        same = bool(np.allclose(ours_scores["score"].to_numpy(), ref_scores, atol=1e-6))
        ratio = ref_s / ours_s
        record("score", {"ours_s": ours_s, "ours_runs_s": ours_runs, "reference": "pyarrow + inplace_predict + parquet",
                         "reference_s": ref_s, "reference_runs_s": ref_runs, "ratio": ratio,
                         "ratio_meaning": "rows/s ours / rows/s reference", "rows_per_s": args.entities / ours_s,
                         "driver_peak_mib": round(ours_mem["peak_mib"]), "reference_peak_mib": round(ref_mem["peak_mib"]),
                         "scores_identical": same, "spark_start_s": spark_start,
                         "read_and_score_job_without_write_s": round(udf_only_s, 2),
                         "sizes": {"entities": args.entities, "features": args.features, "rounds": 100}},
               goal="ratio >= 0.6 (rows/s)", met=ratio >= 0.6 and same)
        ours_local()  # warm-up
        with peak_memory() as local_mem:
            local_s, local_runs, local_rows = median_of(ours_local, args.repeat)
        local_scores = store.read(f"bench/predictions_{runs['n']}").orderBy("entity_id").select("score").toPandas()
        local_same = local_rows == args.entities and bool(np.allclose(local_scores["score"].to_numpy(), ref_scores,
                                                                      atol=1e-6))
        local_ratio = ref_s / local_s
        record("score_local", {"ours_s": local_s, "ours_runs_s": local_runs,
                               "reference": "pyarrow + inplace_predict + parquet", "reference_s": ref_s,
                               "ratio": local_ratio, "ratio_meaning": "rows/s ours / rows/s reference",
                               "rows_per_s": args.entities / local_s, "driver_peak_mib": round(local_mem["peak_mib"]),
                               "scores_identical": local_same, "spark_start_s": spark_start,
                               "breakdown_median_s": {k: round(statistics.median(v), 2) for k, v in parts.items()},
                               "sizes": {"entities": args.entities, "features": args.features, "rounds": 100}},
               goal="ratio >= 0.85 (rows/s)", met=local_ratio >= 0.85 and local_same)
        return 0 if same and local_same else 1


if __name__ == "__main__":
    sys.exit(main())
