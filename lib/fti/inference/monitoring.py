"""``fti monitor``: each scoring run's feature and score distributions against a reference the user chooses.

The reference (``monitoring.reference``) is drawn from the model's own training set at its pinned version:
by default its last ``monitoring.reference_weeks`` weeks, only the scored day's weekday (a daily batch
compared with the same weekday mix); or the validation window; or the whole set. Per scoring run (model,
version, as_of): the PSI of every feature on up to 10 bins cut at the reference's deciles, with each bin's
counts (stored: a bin with a handful of rows is visible, and counts are smoothed by half a row, so an empty bin
cannot blow PSI up to infinity); the null rate (scoring vs reference); the share of values outside the
reference's range. Each is flagged only past the feature's normal day-to-day variation in the reference, and a
feature whose run cannot support the tests (few distinct values, few rows) is reported as not testable
(:func:`feature_drift`). Then the PSI of the scores; and, once outcomes have arrived in the labels table, the
realized quality (AUC for a binary model, RMSE/MAE for regression, accuracy/macro F1 for multiclass:
:func:`realized`). Incremental: a run already monitored against the same reference is computed again only when it
was rescored since (its predictions' ``scored_at``, recorded as the ``scored_at_us`` metric, changed) or outcomes
of its population arrived since (the labelled rows are counted from the labels table, no Spark); each run computed
is one commit to ``<system>/monitoring`` (replacing that run's earlier rows) and a PNG. The features of a run are
rebuilt in this process (the scoring's single-process join) when the population fits ``scoring.local_max_rows``,
else with Spark.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fti import objectives
from fti.errors import FtiError
from fti.location import Location, parquet_dataset
from fti.registry import ModelMetadata, ModelRef, client, manifest_of_model, using_mlflow
from fti.store import RunContext, TableStore
from fti.store.feature_store import FeatureStore, FeatureView, view_of_manifest
from fti.store.predicate import Match
from fti.timeutil import UTC, day_start, local_day, parse_day

if TYPE_CHECKING:
    import pandas as pd

    from fti.config import Settings
    from fti.store.manifest import TrainingSetManifest

log = logging.getLogger(__name__)
SCHEMA = ("model_name string NOT NULL, model_version int NOT NULL, as_of timestamp NOT NULL, "
          "reference string NOT NULL, reference_rows long NOT NULL, scored_rows long NOT NULL, metric string NOT NULL, "
          "feature string, value double, threshold double, drift boolean, bins string, computed_at timestamp NOT NULL")
SMOOTHING = 0.5  # rows added to every bin on both sides


@dataclass(frozen=True)
class Psi:
    """A PSI with its bins: ``edges`` (bin i holds values in [edges[i-1], edges[i])), the reference's and the
    scoring run's counts per bin (nulls left out)."""

    value: float
    edges: list[float]
    reference: list[int]
    scoring: list[int]
    distinct: int  # distinct values in the scoring run

    def bins(self) -> str:
        return json.dumps({"edges": self.edges, "reference": self.reference, "scoring": self.scoring,
                           "scoring_distinct": self.distinct})


def psi(reference: np.ndarray, scoring: np.ndarray, bins: int = 10) -> Psi:
    """Population stability index of ``scoring`` against ``reference`` on the reference's quantile bins, from
    counts smoothed by :data:`SMOOTHING` rows per bin (NaN when either side has no values)."""
    reference = reference[~np.isnan(reference)]
    scoring = scoring[~np.isnan(scoring)]
    if len(reference) == 0 or len(scoring) == 0:
        return Psi(float("nan"), [], [len(reference)], [len(scoring)], len(np.unique(scoring)))
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, scoring, side="right"), minlength=len(edges) + 1)
    pe = (e + SMOOTHING) / (e.sum() + SMOOTHING * len(e))
    pa_ = (a + SMOOTHING) / (a.sum() + SMOOTHING * len(a))
    return Psi(float(np.sum((pa_ - pe) * np.log(pa_ / pe))), [float(x) for x in edges], e.tolist(), a.tolist(),
               len(np.unique(scoring)))


@dataclass(frozen=True)
class Reference:
    """The rows a scoring run is compared with."""

    name: str
    description: str
    frame: pd.DataFrame
    days: np.ndarray  # each row's local day (the reference's own day-to-day variation is measured over them)


def reference_rows(store: TableStore, settings: Settings, manifest: TrainingSetManifest, features: list[str],
                   day: dt.date) -> Reference:
    """The reference rows of ``monitoring.reference`` from the model's training set (pinned version), for a
    scoring run of local day ``day``."""
    import pyarrow as pa
    import pyarrow.dataset as pds

    cfg, tz = settings.config.monitoring, settings.config.timezone
    out, time_col = manifest.output, manifest.spine.event_time
    dataset = parquet_dataset(store.file_uris(out.table, version=out.version))
    utc = pa.timestamp("us", tz="UTC")

    def days(frame: pd.DataFrame) -> np.ndarray:
        return frame[time_col].dt.tz_convert(tz).dt.date.to_numpy() if len(frame) else np.array([], dtype=object)

    if cfg.reference == "training_set":
        frame = dataset.to_table(columns=features + [time_col]).to_pandas()
        return Reference("training_set", f"the whole training set ({len(frame)} rows)", frame[features], days(frame))
    if cfg.reference == "validation":
        window = settings.config.training.validation
        lo, hi = day_start(parse_day(window.start), tz), day_start(parse_day(window.end), tz)
    else:
        hi = day_start(parse_day(manifest.spine.end), tz)
        lo = hi - dt.timedelta(weeks=cfg.reference_weeks)
    cond = (pds.field(time_col) >= pa.scalar(lo, utc)) & (pds.field(time_col) < pa.scalar(hi, utc))
    frame = dataset.to_table(columns=features + [time_col], filter=cond).to_pandas()
    span = f"{local_day(lo, tz)}..{local_day(hi, tz)}"
    if cfg.reference == "validation":
        return Reference("validation", f"the validation window {span} ({len(frame)} rows)", frame[features],
                         days(frame))
    weekdays = frame[time_col].dt.tz_convert(tz).dt.dayofweek if len(frame) else frame[time_col]
    same = frame[weekdays == day.weekday()]
    if len(same):
        return Reference("recent_weeks", f"the {day.strftime('%A')}s of the set's last {cfg.reference_weeks} weeks "
                         f"{span} ({len(same)} rows)", same[features], days(same))
    return Reference("recent_weeks", f"the set's last {cfg.reference_weeks} weeks {span}, every weekday "
                     f"(none on a {day.strftime('%A')}; {len(frame)} rows)", frame[features], days(frame))


def _compare(reference: np.ndarray, sample: np.ndarray) -> tuple[Psi, float, float]:
    """A sample against a reference: the PSI, the change of the null rate, the share of the sample's values
    outside the reference's range."""
    p = psi(reference, sample)
    nulls = abs(np.isnan(sample).mean() - np.isnan(reference).mean()) if len(reference) and len(sample) \
        else float("nan")
    known, present = reference[~np.isnan(reference)], sample[~np.isnan(sample)]
    outside = float(((present < known.min()) | (present > known.max())).mean()) \
        if len(present) and len(known) else 0.0
    return p, nulls, outside


DRIFT_METRICS = ("psi", "null_rate_delta", "out_of_range_share")


def feature_drift(reference: pd.DataFrame, days: np.ndarray, scoring: pd.DataFrame, features: list[str],
                  cfg: Any) -> list[dict[str, Any]]:
    """Each feature's drift metrics (:data:`DRIFT_METRICS`) of a scoring run against the reference, each with the
    threshold it is judged by and whether it is past it.

    A metric's threshold is the larger of its configured one (``monitoring.psi_threshold``, ``null_rate_delta``,
    ``out_of_range_share``) and ``monitoring.drift_margin`` times the ``drift_quantile`` quantile of the same metric
    over the reference's own days, each day compared with the rest (at most ``monitoring.max_reference_days`` of its
    latest days with ``min_rows`` rows): a feature is flagged only beyond its normal day-to-day variation, so a
    feature that is one value per carrier and day is not flagged every day. A feature whose run cannot support the
    tests (fewer than ``monitoring.min_distinct`` distinct values: the weather of 3 airports, the month; or fewer
    than ``monitoring.min_rows`` values) is reported as not testable: its metrics are stored with no threshold,
    never flagged, and its bins say why.
    """
    ref_days = [d for d in sorted(set(days), reverse=True) if (days == d).sum() >= cfg.min_rows]
    masks = [days == d for d in ref_days[:cfg.max_reference_days]]
    fixed = {"psi": cfg.psi_threshold, "null_rate_delta": cfg.null_rate_delta,
             "out_of_range_share": cfg.out_of_range_share}
    rows: list[dict[str, Any]] = []
    for f in features:
        tr, sc = reference[f].to_numpy("float64"), scoring[f].astype("float64").to_numpy()
        p, nulls, outside = _compare(tr, sc)
        values = int((~np.isnan(sc)).sum())
        why = (f"{p.distinct} distinct value(s) in the run (monitoring.min_distinct {cfg.min_distinct})"
               if p.distinct < cfg.min_distinct else
               f"{values} value(s) in the run (monitoring.min_rows {cfg.min_rows})" if values < cfg.min_rows else None)
        normal: dict[str, float | None] = dict.fromkeys(DRIFT_METRICS)
        if why is None and len(masks) >= 2:
            daily = [_compare(tr[~m], tr[m]) for m in masks]
            for i, metric in enumerate(DRIFT_METRICS):
                seen = [d[i].value if i == 0 else d[i] for d in daily]
                seen = [v for v in seen if not np.isnan(v)]
                normal[metric] = float(np.quantile(seen, cfg.drift_quantile)) if seen else None
        info = {"reference_days": len(masks), **({"not_testable": why} if why else {})}
        for metric, value in zip(DRIFT_METRICS, (p.value, nulls, outside)):
            threshold = None if why else max(fixed[metric], cfg.drift_margin * (normal[metric] or 0.0))
            detail = {**info, "normal": normal[metric]}
            bins = json.dumps({**json.loads(p.bins()), **detail}) if metric == "psi" else json.dumps(detail)
            rows.append({"metric": metric, "feature": f, "value": None if np.isnan(value) else float(value),
                         "threshold": threshold, "bins": bins,
                         "drift": bool(threshold is not None and not np.isnan(value) and value > threshold)})
    return rows


def _scoring_features(store: TableStore, settings: Settings, view: FeatureView, as_of: dt.datetime,
                      versions: dict[str, int]) -> pd.DataFrame:
    """The features the scoring run used: the same join, at the versions it recorded."""
    from fti.inference.pipeline import scoring_engine

    fs = FeatureStore(store, settings)
    if scoring_engine(store, settings, view, versions) == "local":
        return fs.batch_features_local(view, as_of=as_of, versions=versions).to_pandas()
    population = store.read(view.spine_table).where(
        f"{view.spine_time} = timestamp'{as_of.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}'")
    keep = list(dict.fromkeys(view.spine_keys + view.spine_features + [k for g in view.groups for k in g.keys]))
    return fs.get_batch_features(view, as_of=as_of, population_df=population.select(*keep),
                                 versions=versions).toPandas()


def _outcomes(store: TableStore, view: FeatureView, as_of: dt.datetime) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc

    moment = pa.scalar(as_of, type=pa.timestamp("us", tz="UTC"))
    key = view.spine_keys[0]
    rows = store.arrow_dataset(view.spine_table).to_table(
        columns=[key, view.label], filter=(pc.field(view.spine_time) == moment) & pc.field(view.label).is_valid())
    frame = rows.to_pandas()
    frame[key] = frame[key].astype(str)
    return frame


def _run_metrics(settings: Settings, store: TableStore, manifest: TrainingSetManifest, model: str, version: int,
                 as_of: dt.datetime, feature_versions: dict[str, int], preds: pd.DataFrame,
                 scored_at: dt.datetime) -> tuple[Reference, list[dict[str, Any]]]:
    import mlflow.xgboost
    import xgboost

    cfg = settings.config.monitoring
    view = view_of_manifest(manifest)
    with using_mlflow(settings):
        booster = mlflow.xgboost.load_model(f"models:/{model}/{version}")
        meta = ModelMetadata.of(client(settings).get_model_version(model, str(version)))
    features = booster.feature_names or view.feature_columns
    reference = reference_rows(store, settings, manifest, features, local_day(as_of, settings.config.timezone))
    ref = reference.frame.astype("float64")
    scoring = _scoring_features(store, settings, view, as_of, feature_versions)
    rows = []

    def add(metric: str, feature: str | None, value: float, threshold: float | None, bins: str | None = None) -> None:
        drift = bool(threshold is not None and not np.isnan(value) and value > threshold)
        rows.append({"metric": metric, "feature": feature, "value": None if np.isnan(value) else float(value),
                     "threshold": threshold, "drift": drift, "bins": bins})

    rows += feature_drift(ref, reference.days, scoring, features, cfg)
    ref_scores = objectives.outputs(meta.objective, booster.predict(xgboost.DMatrix(ref[features], feature_names=features)),
                                    meta.threshold)[0] if len(ref) else np.array([])
    p = psi(np.asarray(ref_scores, "float64"), preds["score"].to_numpy("float64"))
    add("score_psi", None, p.value, cfg.psi_threshold, p.bins())
    add("score_mean", None, float(preds["score"].mean()), None)
    labels = _outcomes(store, view, as_of)
    key = view.spine_keys[0]
    joined = preds.astype({key: str}).merge(labels, on=key, how="inner")
    arrived = float(len(joined) / max(1, len(preds)))
    for name, value in realized(meta.objective, joined[view.label].to_numpy("float64"), joined["score"].to_numpy("float64"),
                                joined["predicted_label"].to_numpy("float64", na_value=np.nan)).items():
        add(f"realized_{name}", None, value, None)
    add("outcomes_arrived", None, arrived, None)
    # what decides whether the run is monitored again: the outcomes known, and which scoring commit it described
    add("labelled_rows", None, float(len(labels)), None)
    add("scored_at_us", None, float(_micros(scored_at)), None)  # exact: epoch microseconds fit a double's 53 bits
    return reference, rows


def realized(objective: str, y: np.ndarray, score: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """The quality a scoring run turned out to have once its outcomes arrived, from what it stored: AUC (binary,
    both classes seen), RMSE and MAE (regression), accuracy and macro F1 of the predicted class (multiclass)."""
    if not len(y):
        return {}
    if objective == "regression":
        q = objectives.quality("regression", y, score, 0.5)
        return {"rmse": q["rmse"], "mae": q["mae"]}
    if objective == "multiclass":
        from sklearn.metrics import f1_score

        return {"accuracy": float(np.mean(label == y)),
                "macro_f1": float(f1_score(y.astype(int), label.astype(int), average="macro", zero_division=0))}
    if len(np.unique(y)) < 2:
        return {}
    from sklearn.metrics import roc_auc_score

    return {"auc": float(roc_auc_score(y, score))}


def realized_text(report: dict[str, Any]) -> str:
    """``auc 0.6512`` / ``rmse 3.1000, mae 2.2000`` of a monitored run, ``n/a`` before its outcomes arrived."""
    shown = [f"{k.removeprefix('realized_')} {v:.4f}" for k, v in report.items()
             if k.startswith("realized_") and v is not None]
    return ", ".join(shown) or "n/a"


def _micros(moment: dt.datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def _plot(path: Location, title: str, rows: list[dict[str, Any]], threshold: float) -> None:
    """Each feature's PSI: red when flagged, grey when not testable; the tick is the feature's own threshold (its
    reference's normal day-to-day PSI, at least the dashed ``psi_threshold``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import textwrap

    psis = [r for r in rows if r["metric"] == "psi"]
    fig, ax = plt.subplots(figsize=(8, max(3.5, 0.3 * len(psis) + 1.2)))
    names = [r["feature"] for r in psis]
    colors = ["tab:red" if r["drift"] else "tab:gray" if r["threshold"] is None else "tab:blue" for r in psis]
    ax.barh(names, [r["value"] or 0.0 for r in psis], color=colors)
    own = [(n, r["threshold"]) for n, r in zip(names, psis) if r["threshold"] is not None]
    if own:
        ax.scatter([t for _, t in own], [n for n, _ in own], marker="|", s=120, color="k", zorder=3)
    ax.axvline(threshold, color="k", ls="--", lw=0.8)
    ax.set_xlabel("PSI vs reference (red: drift; grey: not testable; |: the feature's own threshold)", fontsize=9)
    ax.set_title("\n".join(textwrap.fill(line, 70) for line in title.splitlines()), fontsize=10)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=90)
    plt.close(fig)
    path.write_bytes(image.getvalue())


def _scoring_runs(store: TableStore, table: str) -> list[dict[str, Any]]:
    """(model, version, as_of, scored_at, feature versions) of every scoring run in the predictions table, oldest
    first (``scored_at``: when the rows now in the table were scored; a rescore changes it)."""
    runs: dict[tuple[str, int, dt.datetime], dict[str, Any]] = {}
    frame = store.arrow_dataset(table).to_table(
        columns=["model_name", "model_version", "as_of", "scored_at", "feature_versions"]).to_pylist()
    for r in frame:
        as_of = r["as_of"] if r["as_of"].tzinfo else r["as_of"].replace(tzinfo=UTC)
        scored_at = r["scored_at"] if r["scored_at"].tzinfo else r["scored_at"].replace(tzinfo=UTC)
        entry = runs.setdefault((r["model_name"], int(r["model_version"]), as_of),
                                {"model_name": r["model_name"], "model_version": int(r["model_version"]),
                                 "as_of": as_of, "scored_at": scored_at,
                                 "feature_versions": dict(r["feature_versions"] or {})})
        entry["scored_at"] = max(entry["scored_at"], scored_at)
    return [runs[k] for k in sorted(runs, key=lambda k: (k[2], k[0], k[1]))]


def _monitored(store: TableStore, table: str, reference: str) -> dict[tuple[str, int, dt.datetime], tuple[int, int]]:
    """Runs monitored against ``reference`` -> (how many of their population's outcomes had arrived then, the
    ``scored_at`` in epoch microseconds of the predictions monitored; -1 when an older fti did not record it)."""
    import pyarrow.compute as pc

    if not store.exists(table):
        return {}
    dataset = store.arrow_dataset(table)
    if "reference" not in dataset.schema.names:
        raise FtiError(f"{table} was written by an older fti (no reference column)",
                       hint=f"remove the folder {store.home / table}: it holds derived rows, and fti monitor "
                            "rebuilds it from the predictions")
    done = dataset.to_table(columns=["model_name", "model_version", "as_of", "metric", "value"],
                            filter=(pc.field("reference") == reference)
                            & pc.field("metric").isin(["labelled_rows", "scored_at_us"])).to_pylist()
    found: dict[tuple[str, int, dt.datetime], dict[str, int]] = {}
    for r in done:
        key = (r["model_name"], int(r["model_version"]), r["as_of"] if r["as_of"].tzinfo else r["as_of"].replace(tzinfo=UTC))
        found.setdefault(key, {})[r["metric"]] = int(r["value"])
    return {k: (v.get("labelled_rows", -1), v.get("scored_at_us", -1)) for k, v in found.items()}


def _up_to_date(store: TableStore, manifest: TrainingSetManifest, run: dict[str, Any],
                monitored: dict[tuple[str, int, dt.datetime], tuple[int, int]]) -> bool:
    """Monitored against the same reference, of the predictions now in the table (not rescored since), and no
    outcome of its population has arrived since."""
    key = (run["model_name"], run["model_version"], run["as_of"])
    if key not in monitored:
        return False
    labelled, scored_at = monitored[key]
    if scored_at != _micros(run["scored_at"]):
        return False
    return len(_outcomes(store, view_of_manifest(manifest), run["as_of"])) == labelled


def run(store: TableStore, settings: Settings) -> dict[str, Any]:
    """Monitor the scoring runs of the predictions table not yet monitored against ``monitoring.reference``, or
    whose population has gained outcomes (labels) since: one commit and one PNG report per run.

    Returns:
        ``{"table", "version", "runs": [one report per run computed], "up_to_date": runs left as they were}``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql.types import _parse_datatype_string

    preds_table = f"{settings.system}/predictions"
    if not store.exists(preds_table):
        raise FtiError(f"no predictions table {preds_table}", hint="score first: fti score --as-of T")
    cfg = settings.config.monitoring
    name = f"{settings.system}/monitoring"
    monitored = _monitored(store, name, cfg.reference)
    runs = _scoring_runs(store, preds_table)
    manifests: dict[tuple[str, int], TrainingSetManifest] = {}  # one registry lookup per model version

    def manifest(r: dict[str, Any]) -> TrainingSetManifest:
        key = (r["model_name"], r["model_version"])
        if key not in manifests:
            manifests[key] = manifest_of_model(settings, ModelRef(key[0], version=key[1]))
        return manifests[key]

    todo = [r for r in runs if not _up_to_date(store, manifest(r), r, monitored)]
    schema = _parse_datatype_string(SCHEMA)
    store.create_table(name, schema, kind="monitoring", description="Drift and realized quality per scoring run")
    reports, version = [], store.version(name)
    for r in todo:
        model, mv, as_of = r["model_name"], r["model_version"], r["as_of"]
        moment = pa.scalar(as_of, type=pa.timestamp("us", tz="UTC"))
        preds = store.arrow_dataset(preds_table).to_table(
            filter=(pc.field("model_name") == model) & (pc.field("model_version") == mv) & (pc.field("as_of") == moment)
        ).to_pandas()
        reference, metrics = _run_metrics(settings, store, manifest(r), model, mv, as_of, r["feature_versions"], preds,
                                          r["scored_at"])
        png = store.home / settings.system / "monitoring_reports" / f"{model}_v{mv}_{as_of.strftime('%Y%m%dT%H%MZ')}.png"
        _plot(png, f"{model} v{mv} at {as_of.isoformat()}\nvs {reference.description}", metrics, cfg.psi_threshold)
        # aware datetimes: createDataFrame reads a naive one as the PROCESS's local time (a shifted as_of on a
        # host not set to UTC, which the replace predicate below then refuses)
        now = dt.datetime.now(UTC)
        rows = [{"model_name": model, "model_version": mv, "as_of": as_of,
                 "reference": reference.name, "reference_rows": len(reference.frame), "scored_rows": len(preds),
                 "computed_at": now, **m} for m in metrics]
        frame = store.spark.createDataFrame([tuple(row[f.name] for f in schema.fields) for row in rows], schema)
        result = store.replace_where(name, frame.coalesce(1), Match.of(model_name=[model], model_version=[mv],
                                                                       as_of=[as_of]),
                                     run=RunContext(pipeline="monitoring"),
                                     metadata={"fti.runs": json.dumps([f"{model}/{mv}@{as_of.isoformat()}"])})
        version = result.version
        reports.append({"model": f"{model}/{mv}", "as_of": as_of.isoformat(), "png": str(png),
                        "reference": reference.description, "version": version,
                        "drifted": sorted({m["feature"] or m["metric"] for m in metrics if m["drift"]}),
                        "not_testable": sorted({m["feature"] for m in metrics
                                                if m["metric"] == "psi" and m["threshold"] is None}),
                        **{m["metric"]: m["value"] for m in metrics if m["feature"] is None}})
        log.info("monitored %s/%s at %s against %s: %d drift flags (%s v%d)", model, mv, as_of.isoformat(),
                 reference.description, len(reports[-1]["drifted"]), name, version)
    return {"table": name, "version": version, "runs": reports, "up_to_date": len(runs) - len(todo)}
