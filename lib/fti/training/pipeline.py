"""``fti train``: training set -> Ray Train XGBoost -> MLflow run, registered model, promotion gate.

:func:`run` is five named steps:

1. :func:`prepare` builds (or reuses, when the view and every pinned input version are unchanged) the
   training set of the view, and says which features, label and train / validation / test windows it gives;
2. :func:`fit_model` trains on Ray Train from the training set's Delta file list (pinned version);
3. :func:`evaluate` scores the validation and test windows on the driver: AUC, log loss, precision/recall at
   the F1-best validation threshold, calibration error (an :class:`Evaluation`);
4. :func:`register` logs everything with the manifest and plots to MLflow, registers the model and stores its
   metadata once, as version tags (:class:`fti.registry.ModelMetadata`, with a pin for every table version);
5. the promotion gate: the new version becomes ``champion`` only if its test AUC beats the current
   champion's, re-scored on the SAME test rows, by ``training.promotion_margin``; otherwise ``challenger``.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fti.errors import ConfigError, FtiError
from fti.registry import ModelMetadata, client
from fti.store import TableStore, new_run_id
from fti.store.feature_store import FeatureStore, TrainingSet
from fti.store.manifest import MANIFEST_SUFFIX, OutputEntry, TrainingSetManifest
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


@dataclass
class PreparedSet:
    """The training set a run learns from, with what the model reads from it."""

    training_set: TrainingSet
    reused: bool
    view: str
    features: list[str]
    label: str
    time_col: str
    windows: dict[str, tuple[dt.datetime, dt.datetime]]

    @property
    def output(self) -> OutputEntry:
        return self.training_set.manifest.output


@dataclass
class Evaluation:
    """Quality on the validation and test windows at the validation's F1-best threshold, with the rows."""

    threshold: float
    validation: dict[str, float]
    test: dict[str, float]
    rows: dict[str, int]
    val_frame: pd.DataFrame
    test_frame: pd.DataFrame
    p_val: Any
    p_test: Any

    @property
    def metrics(self) -> dict[str, float]:
        return {**{f"val_{k}": v for k, v in self.validation.items()}, **{f"test_{k}": v for k, v in self.test.items()}}


@dataclass
class RegisteredModel:
    """A model version logged to MLflow and registered, with its metadata."""

    name: str
    version: int
    mlflow_run_id: str
    experiment: str
    metadata: ModelMetadata


def prepare(store: TableStore, settings: Settings, *, run_id: str, view: str | None = None,
            exclude_features: list[str] | None = None) -> PreparedSet:
    """Build (or reuse, when its view and every pinned input are unchanged) the training set of the view."""
    cfg = settings.config.training
    fs = FeatureStore(store, settings)
    view_name = view or cfg.feature_view or next(iter(settings.config.feature_views))
    first, last = parse_day(cfg.train.start), parse_day(cfg.test.end)
    ts = _reusable(store, fs, view_name, first, last)
    reused = ts is not None
    if ts is None:
        ts = fs.materialize(fs.get_training_set(None, view_name, start=first, end=last), run_id=run_id)
    excluded = set(exclude_features if exclude_features is not None else cfg.exclude_features)
    prepared = PreparedSet(training_set=ts, reused=reused, view=view_name,
                           features=[c for c in ts.feature_columns if c not in excluded],
                           label=ts.manifest.spine.label, time_col=ts.manifest.spine.event_time,
                           windows={name: _window(settings, name) for name in ("train", "validation", "test")})
    log.info("training set %s (%s): %d rows, %d features", prepared.output.table, "reused" if reused else "built",
             prepared.output.rows, len(prepared.features))
    return prepared


def _params(settings: Settings) -> dict[str, Any]:
    cfg = settings.config.training
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
              "seed": 7, **cfg.params}
    if cfg.device == "cuda":
        params["device"] = "cuda"
    return params


def fit_model(store: TableStore, settings: Settings, prepared: PreparedSet, *, run_id: str) -> Any:
    """Train XGBoost on Ray Train over the training set's pinned files; returns the booster."""
    from fti.training.ray_train import fit, ray_session

    cfg = settings.config.training
    out = prepared.output
    files = store.file_uris(out.table, version=out.version)
    with ray_session(settings, num_workers=cfg.num_workers):
        return fit(files, features=prepared.features, label=prepared.label, time_col=prepared.time_col,
                   windows=prepared.windows, params=_params(settings), num_boost_round=cfg.num_boost_round,
                   early_stopping_rounds=cfg.early_stopping_rounds, num_workers=cfg.num_workers,
                   use_gpu=cfg.device == "cuda", timeout_s=settings.config.ray.timeout_s, run_name=run_id)


def evaluate(store: TableStore, settings: Settings, prepared: PreparedSet, booster: Any) -> Evaluation:
    """Score the validation and test windows; the threshold is the validation's F1-best.

    Raises:
        FtiError: The test window has no rows.
    """
    import xgboost

    cfg = settings.config.training
    out, features, label, time_col = prepared.output, prepared.features, prepared.label, prepared.time_col
    cols = features + [label, time_col]
    val = _frame(store, out.table, out.version, cols, time_col, prepared.windows["validation"])
    test = _frame(store, out.table, out.version, cols, time_col, prepared.windows["test"])
    if test.empty:
        raise FtiError(f"the test window {cfg.test.start}..{cfg.test.end} has no rows in {out.table}",
                       hint="land and featurize data through the end of the test window first")
    p_val = booster.predict(xgboost.DMatrix(val[features], feature_names=features))
    p_test = booster.predict(xgboost.DMatrix(test[features], feature_names=features))
    threshold = quality.best_f1_threshold(val[label].to_numpy(), p_val)
    return Evaluation(threshold=threshold, validation=quality.quality(val[label].to_numpy(), p_val, threshold),
                      test=quality.quality(test[label].to_numpy(), p_test, threshold),
                      rows={"train": int(out.rows) - len(val) - len(test), "validation": len(val), "test": len(test)},
                      val_frame=val, test_frame=test, p_val=p_val, p_test=p_test)


def register(settings: Settings, prepared: PreparedSet, booster: Any, evaluation: Evaluation, *, run_id: str,
             fit_seconds: float) -> RegisteredModel:
    """Log the run (params, metrics, manifest, leakage report, plots, model) to MLflow, register the model and
    store its metadata on the version (tags, once: :class:`fti.registry.ModelMetadata`)."""
    import mlflow
    import xgboost
    from mlflow.models import infer_signature

    cfg = settings.config.training
    out, features, label, manifest = prepared.output, prepared.features, prepared.label, prepared.training_set.manifest
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
    val, test = evaluation.val_frame, evaluation.test_frame
    try:
        with mlflow.start_run(run_name=run_id) as active:
            mlflow.log_params({**{f"xgb.{k}": v for k, v in _params(settings).items()}, "num_workers": cfg.num_workers,
                               "num_boost_round": cfg.num_boost_round, "best_iteration": booster.num_boosted_rounds(),
                               "feature_view": prepared.view, "features": ",".join(features),
                               "training_set": out.table, "training_set_sha256": out.sha256,
                               "threshold": evaluation.threshold,
                               **{f"window.{k}": f"{getattr(cfg, k).start}..{getattr(cfg, k).end}"
                                  for k in ("train", "validation", "test")}})
            mlflow.log_metrics({**evaluation.metrics, "train_rows": evaluation.rows["train"], "fit_seconds": fit_seconds})
            mlflow.log_dict(manifest.to_json(), "training_set.json")
            mlflow.log_dict(manifest.leakage_report, "leakage_report.json")
            importance = booster.get_score(importance_type="total_gain")
            for png in quality.plots(scratch / "plots", y_val=val[label].to_numpy(), p_val=evaluation.p_val,
                                     y_test=test[label].to_numpy(), p_test=evaluation.p_test, importance=importance,
                                     features=features):
                mlflow.log_artifact(str(png), "plots")
            example = test[features].head(5).astype("float64")
            signature = infer_signature(example, booster.predict(xgboost.DMatrix(example, feature_names=features)))
            info = mlflow.xgboost.log_model(booster, name="model", signature=signature, input_example=example,
                                            registered_model_name=cfg.model_name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    version = int(info.registered_model_version)
    # every table version the set read or wrote (history tables too): vacuum keeps their files
    metadata = ModelMetadata(training_set=out.table, feature_view=prepared.view, features=features,
                             threshold=evaluation.threshold, test_auc=evaluation.test["auc"],
                             test_window=f"{cfg.test.start}..{cfg.test.end}", run_id=run_id, pins=manifest.pins())
    for key, value in metadata.tags().items():
        mlflow_client.set_model_version_tag(cfg.model_name, str(version), key, value)
    return RegisteredModel(name=cfg.model_name, version=version, mlflow_run_id=active.info.run_id,
                           experiment=experiment, metadata=metadata)


def run(store: TableStore, settings: Settings, *, run_id: str | None = None, view: str | None = None,
        exclude_features: list[str] | None = None) -> TrainReport:
    """Train, evaluate, log, register and gate one model: :func:`prepare`, :func:`fit_model`,
    :func:`evaluate`, :func:`register`, then the promotion gate.

    Args:
        store: Table store.
        settings: Settings with a ``training`` section.
        run_id: Run id (default: a new ``train-...`` id; the training set table ends in it).
        view: Feature view (default: ``training.feature_view``).
        exclude_features: Leave these features out (default: ``training.exclude_features``).

    Returns:
        What was trained and where it went.
    """
    cfg = settings.config.training
    if cfg is None:
        raise ConfigError(f"the config of system {settings.system} has no training section")
    preflight(settings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    run_id = run_id or new_run_id("train")
    prepared = prepare(store, settings, run_id=run_id, view=view, exclude_features=exclude_features)
    timings["training_set"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    booster = fit_model(store, settings, prepared, run_id=run_id)
    timings["fit"] = time.perf_counter() - t1
    evaluation = evaluate(store, settings, prepared, booster)
    t2 = time.perf_counter()
    model = register(settings, prepared, booster, evaluation, run_id=run_id, fit_seconds=timings["fit"])
    decision = gate(client(settings), model.name, model.version, new_auc=evaluation.test["auc"],
                    test=evaluation.test_frame, label=prepared.label, margin=cfg.promotion_margin)
    timings["mlflow"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return TrainReport(run_id=run_id, mlflow_run_id=model.mlflow_run_id, model_name=model.name, version=model.version,
                       alias=decision.alias, reason=decision.reason, rows=evaluation.rows, features=prepared.features,
                       metrics=evaluation.metrics, champion_auc=decision.champion_auc,
                       training_set=prepared.output.table, reused_training_set=prepared.reused,
                       threshold=evaluation.threshold, seconds=timings,
                       experiment_url=f"{settings.tracking_uri} experiment '{model.experiment}' run {model.mlflow_run_id}")
