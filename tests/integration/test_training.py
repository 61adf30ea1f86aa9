"""Training on a small window of the real flights data (in this process and on a Ray worker), MLflow registry,
promotion gate, scoring on both paths, monitoring."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from fti.features import pipeline
from fti.ingest import load_through

UTC = dt.timezone.utc
WINDOWS = {"FTI__TRAINING__TRAIN__START": "2013-01-08", "FTI__TRAINING__TRAIN__END": "2013-02-08",
           "FTI__TRAINING__VALIDATION__START": "2013-02-08", "FTI__TRAINING__VALIDATION__END": "2013-02-18",
           "FTI__TRAINING__TEST__START": "2013-02-18", "FTI__TRAINING__TEST__END": "2013-03-01",
           "FTI__TRAINING__NUM_BOOST_ROUND": "60", "FTI__TRAINING__EARLY_STOPPING_ROUNDS": "10",
           "FTI__RAY__TIMEOUT_S": "600"}


@pytest.fixture(scope="module")
def settings(home):
    from fti.config import load_config

    return load_config("flights", home=home, env=WINDOWS)


@pytest.fixture(scope="module")
def trained(spark, settings):
    from fti.store import open_store
    from fti.training.pipeline import run as train

    store = open_store(spark, settings, backend="native")
    load_through(store, settings, through=dt.date(2013, 2, 28), batch="month")
    pipeline.run(store, settings, now=dt.datetime(2013, 3, 1, 5, tzinfo=UTC))
    first = train(store, settings)
    return store, first


def test_first_model_is_champion_with_lineage_tags(trained, settings):
    from fti.registry import client

    store, report = trained
    assert report.alias == "champion" and report.version == 1
    assert 0.55 < report.metrics["test_auc"] < 0.8, report.metrics  # above ~0.8 would mean leakage
    assert report.rows["validation"] > 1000 and report.rows["test"] > 1000
    mv = client(settings).get_model_version("flights_delay", "1")
    manifest = json.loads((store.home / f"{report.training_set}.training_set.json").read_text())
    for entry in manifest["features"]:
        assert mv.tags[f"fti.pin.{entry['table']}"] == str(entry["version"])
    assert mv.tags["fti.pin.flights/labels"] == str(manifest["spine"]["version"])
    assert mv.tags["fti.training_set"] == report.training_set
    assert 0 < float(mv.tags["fti.threshold"]) < 1


def test_a_registered_model_is_retrained_to_the_same_bytes_from_its_run(trained, settings):
    """``fti train --reproduce``: the version's run recorded its training config, features and worker count; the
    model retrained from them and its pinned training set has the registered booster's bytes, and the comparison
    tells another booster apart (the same model cut at fewer rounds)."""
    import mlflow.xgboost

    from fti.registry import using_mlflow
    from fti.training.pipeline import _normalized, reproduce

    store, report = trained
    r = reproduce(store, settings, "flights_delay/1")
    assert r.identical and r.max_score_diff == 0.0, r
    assert (r.metric, r.reproduced, r.training_set) == ("auc", r.recorded, f"{report.training_set} v1")
    assert "in this process" in r.workers
    with using_mlflow(settings):
        booster = mlflow.xgboost.load_model("models:/flights_delay/1")
    assert bytes(_normalized(booster[: booster.num_boosted_rounds() - 1])) != bytes(_normalized(booster))


def test_run_logged_metrics_plots_and_manifest(trained, settings, tmp_path):
    from fti.registry import client

    _, report = trained
    c = client(settings)
    run = c.get_run(report.mlflow_run_id)
    for key in ("val_auc", "test_auc", "test_log_loss", "test_precision", "test_recall", "test_calibration_error"):
        assert key in run.data.metrics
    assert run.data.params["feature_view"] == "flights_delay_v1"
    names = {a.path for a in c.list_artifacts(report.mlflow_run_id, "plots")}
    assert names == {"plots/roc.png", "plots/feature_importance.png", "plots/calibration.png",
                     "plots/score_histogram.png"}
    top = {a.path for a in c.list_artifacts(report.mlflow_run_id)}
    assert {"training_set.json", "leakage_report.json"} <= top  # MLflow 3 keeps the model as a logged model
    # the serving requirements are given, pinned to this environment (not inferred in a subprocess)
    from importlib.metadata import version

    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    requirements = Path(mlflow.artifacts.download_artifacts(f"models:/flights_delay/{report.version}/requirements.txt",
                                                            dst_path=str(tmp_path))).read_text().split()
    assert f"xgboost=={version('xgboost')}" in requirements and f"numpy=={version('numpy')}" in requirements


def test_pyfunc_champion_predictions_equal_booster(trained, settings):
    import mlflow
    import mlflow.xgboost
    import xgboost

    store, report = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    rows = store.read(report.training_set).limit(200).toPandas()[report.features].astype("float64")
    pyfunc = mlflow.pyfunc.load_model("models:/flights_delay@champion")
    booster = mlflow.xgboost.load_model("models:/flights_delay/1")
    expected = booster.predict(xgboost.DMatrix(rows, feature_names=report.features))
    np.testing.assert_allclose(np.asarray(pyfunc.predict(rows)), expected, rtol=1e-6)


def test_worse_model_stays_challenger_then_promote_and_rollback(trained, settings):
    from fti.registry import client
    from fti.training.pipeline import run as train
    from fti.training.promotion import promote, rollback

    store, first = trained
    worse = train(store, settings, exclude_features=[f for f in first.features if f not in ("distance", "month")])
    assert worse.version == 2 and worse.alias == "challenger", worse.reason
    assert worse.reused_training_set  # nothing changed upstream: same pinned versions, same training set
    assert "does not beat champion v1" in worse.reason
    c = client(settings)
    assert str(c.get_model_version_by_alias("flights_delay", "champion").version) == "1"
    promote(settings, "flights_delay", 2, reason="test promotion")
    assert str(c.get_model_version_by_alias("flights_delay", "champion").version) == "2"
    message = rollback(settings, "flights_delay", reason="worse in production")
    assert "version 1" in message
    assert str(c.get_model_version_by_alias("flights_delay", "champion").version) == "1"
    assert c.get_model_version("flights_delay", "2").tags["fti.rolled_back"] == "worse in production"


AS_OF = dt.datetime(2013, 2, 20, 5, 0, tzinfo=UTC)  # 2013-02-20T00:00 New York, inside the test window


@pytest.fixture(scope="module")
def scored(trained, settings):
    from fti.inference.pipeline import run as score

    store, _ = trained
    return score(store, settings, as_of=AS_OF)


def test_population_equals_predictions_and_rerun_is_idempotent(trained, scored, settings):
    from pyspark.sql import functions as F

    from fti.inference.pipeline import run as score

    store, _ = trained
    population = store.read("flights/labels").where(F.col("prediction_time") == F.lit(AS_OF).cast("timestamp"))
    n = population.count()
    cancelled = population.where("cancelled").count()
    assert scored.population == scored.scored == n > 500 and cancelled > 0  # cancelled flights are scored too
    preds = store.read("flights/predictions")
    assert preds.count() == n
    v = store.version("flights/predictions")
    again = score(store, settings, as_of=AS_OF)
    assert again.version == v + 1
    assert store.read("flights/predictions").count() == n
    assert store.read("flights/predictions").select("flight_id").distinct().count() == n


def test_local_and_spark_scoring_write_identical_rows(trained, scored, home):
    """The single-process path (pyarrow over the pinned files, the same as-of merge, inplace_predict) and the
    Spark path (the co-grouped join, the Arrow UDF) write the same prediction rows, all columns but scored_at,
    reason codes (``scoring.explain: 3``) included; a run without them leaves them null."""
    from chispa import assert_df_equality
    from pyspark.sql import functions as F

    from fti.config import load_config
    from fti.inference.pipeline import run as score
    from fti.inference.pipeline import scoring_engine
    from fti.registry import ModelRef, manifest_of_model
    from fti.store.feature_store import view_of_manifest

    store, _ = trained
    rows = {}
    for engine in ("spark", "local"):
        forced = load_config("flights", home=home, env={**WINDOWS, "FTI__SCORING__ENGINE": engine,
                                                        "FTI__SCORING__EXPLAIN": "3"})
        report = score(store, forced, as_of=AS_OF)
        assert report.extra["engine"] == engine
        preds = store.read("flights/predictions", version=report.version).drop("scored_at")
        rows[engine] = preds.withColumn("feature_versions", F.to_json("feature_versions"))  # maps do not sort
    assert rows["local"].count() == scored.population
    assert_df_equality(rows["local"], rows["spark"], ignore_row_order=True, ignore_nullable=True)
    _assert_reason_codes(rows["local"].toPandas(), trained[1].features, k=3)
    plain = score(store, load_config("flights", home=home, env=WINDOWS), as_of=AS_OF)  # explain 0: no codes
    again = store.read("flights/predictions", version=plain.version).where(F.col("as_of") == F.lit(AS_OF))
    assert again.count() == scored.population and again.where("reason_1 IS NOT NULL").count() == 0
    assert scored.extra["engine"] == "local"  # auto: this small system fits one process
    tiny = load_config("flights", home=home, env={**WINDOWS, "FTI__SCORING__LOCAL_MAX_ROWS": "10"})
    view = view_of_manifest(manifest_of_model(tiny, ModelRef("flights_delay", version=1)))
    versions = {g.group: store.version(g.table) for g in view.groups}
    assert scoring_engine(store, tiny, view, versions) == "spark"  # above the threshold: Spark


def _assert_reason_codes(preds, features, *, k):
    """Each row's reasons are K distinct features of the model, by falling absolute contribution."""
    assert preds[[f"reason_{i}" for i in range(1, k + 1)]].notna().all().all()
    names = preds[[f"reason_{i}" for i in range(1, k + 1)]].to_numpy()
    assert set(names.ravel()) <= set(features) and all(len(set(r)) == k for r in names)
    values = preds[[f"reason_{i}_contribution" for i in range(1, k + 1)]].abs().to_numpy()
    assert (values[:, :-1] >= values[:, 1:]).all()
    assert (values[:, 0] > 0).mean() > 0.9  # a model that learned: most rows have a feature that moves them


def test_model_metadata_is_stored_once_and_an_empty_test_window_is_named(trained, settings):
    """The version's metadata reads back through one helper; an empty test window is an error naming the table."""
    from fti.errors import FtiError
    from fti.registry import ModelMetadata, client
    from fti.training.pipeline import prepare, read_windows

    store, first = trained
    meta = ModelMetadata.of(client(settings).get_model_version("flights_delay", "1"))
    assert meta.features == first.features and meta.threshold == first.threshold
    assert meta.training_set == first.training_set and meta.pins[first.training_set] >= 1
    prepared = prepare(store, settings, run_id="unused")
    assert prepared.reused and prepared.output.table == first.training_set
    assert prepared.features == first.features  # the same order as the build's: the same model
    later = (dt.datetime(2014, 1, 1, tzinfo=UTC), dt.datetime(2014, 2, 1, tzinfo=UTC))
    assert {n: t.num_rows for n, t in prepared.tables.items()} == first.rows  # the windows trained and evaluated
    out = prepared.output
    with pytest.raises(FtiError, match=f"the test window 2014-01-01..2014-02-01 has no rows in {first.training_set}"):
        read_windows(store.file_uris(out.table, version=out.version), {**prepared.windows, "test": later},
                     prepared.features + [prepared.label], prepared.time_col, table=out.table,
                     order_by=list(prepared.training_set.manifest.spine.keys))


def test_lineage_columns_match_registry_and_delta(trained, scored):
    store, report = trained
    row = store.read("flights/predictions").first()
    assert row.model_name == "flights_delay" and row.model_version == 1
    expected = {g: store.version(f"flights/{g}") for g in
                ("carrier_delay", "origin_delay", "route_delay", "origin_weather", "aircraft_legs")}
    assert dict(row.feature_versions) == expected
    assert row.as_of.astimezone(UTC) == AS_OF


def test_predictions_equal_pyfunc_and_no_training_serving_skew(trained, scored, settings):
    import mlflow

    from fti.store.feature_store import view_of_manifest
    from fti.registry import ModelRef, manifest_of_model
    from fti.store.feature_store import FeatureStore

    store, report = trained
    manifest = manifest_of_model(settings, ModelRef("flights_delay", version=1))
    view = view_of_manifest(manifest)
    fs = FeatureStore(store, settings)
    serving = fs.get_batch_features(view, as_of=AS_OF).toPandas().set_index("flight_id").sort_index()
    training = store.read(report.training_set).where(
        f"prediction_time = timestamp'{AS_OF.strftime('%Y-%m-%d %H:%M:%S')}'").toPandas().set_index("flight_id").sort_index()
    common = training.index.intersection(serving.index)
    assert len(common) == len(training) > 500  # every labelled flight of that batch is in the scored population
    cols = view.feature_columns
    np.testing.assert_array_equal(serving.loc[common, cols].astype("float64").to_numpy(),
                                  training.loc[common, cols].astype("float64").to_numpy())
    mlflow.set_tracking_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/flights_delay/1")
    preds = store.read("flights/predictions").toPandas().set_index("flight_id").sort_index()
    expected = np.asarray(pyfunc.predict(serving[report.features].astype("float64")))
    np.testing.assert_allclose(preds.loc[serving.index, "score"].to_numpy(), expected, rtol=1e-5)


def test_incompatible_feature_group_is_refused(trained, settings):
    import dataclasses

    from fti.errors import FtiError
    from fti.store.feature_store import view_of_manifest
    from fti.registry import ModelRef, manifest_of_model
    from fti.store.feature_store import FeatureStore

    store, _ = trained
    view = view_of_manifest(manifest_of_model(settings, ModelRef("flights_delay", version=1)))
    group = view.groups[0]
    broken = dataclasses.replace(view, groups=[dataclasses.replace(group, columns={**group.columns, "x": "gone_column"})])
    with pytest.raises(FtiError, match="feature group carrier_delay .* has no column\\(s\\) gone_column"):
        FeatureStore(store, settings).get_batch_features(broken, as_of=AS_OF)
    missing = dataclasses.replace(view, groups=[dataclasses.replace(group, table="flights/no_such_group")])
    with pytest.raises(FtiError, match="feature group carrier_delay of view flights_delay_v1 has no table"):
        FeatureStore(store, settings).get_batch_features(missing, as_of=AS_OF)


def test_lineage_chain_reaches_raw_versions(trained, scored, settings):
    from fti.inference.lineage import model_lineage, prediction_lineage
    from fti.registry import ModelRef

    store, report = trained
    chain = model_lineage(store, settings, ModelRef.parse("flights_delay@champion"))
    assert chain["model"]["version"] == 1
    assert chain["training_set"]["table"] == report.training_set
    assert chain["feature_groups"]["carrier_delay"]["raw_versions"] == {"flights/raw_flights": 2}
    assert chain["spine"]["raw_versions"] == {"flights/raw_flights": 2}
    assert chain["feature_groups"]["origin_weather"]["raw_versions"] == {"flights/raw_weather": 2}
    fid = store.read("flights/predictions").first().flight_id
    pchain = prediction_lineage(store, settings, fid, AS_OF)
    assert pchain["prediction"]["flight_id"] == fid and 0 <= pchain["prediction"]["score"] <= 1


def test_in_process_and_ray_worker_fits_train_the_same_model(trained, settings):
    """training.num_workers auto trains this small set in this process (Ray Train's local mode), twice to the
    same bytes; one Ray worker with the same CPUs trains the same model from the same windows (the data reaches it
    through Ray's object store)."""
    from fti.config import load_config
    from fti.training.pipeline import fit_model, prepare, read_windows

    store, first = trained
    prepared = prepare(store, settings, run_id="unused")
    import ray

    local = fit_model(settings, prepared, run_id="local")
    assert local.workers.in_process and "auto" in local.workers.reason
    # reproducible: the same pinned set, read again, and the same config and seed give a byte-identical booster
    again = fit_model(settings, prepare(store, settings, run_id="unused-again"), run_id="again")
    assert bytes(again.booster.save_raw("ubj")) == bytes(local.booster.save_raw("ubj"))
    assert not ray.is_initialized()  # no Ray at all (one started from the fit's thread killed the process later)
    one = load_config("flights", home=settings.home, env={**WINDOWS, "FTI__TRAINING__NUM_WORKERS": "1"})
    remote = fit_model(one, prepared, run_id="one-worker")
    assert remote.workers.num_workers == 1 and remote.workers.cpus_per_worker == local.workers.cpus_per_worker
    import xgboost

    x = xgboost.DMatrix(prepared.tables["test"].to_pandas()[prepared.features], feature_names=prepared.features)
    assert np.array_equal(local.booster.predict(x), remote.booster.predict(x))
    # the windows come back in the same row order whatever order the log lists the files in
    out = prepared.output
    files = store.file_uris(out.table, version=out.version)
    cols = prepared.features + [prepared.label]
    assert len(files) > 1
    assert read_windows(files[::-1], prepared.windows, cols, prepared.time_col, table=out.table,
                        order_by=list(prepared.training_set.manifest.spine.keys))["train"].equals(prepared.tables["train"])


def test_a_ray_worker_killed_mid_fit_resumes_from_its_checkpoint_to_the_uninterrupted_model(trained, settings,
                                                                                           monkeypatch, tmp_path):
    """Two Ray Train workers checkpoint every 10 of 40 rounds; worker 1 is killed (SIGKILL, a fault point armed
    once) right after the second checkpoint: Ray Train restarts the worker group (training.max_failures), which
    resumes from round 20 (or 10, when the controller had not yet polled the killed worker's last report: a
    report counts once polled) and ends with the bytes of a fit nobody killed."""
    from fti.config import load_config
    from fti.training.pipeline import fit_model, prepare

    store, _ = trained
    two = load_config("flights", home=settings.home, env={
        **WINDOWS, "FTI__TRAINING__NUM_WORKERS": "2", "FTI__TRAINING__CHECKPOINT_EVERY": "10",
        "FTI__TRAINING__NUM_BOOST_ROUND": "40", "FTI__TRAINING__EARLY_STOPPING_ROUNDS": "40"})  # 30 rounds after it
    prepared = prepare(store, two, run_id="unused")
    whole = fit_model(two, prepared, run_id="uninterrupted")
    assert whole.workers.num_workers == 2 and whole.resumed_from == 0
    # a fit of the same run name starts from scratch (Ray Train resumes a run of the same name and storage: the
    # second fit took the first one's final checkpoint and trained nothing)
    assert fit_model(two, prepared, run_id="uninterrupted").resumed_from == 0
    killed = tmp_path / "killed"
    monkeypatch.setenv("FTI_FAULT", f"after_checkpoint@rank 1 round 20:kill-once={killed}")
    resumed = fit_model(two, prepared, run_id="killed-worker")
    assert killed.exists()  # worker 1 did die
    assert resumed.resumed_from in (10, 20)
    assert bytes(resumed.booster.save_raw("ubj")) == bytes(whole.booster.save_raw("ubj"))


def test_monitoring_compares_with_the_chosen_reference_and_skips_runs_already_done(trained, scored, settings):
    from fti.config import load_config
    from fti.inference import monitoring

    store, _ = trained
    first = monitoring.run(store, settings)
    assert [r["as_of"] for r in first["runs"]] == [AS_OF.isoformat()] and first["up_to_date"] == 0
    assert first["runs"][0]["reference"].startswith("the Wednesdays of the set's last 8 weeks")  # 2013-02-20
    rows = store.read("flights/monitoring", version=first["version"]).toPandas()
    assert set(rows.reference) == {"recent_weeks"} and (rows.scored_rows == scored.scored).all()
    psi_rows = rows[rows.metric == "psi"]
    assert len(psi_rows) == 22
    for r in psi_rows.itertuples():  # every PSI comes with its bins' counts
        bins = json.loads(r.bins)
        assert 0 < sum(bins["reference"]) <= r.reference_rows and sum(bins["scoring"]) <= r.scored_rows
        # judged by the feature's own threshold (at least the fixed 0.2), or not testable (no threshold)
        untestable = "not_testable" in bins
        assert bool(np.isnan(r.threshold)) == untestable and (bins["scoring_distinct"] < 10) <= untestable
        assert r.drift == (not untestable and r.value > r.threshold) and (untestable or r.threshold >= 0.2)
    # the summary and the table agree on what is flagged, and on what could not be tested
    assert first["runs"][0]["drifted"] == sorted(set(rows[rows.drift].feature.fillna(rows.metric)))
    assert first["runs"][0]["not_testable"] == sorted(psi_rows[psi_rows.threshold.isna()].feature)
    again = monitoring.run(store, settings)  # nothing new: no computation, no commit
    assert again["runs"] == [] and again["up_to_date"] == 1 and store.version("flights/monitoring") == first["version"]
    validation = load_config("flights", home=settings.home, env={**WINDOWS, "FTI__MONITORING__REFERENCE": "validation"})
    third = monitoring.run(store, validation)  # another reference: recomputed, that run's rows replaced
    assert len(third["runs"]) == 1 and third["version"] == first["version"] + 1
    assert third["runs"][0]["reference"].startswith("the validation window 2013-02-08..2013-02-18")
    assert set(store.read("flights/monitoring").toPandas().reference) == {"validation"}


def test_monitoring_recomputes_a_run_after_it_was_rescored(trained, scored, settings):
    """Rescoring the same model and as_of (after late data, say) replaces the predictions: the run is monitored
    again against the new rows (it used to stay "up to date" with the replaced predictions' PSI and AUC)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from fti.inference import monitoring
    from fti.inference.pipeline import run as score

    store, _ = trained
    monitoring.run(store, settings)  # whatever earlier tests left: every run monitored now
    assert monitoring.run(store, settings)["runs"] == []
    rescored = score(store, settings, as_of=AS_OF)
    again = monitoring.run(store, settings)
    assert [r["as_of"] for r in again["runs"]] == [AS_OF.isoformat()], again
    moment = pa.scalar(AS_OF, type=pa.timestamp("us", tz="UTC"))
    preds = store.arrow_dataset("flights/predictions").to_table(filter=pc.field("as_of") == moment).to_pandas()
    assert len(preds) == rescored.scored
    assert again["runs"][0]["score_mean"] == pytest.approx(preds["score"].mean())
    assert monitoring.run(store, settings)["runs"] == []  # and then it is up to date


def test_a_second_home_in_the_same_process_gets_its_own_mlflow_store(trained, settings, tmp_path):
    """MLflow's set_tracking_uri also sets MLFLOW_TRACKING_URI in os.environ; since fti reads that variable, a
    notebook that trained or scored in one home and then loads another would log into the first home's store."""
    import os

    from fti.config import load_config
    from fti.inference.pipeline import load_model
    from fti.registry import ModelRef

    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    load_model(settings, ModelRef("flights_delay", version=1))
    assert {k: os.environ.get(k) for k in before} == before
    other = load_config("flights", home=tmp_path / "other", env=dict(os.environ))
    assert other.tracking_uri == f"sqlite:///{tmp_path / 'other' / 'mlflow' / 'mlflow.db'}", other.tracking_uri


def test_a_copied_home_works_by_itself_after_the_original_is_gone(trained, scored, settings, tmp_path):
    """All state lives in one home folder: a copy scores, traces lineage and monitors with the original gone, and
    writes nothing outside itself (MLflow's embedded store records absolute artifact paths)."""
    import shutil

    from fti.config import load_config
    from fti.inference import monitoring
    from fti.inference.lineage import model_lineage
    from fti.inference.pipeline import run as score
    from fti.registry import ModelRef
    from fti.store import open_store

    store, _ = trained
    copy = tmp_path / "copy"
    original = Path(settings.home)
    shutil.copytree(original, copy)
    away = original.with_name(original.name + "-away")
    original.rename(away)  # the original is gone while the copy runs
    try:
        moved = load_config("flights", home=copy, env=WINDOWS)
        copy_store = open_store(store.spark, moved, backend="native")
        day_after = score(copy_store, moved, as_of=AS_OF + dt.timedelta(days=1))
        assert day_after.scored == day_after.population > 0
        chain = model_lineage(copy_store, moved, ModelRef.parse("flights_delay@champion"))
        assert chain["model"]["version"] == 1
        monitored = monitoring.run(copy_store, moved)
        assert [r["as_of"] for r in monitored["runs"]][-1] == (AS_OF + dt.timedelta(days=1)).isoformat()
        assert all(Path(r["png"]).is_relative_to(copy) for r in monitored["runs"])
    finally:
        recreated = original.exists()
        if recreated:
            shutil.rmtree(original)
        away.rename(original)
    assert not recreated, "a run on the copy wrote into the original home"


@pytest.mark.parametrize("objective, metric", [("regression", "rmse"), ("multiclass", "log_loss")])
def test_a_regression_and_a_multiclass_model_train_gate_score_and_monitor(trained, settings, objective, metric):
    """training.objective: the same pinned set fitted as regression (the 0/1 label's RMSE is the Brier score) and
    as a two-class multiclass model; each gated on its own metric (lower is better), scored on both engines with
    the same rows (a regression model's predicted_label is null), and monitored with its realized metrics."""
    from chispa import assert_df_equality
    from pyspark.sql import functions as F

    from fti.config import load_config
    from fti.inference import monitoring
    from fti.inference.pipeline import run as score
    from fti.objectives import METRICS
    from fti.registry import client
    from fti.training.pipeline import run as train

    store, binary = trained
    name = f"flights_{objective}"
    env = {**WINDOWS, "FTI__TRAINING__OBJECTIVE": objective, "FTI__TRAINING__MODEL_NAME": name}
    own = load_config("flights", home=settings.home, env=env)
    first = train(store, own)
    assert (first.alias, first.objective, first.metric) == ("champion", objective, metric)
    assert first.training_set == binary.training_set  # the same pinned set, reused
    assert {f"test_{m}" for m in METRICS[objective]} <= set(first.metrics)
    if objective == "regression":
        assert 0.3 < first.metrics["test_rmse"] < 0.45, first.metrics  # below the prior's ~0.44 means it learned
    else:
        assert first.metrics["test_accuracy"] > 0.7 and first.metrics["test_log_loss"] < 0.6, first.metrics
    tags = client(settings).get_model_version(name, str(first.version)).tags
    assert (tags["fti.objective"], tags["fti.metric"]) == (objective, metric)
    plots = {a.path for a in client(settings).list_artifacts(first.mlflow_run_id, "plots")}
    assert plots == ({"plots/feature_importance.png", "plots/predicted_vs_actual.png", "plots/residuals.png"}
                     if objective == "regression" else {"plots/feature_importance.png", "plots/confusion_matrix.png"})
    second = train(store, own)  # the same data and seed: no better by the margin
    assert second.alias == "challenger" and "(lower is better): stays challenger" in second.reason, second.reason
    assert second.champion_metric == pytest.approx(first.metrics[f"test_{metric}"])

    rows = {}
    for engine in ("spark", "local"):
        report = score(store, load_config("flights", home=settings.home, env={**env, "FTI__SCORING__ENGINE": engine,
                                                                              "FTI__SCORING__EXPLAIN": "2"}),
                       as_of=AS_OF, model=f"{name}@champion")
        assert report.extra["engine"] == engine
        rows[engine] = (store.read("flights/predictions", version=report.version).where(F.col("model_name") == name)
                        .drop("scored_at").withColumn("feature_versions", F.to_json("feature_versions")))
    assert_df_equality(rows["local"], rows["spark"], ignore_row_order=True, ignore_nullable=True)
    preds = rows["local"].toPandas()
    assert len(preds) > 100
    _assert_reason_codes(preds, first.features, k=2)
    if objective == "regression":
        assert preds.predicted_label.isna().all() and preds.score.between(-0.5, 1.5).all()
    else:
        assert set(preds.predicted_label) <= {0, 1} and (preds.score >= 0.5).all()
    runs = [r for r in monitoring.run(store, own)["runs"] if r["model"] == f"{name}/{first.version}"]
    assert len(runs) == 1 and "realized_auc" not in runs[0]
    realized = {"regression": ("realized_rmse", "realized_mae"),
                "multiclass": ("realized_accuracy", "realized_macro_f1")}[objective]
    assert all(runs[0][k] is not None for k in realized), runs[0]
