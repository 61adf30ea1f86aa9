"""``fti train``: training set -> Ray Train XGBoost -> MLflow run, registered model, promotion gate.

1. build (or reuse, when every pinned input version is unchanged) the training set of the view;
2. split by prediction time into the configured train / validation / test windows;
3. fit on Ray Train from the training set's Delta file list (pinned version);
4. evaluate on the driver: AUC, log loss, precision/recall at the F1-best validation threshold,
   calibration error; plots; log everything with the manifest to MLflow; register the model with
   tags for every pinned table version;
5. promotion: the new version becomes ``champion`` only if its test AUC beats the current champion's,
   re-scored on the SAME test rows, by ``training.promotion_margin``; otherwise it is ``challenger``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING


from fti.errors import ConfigError, FtiError
from fti.registry import MANIFEST_TAG, PIN_TAG, client
from fti.store import TableStore, new_run_id
from fti.store.feature_store import FeatureStore, TrainingSet
from fti.store.manifest import MANIFEST_SUFFIX, TrainingSetManifest
from fti.timeutil import day_start, parse_day
from fti.training import metrics as quality
from fti.training.promotion import gate

if TYPE_CHECKING:
    import pandas as pd

    from fti.config import Settings

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What a training run did (the CLI prints it)."""

    run_id: str
    mlflow_run_id: str
    model_name: str
    version: int
    alias: str
    reason: str
    rows: dict[str, int]
    features: list[str]
    metrics: dict[str, float]
    champion_auc: float | None
    training_set: str
    reused_training_set: bool
    threshold: float
    seconds: dict[str, float] = field(default_factory=dict)
    experiment_url: str = ""


def _reusable(store: TableStore, fs: FeatureStore, view_name: str, start: dt.date, end: dt.date) -> TrainingSet | None:
    """The newest materialized training set of this view whose definition (hashed into its manifest) is the
    same and whose pinned inputs are still the latest versions."""
    folder = store.home / fs.settings.system / "training_sets" / view_name
    if not folder.is_dir():
        return None
    view = fs.feature_view(view_name)
    current = {"spine": store.version(view.spine_table), **{g.group: store.version(g.table) for g in view.groups}}
    for path in sorted(folder.glob(f"*{MANIFEST_SUFFIX}"), reverse=True):
        manifest = TrainingSetManifest.read(path)
        if manifest.versions() == current and manifest.spine.start == start.isoformat() \
                and manifest.spine.end == end.isoformat() and manifest.view_hash == view.definition_hash() \
                and not manifest.bitemporal and manifest.output and store.exists(manifest.output.table):
            out = manifest.output
            return TrainingSet(df=store.read(out.table, version=out.version), manifest=manifest, path=out.table,
                               manifest_file=str(path))
    return None


def _window(settings: Settings, name: str) -> tuple[dt.datetime, dt.datetime]:
    cfg = getattr(settings.config.training, name)
    tz = settings.config.timezone
    return day_start(parse_day(cfg.start, option=f"training.{name}.start"), tz), \
        day_start(parse_day(cfg.end, option=f"training.{name}.end"), tz)


def _frame(store: TableStore, table: str, version: int, cols: list[str], time_col: str,
           window: tuple[dt.datetime, dt.datetime]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as pds

    utc = pa.timestamp("us", tz="UTC")
    expr = (pds.field(time_col) >= pa.scalar(window[0], utc)) & (pds.field(time_col) < pa.scalar(window[1], utc))
    dataset = pds.dataset(store.file_uris(table, version=version), format="parquet")
    return dataset.to_table(columns=cols, filter=expr).to_pandas()


def preflight(settings: Settings) -> None:
    """Fail in seconds, before any work, when the configured MLflow server or Ray cluster does not answer."""
    from fti.registry import check_tracking
    from fti.training.ray_train import check_ray

    check_tracking(settings)
    check_ray(settings)


def run(store: TableStore, settings: Settings, *, run_id: str | None = None, view: str | None = None,
        exclude_features: list[str] | None = None) -> TrainReport:
    """Train, evaluate, log, register and gate one model.

    Args:
        store: Table store.
        settings: Settings with a ``training`` section.
        run_id: Run id (default: a new ``train-...`` id; the training set table ends in it).
        view: Feature view (default: ``training.feature_view``).
        exclude_features: Leave these features out (default: ``training.exclude_features``).

    Returns:
        What was trained and where it went.
    """
    import mlflow
    import xgboost
    from mlflow.models import infer_signature

    cfg = settings.config.training
    if cfg is None:
        raise ConfigError(f"the config of system {settings.system} has no training section")
    preflight(settings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run_id = run_id or new_run_id("train")
    fs = FeatureStore(store, settings)
    view_name = view or cfg.feature_view or next(iter(settings.config.feature_views))
    first, last = parse_day(cfg.train.start), parse_day(cfg.test.end)
    ts = _reusable(store, fs, view_name, first, last)
    reused = ts is not None
    if ts is None:
        ts = fs.materialize(fs.get_training_set(None, view_name, start=first, end=last), run_id=run_id)
    timings["training_set"] = time.perf_counter() - t0
    manifest = ts.manifest
    label, time_col = manifest.spine.label, manifest.spine.event_time
    excluded = set(exclude_features if exclude_features is not None else cfg.exclude_features)
    features = [c for c in ts.feature_columns if c not in excluded]
    out = manifest.output
    windows = {name: _window(settings, name) for name in ("train", "validation", "test")}
    log.info("training set %s (%s): %d rows, %d features", out.table, "reused" if reused else "built",
             out.rows, len(features))

    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
              "seed": 7, **cfg.params}
    use_gpu = cfg.device == "cuda"
    if use_gpu:
        params["device"] = "cuda"
    files = store.file_uris(out.table, version=out.version)
    from fti.training.ray_train import fit, ray_session

    t1 = time.perf_counter()
    with ray_session(settings, num_workers=cfg.num_workers):
        booster = fit(files, features=features, label=label, time_col=time_col, windows=windows, params=params,
                      num_boost_round=cfg.num_boost_round, early_stopping_rounds=cfg.early_stopping_rounds,
                      num_workers=cfg.num_workers, use_gpu=use_gpu, timeout_s=settings.config.ray.timeout_s,
                      run_name=run_id)
    timings["fit"] = time.perf_counter() - t1

    cols = features + [label]
    val = _frame(store, out.table, out.version, cols + [time_col], time_col, windows["validation"])
    test = _frame(store, out.table, out.version, cols + [time_col], time_col, windows["test"])
    if test.empty:
        raise FtiError(f"the test window {cfg.test.start}..{cfg.test.end} has no rows in {out['table']}",
                       hint="land and featurize data through the end of the test window first")
    p_val = booster.predict(xgboost.DMatrix(val[features], feature_names=features))
    p_test = booster.predict(xgboost.DMatrix(test[features], feature_names=features))
    threshold = quality.best_f1_threshold(val[label].to_numpy(), p_val)
    m_val = quality.quality(val[label].to_numpy(), p_val, threshold)
    m_test = quality.quality(test[label].to_numpy(), p_test, threshold)
    rows = {"train": int(out.rows) - len(val) - len(test), "validation": len(val), "test": len(test)}

    mlflow.set_tracking_uri(settings.tracking_uri)
    if settings.config.mlflow.registry_uri:
        mlflow.set_registry_uri(settings.config.mlflow.registry_uri)
    experiment = settings.config.mlflow.experiment or settings.system
    mlflow_client = client(settings)
    if mlflow_client.get_experiment_by_name(experiment) is None:
        location = settings.artifact_location if not settings.config.mlflow.tracking_uri else None
        mlflow_client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    scratch = Path(tempfile.mkdtemp(prefix="fti-train-"))
    t2 = time.perf_counter()
    try:
        with mlflow.start_run(run_name=run_id) as active:
            mlflow.log_params({**{f"xgb.{k}": v for k, v in params.items()}, "num_workers": cfg.num_workers,
                               "num_boost_round": cfg.num_boost_round, "best_iteration": booster.num_boosted_rounds(),
                               "feature_view": view_name, "features": ",".join(features),
                               "training_set": out.table, "training_set_sha256": out.sha256,
                               "threshold": threshold, **{f"window.{k}": f"{getattr(cfg, k).start}..{getattr(cfg, k).end}"
                                                           for k in ("train", "validation", "test")}})
            mlflow.log_metrics({**{f"val_{k}": v for k, v in m_val.items()}, **{f"test_{k}": v for k, v in m_test.items()},
                                "train_rows": rows["train"], "fit_seconds": timings["fit"]})
            mlflow.log_dict(manifest.to_json(), "training_set.json")
            mlflow.log_dict(manifest.leakage_report, "leakage_report.json")
            importance = booster.get_score(importance_type="total_gain")
            for png in quality.plots(scratch / "plots", y_val=val[label].to_numpy(), p_val=p_val,
                                     y_test=test[label].to_numpy(), p_test=p_test, importance=importance,
                                     features=features):
                mlflow.log_artifact(str(png), "plots")
            example = test[features].head(5).astype("float64")
            signature = infer_signature(example, booster.predict(xgboost.DMatrix(example, feature_names=features)))
            info = mlflow.xgboost.log_model(booster, name="model", signature=signature, input_example=example,
                                            registered_model_name=cfg.model_name,
                                            metadata={"threshold": threshold, "features": features,
                                                      "training_set": out.table, "feature_view": view_name})
            mlflow_run_id = active.info.run_id
        version = int(info.registered_model_version)
        tags = {MANIFEST_TAG: out.table, "fti.threshold": repr(threshold), "fti.feature_view": view_name,
                "fti.features": json.dumps(features), "fti.test_auc": repr(m_test["auc"]),
                "fti.test_window": f"{cfg.test.start}..{cfg.test.end}", "fti.run_id": run_id,
                # every table version the set read or wrote (history tables too): vacuum keeps their files
                **{f"{PIN_TAG}{table}": str(version) for table, version in manifest.pins().items()}}
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(cfg.model_name, str(version), key, value)
        decision = gate(mlflow_client, cfg.model_name, version, new_auc=m_test["auc"], test=test, label=label,
                        margin=cfg.promotion_margin)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    timings["mlflow"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return TrainReport(run_id=run_id, mlflow_run_id=mlflow_run_id, model_name=cfg.model_name, version=version,
                       alias=decision.alias, reason=decision.reason, rows=rows, features=features,
                       metrics={**{f"val_{k}": v for k, v in m_val.items()}, **{f"test_{k}": v for k, v in m_test.items()}},
                       champion_auc=decision.champion_auc, training_set=out.table, reused_training_set=reused,
                       threshold=threshold, seconds=timings,
                       experiment_url=f"{settings.tracking_uri} experiment '{experiment}' run {mlflow_run_id}")
