"""Benchmark: distributed training with Ray Train (``fti.training.ray_train.fit``, 2 workers), Ray start and
data load included, vs single-process ``xgboost.train`` with the same parameters and ``nthread = 2``, its data
load included. Both read the same parquet files, train 100 rounds on the same rows and are scored on the same
held-out rows.

Usage: python bench/train.py [--rows N] [--features F] [--repeat R]
Ratio is time ours / reference (goal <= 1.5) and the test AUCs must agree within 0.002.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import statistics
import tempfile
import time
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
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import xgboost

    from fti.config import load_config
    from fti.training.ray_train import fit, ray_session

    with tempfile.TemporaryDirectory(prefix="fti-bench-") as tmp:
        folder = Path(tmp)
        files, names, test_x, test_y = generate(folder, args.rows, args.features)
        settings = load_config("flights", home=folder / "home")
        split = T0 + dt.timedelta(days=30)
        windows = {"train": (T0, split), "validation": (split, split + dt.timedelta(days=30))}

        parts_s: dict[str, list[float]] = {"ray_start": [], "fit_incl_data_load": [], "ray_shutdown": [],
                                           "ref_load": [], "ref_train": []}

        def ours() -> xgboost.Booster:
            t0 = time.perf_counter()
            with ray_session(settings, num_workers=2):
                t1 = time.perf_counter()
                booster = fit(files, features=names, label="label", time_col="t", windows=windows,
                              params=dict(PARAMS), num_boost_round=ROUNDS, early_stopping_rounds=ROUNDS, num_workers=2,
                              use_gpu=False, timeout_s=1800, run_name="bench")
                t2 = time.perf_counter()
            parts_s["ray_start"].append(t1 - t0)
            parts_s["fit_incl_data_load"].append(t2 - t1)
            parts_s["ray_shutdown"].append(time.perf_counter() - t2)
            return booster

        def reference() -> xgboost.Booster:
            t0 = time.perf_counter()
            data = pq.ParquetDataset(files).read()
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
        record("train", {"ours_s": ours_s, "ours_runs_s": ours_runs,
                         "reference": "single-process xgboost.train, nthread=2 (data load included)",
                         "reference_s": ref_s, "reference_runs_s": ref_runs, "ratio": ratio,
                         "breakdown_median_s": {k: round(statistics.median(v), 2) for k, v in parts_s.items() if v},
                         "ours_test_auc": ours_auc, "reference_test_auc": ref_auc, "auc_within_0.002": close,
                         "sizes": {"rows": args.rows, "features": args.features, "rounds": ROUNDS, "workers": 2}},
               goal="ratio <= 1.5 and test AUC within 0.002", met=ratio <= 1.5 and close)
    return 0


if __name__ == "__main__":
    sys.exit(main())
