"""``fti train``: training set -> Ray Train XGBoost -> MLflow run, registered model, promotion gate.

:func:`run` is five named steps:

1. :func:`prepare` builds (or reuses, when the view and every pinned input version are unchanged) the
   training set of the view, says which features, label and windows it gives, and reads the train /
   validation / test windows ONCE (pyarrow over the pinned Delta file list) for both training and evaluation;
   :func:`run` starts Ray in the main thread while this step builds the set with Spark in another;
2. :func:`fit_model` trains on Ray Train (the windows reach the workers through Ray's object store);
3. :func:`evaluate` scores the validation and test windows on the driver: AUC, log loss, precision/recall at
   the F1-best validation threshold, calibration error (an :class:`Evaluation`);
4. :func:`register` logs everything with the manifest and plots to MLflow, registers the model and stores its
   metadata once, as version tags (:class:`fti.registry.ModelMetadata`, with a pin for every table version);
5. the promotion gate: the new version becomes ``champion`` only if its test AUC beats the current
   champion's, re-scored on the SAME test rows, by ``training.promotion_margin``; otherwise ``challenger``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import shutil
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fti import objectives
from fti.errors import ConfigError, FtiError
from fti.location import parquet_dataset
from fti.registry import ModelMetadata, client, using_mlflow
from fti.store import TableStore, new_run_id
from fti.store.feature_store import FeatureStore, TrainingSet
from fti.store.manifest import MANIFEST_SUFFIX, OutputEntry, TrainingSetManifest
from fti.timeutil import day_start, parse_day
from fti.training import metrics as quality
from fti.training.promotion import gate
from fti.training.ray_train import WorkerPlan, ray_session, runs_in_process

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
    champion_metric: float | None
    training_set: str
    reused_training_set: bool
    threshold: float
    seconds: dict[str, float] = field(default_factory=dict)
    experiment_url: str = ""
    workers: str = ""
    objective: str = "binary"
    metric: str = "auc"


def _reusable(store: TableStore, fs: FeatureStore, view_name: str, start: dt.date, end: dt.date) -> TrainingSet | None:
    """The newest materialized training set of this view whose definition (hashed into its manifest) is the
    same and whose pinned inputs are still the latest versions."""
    folder = store.home / fs.settings.system / "training_sets" / view_name
    if not folder.is_dir():
        return None
    view = fs.feature_view(view_name)
    current = {"spine": store.version(view.spine_table), **{g.group: store.version(g.table) for g in view.groups}}
    for path in sorted((p for p in folder.iterdir() if p.name.endswith(MANIFEST_SUFFIX)), key=str, reverse=True):
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


def read_windows(files: list[str], windows: dict[str, tuple[dt.datetime, dt.datetime]], columns: list[str],
                 time_col: str, *, table: str, order_by: list[str]) -> dict[str, pa.Table]:
    """The training set's rows of each window (start inclusive, end exclusive), read in one pass over the
    pinned version's parquet ``files`` (only ``columns``, only the rows inside the windows), sorted by
    ``time_col`` and ``order_by`` (the spine's keys): the same rows give the same model whatever order a build
    wrote them in (XGBoost's subsampling and sketches depend on row order).

    Raises:
        FtiError: A window has no rows (named, with the table).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pds

    utc = pa.timestamp("us", tz="UTC")
    lo, hi = min(w[0] for w in windows.values()), max(w[1] for w in windows.values())
    dataset = parquet_dataset(sorted(files))
    rows = dataset.to_table(columns=list(dict.fromkeys(columns + [time_col, *order_by])),
                            filter=(pds.field(time_col) >= pa.scalar(lo, utc)) & (pds.field(time_col) < pa.scalar(hi, utc)))
    rows = rows.sort_by([(c, "ascending") for c in dict.fromkeys([time_col, *order_by])])
    tables = {}
    for name, (start, end) in windows.items():
        times = rows.column(time_col)
        tables[name] = rows.filter(pc.and_(pc.greater_equal(times, pa.scalar(start, utc)),
                                           pc.less(times, pa.scalar(end, utc)))).select(columns)
        if tables[name].num_rows == 0:
            raise FtiError(f"the {name} window {start.date()}..{end.date()} has no rows in {table}",
                           hint="land and featurize data through the end of the window first, or fix the "
                                f"training.{name} window in the config")
    return tables


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
    tables: dict[str, pa.Table]
    seconds: float

    @property
    def output(self) -> OutputEntry:
        return self.training_set.manifest.output

    def num_class(self, objective: str) -> int | None:
        """K of a multiclass objective, from the labels of every window (labels are 0..K-1); None otherwise.

        Raises:
            FtiError: A label that is not a class number.
        """
        if objective != "multiclass":
            return None
        try:
            return objectives.num_classes(*[t.column(self.label).to_numpy(zero_copy_only=False)
                                            for t in self.tables.values()])
        except ValueError as exc:
            raise FtiError(f"label {self.label} of {self.output.table}: {exc}",
                           hint="a multiclass label holds class numbers 0..K-1 (map names to numbers in the labels "
                                "transform), or set training.objective") from None


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


def _view_name(settings: Settings, view: str | None) -> str:
    """The view to train on: the argument, else ``training.feature_view``, else the config's first view."""
    return view or settings.config.training.feature_view or next(iter(settings.config.feature_views))


def prepare(store: TableStore, settings: Settings, *, run_id: str, view: str | None = None,
            exclude_features: list[str] | None = None) -> PreparedSet:
    """Build (or reuse, when its view and every pinned input are unchanged) the training set of the view, and
    read its train / validation / test windows (:func:`read_windows`)."""
    started = time.perf_counter()
    cfg = settings.config.training
    fs = FeatureStore(store, settings)
    view_name = _view_name(settings, view)
    first, last = parse_day(cfg.train.start), parse_day(cfg.test.end)
    with store.system_lock(settings.system, what=f"training set build {run_id}"):  # no deletion between read and commit
        ts = _reusable(store, fs, view_name, first, last)
        reused = ts is not None
        if ts is None:
            ts = fs.materialize(fs.get_training_set(None, view_name, start=first, end=last), run_id=run_id)
    excluded = set(exclude_features if exclude_features is not None else cfg.exclude_features)
    # in the view's order, built or reused: a manifest read back lists a group's columns in JSON key order, and
    # XGBoost's column sampling gives another model for the same columns in another order
    in_set = set(ts.feature_columns)
    declared = [c for c in fs.feature_view(view_name).feature_columns if c in in_set]
    features = [c for c in declared + [c for c in ts.feature_columns if c not in declared] if c not in excluded]
    label, time_col = ts.manifest.spine.label, ts.manifest.spine.event_time
    windows = {name: _window(settings, name) for name in ("train", "validation", "test")}
    out = ts.manifest.output
    tables = read_windows(store.file_uris(out.table, version=out.version), windows, features + [label], time_col,
                          table=f"{out.table} (version {out.version})", order_by=list(ts.manifest.spine.keys))
    prepared = PreparedSet(training_set=ts, reused=reused, view=view_name, features=features, label=label,
                           time_col=time_col, windows=windows, tables=tables, seconds=time.perf_counter() - started)
    log.info("training set %s (%s): %d rows, %d features, windows %s, in %.1f s", prepared.output.table,
             "reused" if reused else "built", prepared.output.rows, len(features),
             "/".join(str(t.num_rows) for t in tables.values()), prepared.seconds)
    return prepared


def _params(settings: Settings, num_class: int | None = None) -> dict[str, Any]:
    cfg = settings.config.training
    params = {**objectives.xgb_params(cfg.objective, num_class=num_class), "tree_method": "hist", "seed": 7,
              **cfg.params}
    if cfg.device == "cuda":
        params["device"] = "cuda"
    return params


@dataclass
class FittedModel:
    """The booster (cut at its best validation iteration), the workers that trained it and their timings."""

    booster: Any
    workers: WorkerPlan
    seconds: float
    timings: str = ""
    resumed_from: int = 0  # the checkpoint round a restarted worker group resumed from (0: none)


def fit_model(settings: Settings, prepared: PreparedSet, *, run_id: str, in_process: bool | None = None) -> FittedModel:
    """Train XGBoost on Ray Train on the prepared train / validation windows: in this process or on Ray workers
    (default: :func:`fti.training.ray_train.runs_in_process` on the set's rows). Uses the Ray of the caller
    (:func:`run` starts it early) or starts one for the call."""
    from fti.training.ray_train import fit, plan_workers

    cfg = settings.config.training
    started = time.perf_counter()
    if in_process is None:
        in_process = runs_in_process(settings, prepared.output.rows)
    with nullcontext() if in_process else ray_session(settings):
        workers = plan_workers(settings, prepared.tables["train"].num_rows, in_process=in_process)
        result = fit(prepared.tables, features=prepared.features, label=prepared.label,
                     params=_params(settings, prepared.num_class(cfg.objective)),
                     num_boost_round=cfg.num_boost_round, early_stopping_rounds=cfg.early_stopping_rounds,
                     workers=workers, use_gpu=cfg.device == "cuda", timeout_s=settings.config.ray.timeout_s,
                     run_name=run_id, checkpoint_every=cfg.checkpoint_every, max_failures=cfg.max_failures)
    return FittedModel(booster=result.booster, workers=workers, seconds=time.perf_counter() - started,
                       timings=result.timings(), resumed_from=result.resumed_from)


def evaluate(prepared: PreparedSet, booster: Any, objective: str = "binary") -> Evaluation:
    """Score the validation and test windows with the objective's metrics; a binary model's threshold is the
    validation's F1-best."""
    import xgboost

    features, label = prepared.features, prepared.label
    val = prepared.tables["validation"].to_pandas()
    test = prepared.tables["test"].to_pandas()
    p_val = booster.predict(xgboost.DMatrix(val[features], feature_names=features))
    p_test = booster.predict(xgboost.DMatrix(test[features], feature_names=features))
    threshold = quality.best_f1_threshold(val[label].to_numpy(), p_val) if objective == "binary" else 0.5
    return Evaluation(threshold=threshold,
                      validation=objectives.quality(objective, val[label].to_numpy(), p_val, threshold),
                      test=objectives.quality(objective, test[label].to_numpy(), p_test, threshold),
                      rows={name: table.num_rows for name, table in prepared.tables.items()},
                      val_frame=val, test_frame=test, p_val=p_val, p_test=p_test)


MODEL_PACKAGES = ("xgboost", "numpy", "pandas", "scipy", "scikit-learn")
RECORDED_CONFIG = "training_config.json"  # the run artifact `fti train --reproduce` retrains from


def _requirements() -> list[str]:
    """What the logged model needs to be served, pinned to this environment: the packages MLflow's inference
    finds for an XGBoost model, given instead of inferred (inference loads the model in a subprocess: 2.7-3.5 s
    of every run; MLflow adds itself)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


def register(settings: Settings, prepared: PreparedSet, fitted: FittedModel, evaluation: Evaluation, *,
             run_id: str) -> RegisteredModel:
    """Log the run (params, metrics, manifest, leakage report, plots, model) to MLflow, register the model and
    store its metadata on the version (tags, once: :class:`fti.registry.ModelMetadata`)."""
    import mlflow
    import xgboost
    from mlflow.models import infer_signature

    cfg = settings.config.training
    booster = fitted.booster
    out, features, label, manifest = prepared.output, prepared.features, prepared.label, prepared.training_set.manifest
    with using_mlflow(settings):
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
                mlflow.log_params({**{f"xgb.{k}": v for k, v in _params(settings, prepared.num_class(cfg.objective)).items()},
                                   "objective": cfg.objective, "promotion_metric": cfg.metric, "num_workers": fitted.workers.num_workers,  # 0: in-process
                                   "cpus_per_worker": fitted.workers.cpus_per_worker,
                                   "num_boost_round": cfg.num_boost_round, "best_iteration": booster.num_boosted_rounds(),
                                   "feature_view": prepared.view, "features": ",".join(features),
                                   "training_set": out.table, "training_set_sha256": out.sha256,
                                   "threshold": evaluation.threshold,
                                   **{f"window.{k}": f"{getattr(cfg, k).start}..{getattr(cfg, k).end}"
                                      for k in ("train", "validation", "test")}})
                mlflow.log_metrics({**evaluation.metrics, "train_rows": evaluation.rows["train"], "fit_seconds": fitted.seconds,
                                    "fit_resumed_from_round": fitted.resumed_from})
                mlflow.log_dict(manifest.to_json(), "training_set.json")
                # what `fti train --reproduce` retrains from: the training section (windows, params, workers) and
                # the zone its windows' days are in
                mlflow.log_dict({"training": cfg.model_dump(mode="json"), "timezone": settings.config.timezone,
                                 "features": features, "num_workers": fitted.workers.num_workers},
                                RECORDED_CONFIG)
                mlflow.log_dict(manifest.leakage_report, "leakage_report.json")
                importance = booster.get_score(importance_type="total_gain")
                for png in quality.plots(scratch / "plots", objective=cfg.objective, y_val=val[label].to_numpy(), p_val=evaluation.p_val,
                                         y_test=test[label].to_numpy(), p_test=evaluation.p_test, importance=importance,
                                         features=features):
                    mlflow.log_artifact(str(png), "plots")
                example = test[features].head(5).astype("float64")
                signature = infer_signature(example, booster.predict(xgboost.DMatrix(example, feature_names=features)))
                info = mlflow.xgboost.log_model(booster, name="model", signature=signature, input_example=example,
                                                registered_model_name=cfg.model_name, pip_requirements=_requirements())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    version = int(info.registered_model_version)
    # every table version the set read or wrote (history tables too): vacuum keeps their files
    metadata = ModelMetadata(training_set=out.table, feature_view=prepared.view, features=features,
                             threshold=evaluation.threshold, test_auc=evaluation.test.get("auc", float("nan")),
                             objective=cfg.objective, metric=cfg.metric, test_metric=evaluation.test[cfg.metric],
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
    # the training set has at most the spine table's rows (Delta log counts, no Spark job)
    fs = FeatureStore(store, settings)
    spine = fs.feature_view(_view_name(settings, view)).spine_table
    needs_ray = not runs_in_process(settings, store.row_count(spine))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fti-prepare") as pool:
        # Spark builds the training set in a worker thread while Ray starts in this one (ray.init must run in
        # the main thread); a failed build is raised here, and Ray is shut down on the way out
        building = pool.submit(prepare, store, settings, run_id=run_id, view=view, exclude_features=exclude_features)
        with ray_session(settings) if needs_ray else nullcontext():
            timings["ray_start"] = time.perf_counter() - t0
            prepared = building.result()
            timings["training_set"] = prepared.seconds
            t1 = time.perf_counter()
            fitted = fit_model(settings, prepared, run_id=run_id, in_process=not needs_ray)
            timings["fit"] = time.perf_counter() - t1
    evaluation = evaluate(prepared, fitted.booster, cfg.objective)
    t2 = time.perf_counter()
    model = register(settings, prepared, fitted, evaluation, run_id=run_id)
    with using_mlflow(settings):  # the gate loads the champion to re-score it
        decision = gate(client(settings), model.name, model.version, objective=cfg.objective, metric=cfg.metric,
                        new_value=evaluation.test[cfg.metric], test=evaluation.test_frame, label=prepared.label,
                        margin=cfg.promotion_margin)
    timings["mlflow"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return TrainReport(run_id=run_id, mlflow_run_id=model.mlflow_run_id, model_name=model.name, version=model.version,
                       alias=decision.alias, reason=decision.reason, rows=evaluation.rows, features=prepared.features,
                       metrics=evaluation.metrics, champion_metric=decision.champion_value,
                       objective=cfg.objective, metric=cfg.metric,
                       training_set=prepared.output.table, reused_training_set=prepared.reused,
                       threshold=evaluation.threshold, seconds=timings,
                       workers=f"{fitted.workers.describe()}: {fitted.timings}",
                       experiment_url=f"{settings.tracking_uri} experiment '{model.experiment}' run {model.mlflow_run_id}")


@dataclass
class Reproduction:
    """What ``fti train --reproduce`` found: the model retrained from its recorded manifest and config."""

    model: str
    training_set: str
    rows: int
    workers: str
    identical: bool  # the retrained booster's bytes equal the registered one's
    max_score_diff: float  # largest difference of their test-window predictions
    metric: str
    recorded: float
    reproduced: float
    seconds: float


def reproduce(store: TableStore, settings: Settings, ref: str) -> Reproduction:
    """Retrain a registered model version from what its MLflow run recorded (the pinned training set of its
    manifest, the training config, the features in their order, the worker count) and compare the booster with
    the registered one, byte for byte and by their test-window predictions. Registers nothing.

    Raises:
        FtiError: The version's run recorded no training config (trained by an older fti), or its training set
            table is gone (rebuild it first: ``fti training-set rebuild --model REF``).
    """
    import mlflow
    import mlflow.xgboost
    import numpy as np
    import xgboost

    from fti.config import TrainingConfig
    from fti.registry import ModelRef, manifest_of_model, resolve_version

    started = time.perf_counter()
    model_ref = ModelRef.parse(ref)
    mv = resolve_version(settings, model_ref)
    meta = ModelMetadata.of(mv)
    with using_mlflow(settings):
        try:
            recorded = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{RECORDED_CONFIG}")
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            raise FtiError(f"{model_ref.name}/{mv.version} recorded no {RECORDED_CONFIG} (trained by an older fti): "
                           "it cannot be retrained from its run", hint="retrain it with this fti first") from None
        registered = mlflow.xgboost.load_model(f"models:/{model_ref.name}/{mv.version}")
    training = TrainingConfig.model_validate(recorded["training"])
    own = dataclasses.replace(settings, config=settings.config.model_copy(
        update={"training": training, "timezone": recorded["timezone"]}))
    manifest = manifest_of_model(settings, ModelRef(model_ref.name, version=int(mv.version)))
    out = manifest.output
    if not store.exists(out.table):
        raise FtiError(f"the training set {out.table} of {model_ref.name}/{mv.version} is gone",
                       hint="rebuild it from its manifest: fti training-set rebuild --model "
                            f"{model_ref.name}/{mv.version}")
    ts = TrainingSet(df=store.read(out.table, version=out.version), manifest=manifest, path=out.table)
    features, label, time_col = list(recorded["features"]), manifest.spine.label, manifest.spine.event_time
    windows = {name: _window(own, name) for name in ("train", "validation", "test")}
    tables = read_windows(store.file_uris(out.table, version=out.version), windows, features + [label], time_col,
                          table=f"{out.table} (version {out.version})", order_by=list(manifest.spine.keys))
    prepared = PreparedSet(training_set=ts, reused=True, view=meta.feature_view, features=features, label=label,
                           time_col=time_col, windows=windows, tables=tables, seconds=time.perf_counter() - started)
    workers = int(recorded["num_workers"])
    if workers:  # the worker count is part of the model (the data's split into slices)
        own = dataclasses.replace(own, config=own.config.model_copy(
            update={"training": training.model_copy(update={"num_workers": workers})}))
    fitted = fit_model(own, prepared, run_id=f"reproduce-{model_ref.name}-{mv.version}", in_process=workers == 0)
    evaluation = evaluate(prepared, fitted.booster, training.objective)
    test = tables["test"].to_pandas()[features]
    matrix = xgboost.DMatrix(test, feature_names=features)
    diff = float(np.max(np.abs(fitted.booster.predict(matrix) - registered.predict(matrix)))) if len(test) else 0.0
    identical = bytes(_normalized(fitted.booster)) == bytes(_normalized(registered))
    return Reproduction(model=f"{model_ref.name}/{mv.version}", training_set=f"{out.table} v{out.version}",
                        rows=out.rows, workers=fitted.workers.describe(), identical=identical, max_score_diff=diff,
                        metric=meta.metric, recorded=meta.test_metric, reproduced=evaluation.test[meta.metric],
                        seconds=time.perf_counter() - started)


def _normalized(booster: Any) -> bytearray:
    """A booster's model bytes as a saved-and-loaded copy has them (MLflow's round trip through a file drops the
    attributes a fresh fit carries, such as its best iteration)."""
    import xgboost

    copy = xgboost.Booster()
    copy.load_model(booster.save_raw("json"))
    for key in list(copy.attributes()):
        copy.set_attr(**{key: None})
    return copy.save_raw("ubj")
