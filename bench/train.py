"""Benchmark: distributed training with Ray Train as ``fti train`` runs it (Ray start, the windows read once
with pyarrow, the workers planned from the row count, ``fti.training.ray_train.fit``), vs single-process
``xgboost.train`` with the same parameters and ``nthread = 2``, its data load included. Both read the same
parquet files, train 100 rounds on the same rows and are scored on the same held-out rows.

Usage: python bench/train.py [--rows N] [--features F] [--repeat R] [--workers auto|N] [--name NAME]
Ratio is time ours / reference (goal <= 2.0 at 1M rows, result ``train``; <= 1.3 at 10M rows, result
``train_10m``) and the test AUCs must agree within 0.002.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import median_of, record  # noqa: E402

PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist", "max_depth": 6,
          "eta": 0.1, "subsample": 0.8, "seed": 7}
ROUNDS = 100
T0 = dt.datetime(2013, 1, 1, tzinfo=dt.timezone.utc)


def generate(folder: Path, rows: int, features: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(features)]
    weights = rng.normal(size=features)

    def block(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, features))
        logit = x @ weights * 0.5 + np.sin(x[:, 0] * 2) + x[:, 1] * x[:, 2]
        return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int32")

    x, y = block(rows)
    # 90% train, 10% validation, by a time column (as fti training windows are)
    t = np.where(np.arange(rows) < rows * 0.9, 0, 1) * 86400 * 30 + rng.integers(0, 86400 * 30, rows)
    times = pa.array((np.datetime64(T0.replace(tzinfo=None), "us") + t.astype("timedelta64[s]")).astype("datetime64[us]"),
                     pa.timestamp("us", tz="UTC"))
    files = []
    for part in range(4):
        sl = slice(part * rows // 4, (part + 1) * rows // 4)
        path = folder / f"part-{part}.parquet"
        pq.write_table(pa.table({**{n: x[sl, i] for i, n in enumerate(names)}, "label": y[sl], "t": times[sl]}), path)
        files.append(str(path))
    tx, ty = block(rows // 5)
    return files, names, tx, ty


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_TRAIN_ROWS", 1_000_000)))
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="auto", help="Ray Train workers: auto (as fti train) or a number")
    parser.add_argument("--name", default=None, help="result name (default: train, or train_10m at 10M rows)")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import xgboost

    from fti.config import load_config
    from fti.training.pipeline import read_windows
    from fti.training.ray_train import fit, plan_workers, ray_session, runs_in_process

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        files, names, test_x, test_y = generate(folder, args.rows, args.features)
        settings = load_config("flights", home=folder / "home", env={"FTI__TRAINING__NUM_WORKERS": args.workers})
        split = T0 + dt.timedelta(days=30)
        windows = {"train": (T0, split), "validation": (split, split + dt.timedelta(days=30))}

        parts_s: dict[str, list[float]] = {"ray_start": [], "data_load": [], "fit": [], "ray_shutdown": [],
                                           "ref_load": [], "ref_train": []}
        plans: list[str] = []

        def ours() -> xgboost.Booster:
            # what `fti train` does after the training set exists: Ray, the windows read once, the workers
            # planned from the row count (training.num_workers: auto), the Ray Train fit
            t0 = time.perf_counter()
            in_process = runs_in_process(settings, args.rows)
            with nullcontext() if in_process else ray_session(settings):
                t1 = time.perf_counter()
                tables = read_windows(files, windows, names + ["label"], "t", table="bench", order_by=[])
                t2 = time.perf_counter()
                workers = plan_workers(settings, tables["train"].num_rows, in_process=in_process)
                plans.append(workers.describe())
                booster = fit(tables, features=names, label="label", params=dict(PARAMS), num_boost_round=ROUNDS,
                              early_stopping_rounds=ROUNDS, workers=workers, use_gpu=False, timeout_s=1800,
                              run_name="bench").booster
                t3 = time.perf_counter()
            parts_s["ray_start"].append(t1 - t0)
            parts_s["data_load"].append(t2 - t1)
            parts_s["fit"].append(t3 - t2)
            parts_s["ray_shutdown"].append(time.perf_counter() - t3)
            return booster

        def reference() -> xgboost.Booster:
            t0 = time.perf_counter()
            # the rows in the order fti trains on (by time, a stable sort: the same model for the same rows)
            data = pq.ParquetDataset(sorted(files)).read().sort_by("t")
            is_train = pc.less(data.column("t"), pa.scalar(split, pa.timestamp("us", tz="UTC")))
            parts = {}
            for name, mask in (("train", is_train), ("validation", pc.invert(is_train))):
                rows = data.filter(mask)
                parts[name] = xgboost.DMatrix(np.column_stack([rows.column(n).to_numpy() for n in names]),
                                              label=rows.column("label").to_numpy(), feature_names=names)
            t1 = time.perf_counter()
            booster = xgboost.train({**PARAMS, "nthread": 2}, parts["train"], num_boost_round=ROUNDS,
                                    evals=[(parts["validation"], "validation")],
                                    early_stopping_rounds=ROUNDS, verbose_eval=False)
            parts_s["ref_load"].append(t1 - t0)
            parts_s["ref_train"].append(time.perf_counter() - t1)
            return booster

        ours_s, ours_runs, ours_booster = median_of(ours, args.repeat)
        ref_s, ref_runs, ref_booster = median_of(reference, args.repeat)
        dtest = xgboost.DMatrix(test_x, feature_names=names)
        ours_auc, ref_auc = auc(test_y, ours_booster.predict(dtest)), auc(test_y, ref_booster.predict(dtest))
        ratio = ours_s / ref_s
        close = abs(ours_auc - ref_auc) <= 0.002
        name = args.name or ("train_10m" if args.rows >= 10_000_000 else "train")
        goal = 1.3 if name == "train_10m" else 2.0
        record(name, {"ours_s": ours_s, "ours_runs_s": ours_runs,
                         "reference": "single-process xgboost.train, nthread=2 (data load included)",
                         "reference_s": ref_s, "reference_runs_s": ref_runs, "ratio": ratio,
                         "breakdown_median_s": {k: round(statistics.median(v), 2) for k, v in parts_s.items() if v},
                         "ours_test_auc": ours_auc, "reference_test_auc": ref_auc, "auc_within_0.002": close,
                         "workers": plans[-1],
                         "sizes": {"rows": args.rows, "features": args.features, "rounds": ROUNDS}},
               goal=f"ratio <= {goal} and test AUC within 0.002", met=ratio <= goal and close)
    return 0


if __name__ == "__main__":
    sys.exit(main())
