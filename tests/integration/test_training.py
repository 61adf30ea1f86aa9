"""Training on a small window of the real flights data: 2 Ray workers, MLflow registry, promotion gate."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from fti.features import pipeline
from fti.features.flights.replay import replay

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

    store = open_store(spark, settings, backend="delta-rs")
    replay(spark, store, "flights", through=dt.date(2013, 2, 28), batch="month")
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


def test_run_logged_metrics_plots_and_manifest(trained, settings):
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
