"""``fti score --as-of T``: score the whole population whose prediction time is T into ``<system>/predictions``.

The model (``NAME@champion`` by default) names its training set's manifest; the manifest names the
feature view. The population's features come from the same point-in-time join as training, with the
prediction time T, so there is no training/serving skew. Each prediction row carries the keys, score,
predicted label at the model's stored threshold, ``as_of``, ``scored_at``, the model name and version,
and the Delta version of every feature group used. A rerun for the same model name and ``as_of``
replaces exactly those rows (one commit; other models and times untouched).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fti.errors import FtiError
from fti.inference.scoring import reason_fields, reason_schema
from fti.registry import ModelMetadata, ModelRef, manifest_of_model, resolve_version, using_mlflow
from fti.store import Match, RunContext, TableStore, new_run_id
from fti.store.feature_store import FeatureStore, view_of_manifest
from fti.timeutil import UTC, local_day

if TYPE_CHECKING:
    from fti.store.feature_store import FeatureView
    from fti.store.manifest import TrainingSetManifest
    from pyspark.sql import DataFrame

    from fti.config import Settings

log = logging.getLogger(__name__)


@dataclass
class ScoreReport:
    table: str
    version: int
    model: str
    model_version: int
    as_of: dt.datetime
    population: int
    scored: int
    without_features: int
    positives: int
    feature_versions: dict[str, int]
    seconds: float = 0.0
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    objective: str = "binary"


def predictions_table(system: str) -> str:
    return f"{system}/predictions"


def load_model(settings: Settings, ref: ModelRef) -> tuple[Any, Any, TrainingSetManifest]:
    """(model version, booster, manifest) of a registered model reference."""
    import mlflow
    import mlflow.xgboost

    mv = resolve_version(settings, ref)
    with using_mlflow(settings):
        booster = mlflow.xgboost.load_model(f"models:/{ref.name}/{mv.version}")
    return mv, booster, manifest_of_model(settings, ModelRef(ref.name, version=int(mv.version)))


def model_ref(settings: Settings, model: str | None = None) -> ModelRef:
    """The model to score with: ``model`` (``NAME@alias`` or ``NAME/VERSION``), else ``<model_name>@champion``."""
    cfg = settings.config.training
    return ModelRef.parse(model or f"{cfg.model_name if cfg else settings.system}@champion")


def run(store: TableStore, settings: Settings, *, as_of: dt.datetime, model: str | None = None,
        run_id: str | None = None) -> ScoreReport:
    """Score the population of prediction time ``as_of`` with a registered model.

    Raises:
        FtiError: Unknown model or alias, a feature group that is missing or changed incompatibly (named
            with the column), an empty population, or a population/prediction count mismatch.
    """
    t0 = time.perf_counter()
    as_of = as_of.astimezone(UTC)
    ref = model_ref(settings, model)
    mv, booster, manifest = load_model(settings, ref)
    view = view_of_manifest(manifest)
    # from the feature versions read to the predictions' commit: no deletion between them
    with store.system_lock(settings.system, what=f"scoring {ref.name} at {as_of.isoformat()}"):
        return _run(store, settings, as_of=as_of, ref=ref, mv=mv, booster=booster, manifest=manifest, view=view,
                    run_id=run_id, t0=t0)


def _run(store: TableStore, settings: Settings, *, as_of: dt.datetime, ref: ModelRef, mv: Any, booster: Any,
         manifest: TrainingSetManifest, view: FeatureView, run_id: str | None, t0: float) -> ScoreReport:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, IntegerType, LongType, MapType, StringType, StructField, StructType

    meta = ModelMetadata.of(mv)
    features, threshold, objective = meta.features, meta.threshold, meta.objective
    versions = {g.group: store.version(g.table) for g in view.groups if store.exists(g.table)}
    engine = scoring_engine(store, settings, view, versions)
    key = f"{ref.name}/{mv.version}"
    # a bi-temporal model is scored as it was trained: only feature rows stored by the prediction time
    if engine == "local":
        scored, pop_rows, counts = _score_local(store, settings, view, versions, as_of=as_of, booster=booster,
                                                features=features, threshold=threshold, objective=objective,
                                                bitemporal=manifest.bitemporal)
    else:
        scored, pop_rows = _score_spark(store, settings, view, versions, as_of=as_of, booster=booster, key=key,
                                        features=features, threshold=threshold, objective=objective, bitemporal=manifest.bitemporal)
    explained = reason_fields(settings.config.scoring.explain)
    now = dt.datetime.now(UTC)
    as_of_date = local_day(as_of, settings.config.timezone)
    version_map = F.create_map(*[x for g, v in sorted(versions.items()) for x in (F.lit(g), F.lit(v).cast("long"))])
    out = scored.select(
        *[F.col(k).cast("string").alias(k) for k in view.spine_keys],
        F.col("score").cast("double").alias("score"), F.col("predicted_label").cast("int").alias("predicted_label"),
        *[F.col(col).cast(kind).alias(col) for col, kind in explained],
        F.lit(as_of).cast("timestamp").alias("as_of"), F.lit(now).cast("timestamp").alias("scored_at"),
        F.lit(ref.name).alias("model_name"), F.lit(int(mv.version)).alias("model_version"),
        version_map.alias("feature_versions"), "_no_features", F.lit(as_of_date).alias("as_of_date"),
    )
    if engine != "local":
        out = out.cache()
        row = out.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("_no_features").cast("long")).alias("nf"),
                      F.sum("predicted_label").alias("pos")).collect()[0]
        counts = {"n": row["n"], "nf": row["nf"] or 0, "pos": row["pos"] or 0}
    if counts["n"] != pop_rows:
        raise FtiError(f"scored {counts['n']} rows but the population has {pop_rows}: nothing written")
    name = predictions_table(settings.system)
    schema = StructType([StructField(k, StringType(), False) for k in view.spine_keys] + [
        StructField("score", DoubleType(), True),
        StructField("predicted_label", IntegerType(), True),
        *reason_schema(settings.config.scoring.explain),
        StructField("as_of", out.schema["as_of"].dataType, False),
        StructField("scored_at", out.schema["scored_at"].dataType, False), StructField("model_name", StringType(), False),
        StructField("model_version", IntegerType(), False),
        StructField("feature_versions", MapType(StringType(), LongType()), True),
        StructField("as_of_date", out.schema["as_of_date"].dataType, False)])
    if not store.exists(name):  # an existing table gains the reason-code columns by the write's schema evolution
        store.create_table(name, schema, kind="predictions", partition_by=["model_name", "as_of_date"],
                           description="Batch predictions with model and feature lineage")
    run_ctx = RunContext(run_id=run_id or new_run_id("score"), pipeline="inference")
    # A rerun replaces exactly this model's rows for this prediction time; other times of the same day stay.
    # Two runs for the same model and day serialize (they would rewrite the same files).
    with store.run_lock(f"{name}@{ref.name}@{as_of_date}", what=f"scoring {ref.name} on {as_of_date}"):
        # reason codes an earlier run with more scoring.explain added: null in rows scored without them
        fewer = {f.name: F.lit(None).cast(f.dataType) for f in store.schema(name).fields
                 if f.name.startswith("reason_") and f.name not in out.columns}
        result = store.replace_where(name, out.drop("_no_features").withColumns(fewer).coalesce(1),
                                     Match.of(model_name=[ref.name], as_of_date=[as_of_date], as_of=[as_of]),
                                     run=run_ctx, allow_new_columns=bool(explained),
                                     metadata={"fti.as_of": as_of.isoformat(), "fti.model": f"{ref.name}/{mv.version}"})
    out.unpersist()
    report = ScoreReport(table=name, version=result.version, model=ref.name, model_version=int(mv.version),
                         as_of=as_of, population=pop_rows, scored=counts["n"], without_features=counts["nf"],
                         positives=counts["pos"], feature_versions=versions,
                         seconds=time.perf_counter() - t0, run_id=run_ctx.run_id,
                         extra={"training_set": meta.training_set, "engine": engine}, objective=objective)
    log.info("scored %d rows at %s with %s/%s into %s v%d (%s)", counts["n"], as_of, ref.name, mv.version, name,
             result.version, engine)
    return report


def scoring_engine(store: TableStore, settings: Settings, view: FeatureView, versions: dict[str, int]) -> str:
    """``local`` (this process, no Spark job) or ``spark``: the config's ``scoring.engine``; ``auto`` picks
    local when the spine table and the pinned feature groups hold at most ``scoring.local_max_rows`` rows in
    all (Delta log counts: no job; the population and the rows read are fewer)."""
    cfg = settings.config.scoring
    if cfg.engine != "auto":
        return cfg.engine
    rows = store.row_count(view.spine_table) if store.exists(view.spine_table) else 0
    rows += sum(store.row_count(g.table, version=versions[g.group]) for g in view.groups if g.group in versions)
    return "local" if rows <= cfg.local_max_rows else "spark"


def _no_population(view: FeatureView, settings: Settings, as_of: dt.datetime) -> FtiError:
    return FtiError(f"no population at prediction time {as_of.isoformat()} in {view.spine_table}",
                    hint=f"prediction times are the starts of the daily batches in {settings.config.timezone}; "
                         "land and featurize the data of that day first")


def _score_spark(store: TableStore, settings: Settings, view: FeatureView, versions: dict[str, int], *,
                 as_of: dt.datetime, booster: Any, key: str, features: list[str], threshold: float, objective: str,
                 bitemporal: bool) -> tuple[DataFrame, int]:
    """The distributed path: the population and the point-in-time join in Spark, the Arrow scoring UDF."""
    from pyspark.sql import functions as F

    fs = FeatureStore(store, settings)
    population = store.read(view.spine_table).where(F.col(view.spine_time) == F.lit(as_of).cast("timestamp"))
    keep = list(dict.fromkeys(view.spine_keys + [view.spine_time] + view.spine_features +
                              [k for g in view.groups for k in g.keys]))
    population = population.select(*keep).cache()
    pop_rows = population.count()
    if pop_rows == 0:
        population.unpersist()
        raise _no_population(view, settings, as_of)
    joined = fs.get_batch_features(view, as_of=as_of, population_df=population.drop(view.spine_time),
                                   versions=versions, bitemporal=bitemporal)
    no_features = F.lit(True)
    for c in [c for g in view.groups for c in g.columns]:
        no_features = no_features & F.col(f"`{c}`").isNull()
    joined = joined.withColumn("_no_features", no_features)
    return _score(joined, booster=booster, key=key, features=features, threshold=threshold, objective=objective,
                  explain=settings.config.scoring.explain), pop_rows


def _score_local(store: TableStore, settings: Settings, view: FeatureView, versions: dict[str, int], *,
                 as_of: dt.datetime, booster: Any, features: list[str], threshold: float, objective: str,
                 bitemporal: bool) -> tuple[DataFrame, int, dict[str, int]]:
    """The single-process path: pyarrow over the pinned Delta files, the same as-of merge, ``inplace_predict``;
    only the keys and scores go to Spark, for the one Delta commit."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from fti.inference.scoring import score_arrow

    joined = FeatureStore(store, settings).batch_features_local(view, as_of=as_of, versions=versions,
                                                                bitemporal=bitemporal)
    if joined.num_rows == 0:
        raise _no_population(view, settings, as_of)
    missing = [f for f in features if f not in joined.column_names]
    if missing:
        raise FtiError(f"the model needs feature(s) {', '.join(missing)} that the feature view no longer gives",
                       hint="retrain on the current feature groups, or pin the old group version")
    explain = settings.config.scoring.explain
    scores, labels, *reasons = score_arrow(joined, booster=booster, features=features, threshold=threshold,
                                          objective=objective, explain=explain)
    no_features = np.ones(joined.num_rows, dtype=bool)
    for c in [c for g in view.groups for c in g.columns]:
        no_features &= joined.column(c).is_null().to_numpy(zero_copy_only=False)
    result = pa.table({**{k: pc.cast(joined.column(k), pa.string()) for k in view.spine_keys},
                       "score": scores, "predicted_label": labels,
                       **{name: array for (name, _), array in zip(reason_fields(explain), reasons)},
                       "_no_features": no_features})
    counts = {"n": result.num_rows, "nf": int(no_features.sum()), "pos": int(pc.sum(labels).as_py() or 0)}
    return store.spark.createDataFrame(result), joined.num_rows, counts


def _score(df: DataFrame, *, booster: Any, key: str, features: list[str], threshold: float,
           objective: str, explain: int) -> DataFrame:
    from fti.inference.scoring import score

    missing = [f for f in features if f not in df.columns]
    if missing:
        raise FtiError(f"the model needs feature(s) {', '.join(missing)} that the feature view no longer gives",
                       hint="retrain on the current feature groups, or pin the old group version")
    return score(df, booster_raw=bytes(booster.save_raw("ubj")), key=key, features=features, threshold=threshold,
                 objective=objective, explain=explain)
