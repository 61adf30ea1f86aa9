"""``fti monitor``: each scoring run's feature and score distributions against the model's training set.

Per run (model, version, as_of): PSI of every feature on 10 bins cut at the training set's deciles, the
null rate (scoring vs training), the share of values outside the training range, the PSI of the scores,
and, once outcomes have arrived in the labels table, the realized AUC. Results go to
``<system>/monitoring`` (one commit per monitor run) and a PNG per run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fti.errors import FtiError
from fti.registry import ModelRef, manifest_of_model
from fti.store import RunContext, TableStore
from fti.store.feature_store import FeatureStore
from fti.timeutil import UTC

if TYPE_CHECKING:
    import pandas as pd

    from fti.config import Settings

log = logging.getLogger(__name__)
SCHEMA = ("model_name string NOT NULL, model_version int NOT NULL, as_of timestamp NOT NULL, metric string NOT NULL, "
          "feature string, value double, threshold double, drift boolean, computed_at timestamp NOT NULL")


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` on the expected's quantile bins."""
    expected = expected[~np.isnan(expected)]
    actual = actual[~np.isnan(actual)]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _run_metrics(settings: Settings, store: TableStore, fs: FeatureStore, model: str, version: int,
                 as_of: dt.datetime, feature_versions: dict[str, int], preds: pd.DataFrame) -> list[dict[str, Any]]:
    import mlflow.xgboost
    import xgboost
    from sklearn.metrics import roc_auc_score

    from fti.store.feature_store import view_of_manifest

    cfg = settings.config.monitoring
    manifest = manifest_of_model(settings, ModelRef(model, version=version))
    view = view_of_manifest(manifest)
    features = view.feature_columns
    train = store.read(manifest.output.table, version=manifest.output.version).select(
        *features).toPandas().astype("float64")
    population = store.read(view.spine_table).where(f"{view.spine_time} = timestamp'{as_of.strftime('%Y-%m-%d %H:%M:%S')}'")
    keep = list(dict.fromkeys(view.spine_keys + view.spine_features + [k for g in view.groups for k in g.keys]))
    scoring = fs.get_batch_features(view, as_of=as_of, population_df=population.select(*keep),
                                    versions=feature_versions).toPandas()
    rows = []

    def add(metric: str, feature: str | None, value: float, threshold: float | None) -> None:
        drift = bool(threshold is not None and not np.isnan(value) and value > threshold)
        rows.append({"metric": metric, "feature": feature, "value": None if np.isnan(value) else float(value),
                     "threshold": threshold, "drift": drift})

    for f in features:
        tr, sc = train[f].to_numpy(), scoring[f].astype("float64").to_numpy()
        add("psi", f, psi(tr, sc), cfg.psi_threshold)
        add("null_rate_delta", f, abs(np.isnan(sc).mean() - np.isnan(tr).mean()), cfg.null_rate_delta)
        lo, hi = np.nanmin(tr) if (~np.isnan(tr)).any() else np.nan, np.nanmax(tr) if (~np.isnan(tr)).any() else np.nan
        present = sc[~np.isnan(sc)]
        outside = float(((present < lo) | (present > hi)).mean()) if len(present) else 0.0
        add("out_of_range_share", f, outside, cfg.out_of_range_share)
    booster = mlflow.xgboost.load_model(f"models:/{model}/{version}")
    model_features = booster.feature_names or features
    train_scores = booster.predict(xgboost.DMatrix(train[model_features], feature_names=model_features))
    add("score_psi", None, psi(train_scores, preds["score"].to_numpy()), cfg.psi_threshold)
    add("score_mean", None, float(preds["score"].mean()), None)
    labels = store.read(view.spine_table).where(
        f"{view.label} is not null and {view.spine_time} = timestamp'{as_of.strftime('%Y-%m-%d %H:%M:%S')}'").select(
        *[f"`{k}`" for k in view.spine_keys], view.label).toPandas()
    key = view.spine_keys[0]
    joined = preds.merge(labels.astype({key: str}), on=key, how="inner")
    if len(joined) and joined[view.label].nunique() == 2:
        add("realized_auc", None, float(roc_auc_score(joined[view.label], joined["score"])), None)
        add("outcomes_arrived", None, float(len(joined) / len(preds)), None)
    else:
        add("outcomes_arrived", None, float(len(joined) / max(1, len(preds))), None)
    return rows


def _plot(path: Path, title: str, rows: list[dict[str, Any]], threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    psis = [(r["feature"], r["value"] or 0.0) for r in rows if r["metric"] == "psi"]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(psis))))
    ax.barh([p[0] for p in psis], [p[1] for p in psis], color=["tab:red" if p[1] > threshold else "tab:blue" for p in psis])
    ax.axvline(threshold, color="k", ls="--", lw=0.8)
    ax.set(xlabel="PSI vs training set", title=title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(store: TableStore, settings: Settings) -> dict[str, Any]:
    """Monitor every scoring run in the predictions table; write the monitoring table and PNG reports."""
    from pyspark.sql import functions as F

    preds_table = f"{settings.system}/predictions"
    if not store.exists(preds_table):
        raise FtiError(f"no predictions table {preds_table}", hint="score first: fti score --as-of T")
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    fs = FeatureStore(store, settings)
    preds = store.read(preds_table)
    runs = preds.select("model_name", "model_version", "as_of", "feature_versions").dropDuplicates(
        ["model_name", "model_version", "as_of"]).orderBy("as_of").collect()
    now = dt.datetime.now(UTC)
    out: list[dict[str, Any]] = []
    reports = []
    for r in runs:
        as_of = r.as_of.replace(tzinfo=UTC)
        rows_df = preds.where((F.col("model_name") == r.model_name) & (F.col("model_version") == r.model_version)
                              & (F.col("as_of") == F.lit(as_of).cast("timestamp"))).toPandas()
        metrics = _run_metrics(settings, store, fs, r.model_name, r.model_version, as_of, dict(r.feature_versions or {}),
                               rows_df)
        png = store.home / settings.system / "monitoring_reports" / \
            f"{r.model_name}_v{r.model_version}_{as_of.strftime('%Y%m%dT%H%MZ')}.png"
        _plot(png, f"{r.model_name} v{r.model_version} at {as_of.isoformat()}", metrics,
              settings.config.monitoring.psi_threshold)
        for m in metrics:
            out.append({"model_name": r.model_name, "model_version": r.model_version, "as_of": as_of.replace(tzinfo=None),
                        "computed_at": now.replace(tzinfo=None), **m})
        reports.append({"model": f"{r.model_name}/{r.model_version}", "as_of": as_of.isoformat(), "png": str(png),
                        "drifted": sorted({m["feature"] or m["metric"] for m in metrics if m["drift"]}),
                        **{m["metric"]: m["value"] for m in metrics if m["feature"] is None}})
    name = f"{settings.system}/monitoring"
    from pyspark.sql.types import _parse_datatype_string

    schema = _parse_datatype_string(SCHEMA)
    store.create_table(name, schema, kind="monitoring", description="Drift and realized quality per scoring run")
    frame = store.spark.createDataFrame([tuple(row[f.name] for f in schema.fields) for row in out], schema)
    result = store.overwrite(name, frame.coalesce(1), run=RunContext(pipeline="monitoring"),
                             metadata={"fti.runs": json.dumps([x["model"] + "@" + x["as_of"] for x in reports])})
    return {"table": name, "version": result.version, "runs": reports}
