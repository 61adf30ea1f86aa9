"""Training sets on the synthetic system: manifest, leakage canary, rebuild after writes and vacuum."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sklearn.metrics import roc_auc_score

from fti.features import pipeline
from fti.ingest import load_through
from fti.store import Pin
from fti.store.feature_store import FeatureStore
from fti.store.pit import leaky_same_day_join

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def syn_settings(home):
    from fti.config import load_config

    return load_config("synthetic", home=home, env={})


@pytest.fixture(scope="module")
def syn(spark, syn_settings):
    from fti.store import open_store

    store = open_store(spark, syn_settings, backend="native")
    load_through(store, syn_settings, through=dt.date(2024, 2, 4), batch="week", entities=400)
    pipeline.run(store, syn_settings, now=dt.datetime(2024, 2, 5, tzinfo=UTC))
    return store, FeatureStore(store, syn_settings)


@pytest.fixture(scope="module")
def built(syn):
    store, fs = syn
    ts = fs.get_training_set(None, "purchase_v1", start=dt.date(2024, 1, 8), end=dt.date(2024, 2, 5))
    return fs.materialize(ts)


def test_manifest_fields(built, syn, home):
    store, _ = syn
    m = built.manifest.to_json()
    assert m["feature_view"] == "purchase_v1"
    assert m["spine"] == {"table": "synthetic/labels", "version": store.version("synthetic/labels"),
                          "keys": ["entity_id"], "event_time": "prediction_time", "label": "purchased",
                          "filter": {"start": "2024-01-08", "end": "2024-02-05", "require_label": True},
                          "feature_columns": []}
    groups = {f["group"]: f for f in m["features"]}
    assert groups["activity"]["table"] == "synthetic/activity"
    assert groups["activity"]["version"] == store.version("synthetic/activity")
    assert groups["activity"]["keys"] == {"entity_id": "entity_id"}
    assert groups["canary"]["columns"] == {"purchases_today": "purchases_today"}
    assert groups["activity"]["ttl_seconds"] == 7 * 86400
    assert m["output"]["table"].startswith("synthetic/training_sets/purchase_v1/train-")
    assert m["output"]["rows"] == store.row_count(m["output"]["table"]) > 5000
    assert len(m["output"]["sha256"]) == 64 and m["code_version"]
    report = m["leakage_report"]["canary"]
    assert 0.9 < report["matched"] <= 1.0 and report["max_age_s"] <= 2 * 86400
    on_disk = json.loads((home / f"{m['output']['table']}.training_set.json").read_text())
    assert on_disk == json.loads(json.dumps(m, default=str))
    assert store.info(m["output"]["table"]).kind == "training_set"


def test_training_set_is_reused_only_for_the_same_view_definition(syn, built, syn_settings):
    """Same inputs and window but a changed prefix or TTL is another training set (it used to be reused)."""
    import dataclasses

    from fti.training.pipeline import _reusable

    store, fs = syn
    window = (dt.date(2024, 1, 8), dt.date(2024, 2, 5))
    reused = _reusable(store, fs, "purchase_v1", *window)
    assert reused is not None and reused.manifest.output.table == built.manifest.output.table
    assert built.manifest.view_hash == fs.feature_view("purchase_v1").definition_hash()

    def with_first_group(**change):
        views = dict(syn_settings.config.feature_views)
        view = views["purchase_v1"]
        views["purchase_v1"] = view.model_copy(update={"groups": [view.groups[0].model_copy(update=change),
                                                                  *view.groups[1:]]})
        settings = dataclasses.replace(syn_settings, config=syn_settings.config.model_copy(
            update={"feature_views": views}))
        return FeatureStore(store, settings)

    for change in ({"prefix": "act_"}, {"ttl": "3d"}, {"features": ["events_7d"]}):
        assert _reusable(store, with_first_group(**change), "purchase_v1", *window) is None, change


def test_leakage_canary_pit_vs_same_day_join(built, syn):
    """As of the prediction time the canary only shows YESTERDAY's purchases: weakly informative.
    A same-day join hands the model today's purchases, i.e. the label."""
    store, fs = syn
    pdf = built.df.select("purchased", "purchases_today", "events_7d").toPandas().fillna(-1)
    auc_pit = roc_auc_score(pdf["purchased"], pdf["purchases_today"])
    view = fs.feature_view("purchase_v1")
    joins, _ = fs._joins(view, {})
    spine = store.read("synthetic/labels").where("purchased is not null and day >= '2024-01-08'")
    leaky = leaky_same_day_join(spine, joins, spine_time="prediction_time").toPandas().fillna(-1)
    auc_leaky = roc_auc_score(leaky["purchased"], leaky["purchases_today"])
    assert 0.5 < auc_pit < 0.8, auc_pit
    assert auc_leaky > 0.99, auc_leaky


def test_rebuild_after_more_writes_and_vacuum_gives_same_hash(built, syn, spark, syn_settings):
    store, fs = syn
    m = built.manifest.to_json()
    load_through(store, syn_settings, through=dt.date(2024, 2, 11), batch="week", entities=400)
    pipeline.run(store, syn_settings, now=dt.datetime(2024, 2, 12, tzinfo=UTC))
    # a late backfill rewrites days the training set read
    pipeline.run(store, syn_settings, now=dt.datetime(2024, 2, 12, tzinfo=UTC), start=dt.date(2024, 1, 10),
                 end=dt.date(2024, 1, 12))
    pins = [Pin(e["table"], e["version"], "models:/test/1") for e in m["features"]]
    for table in ("synthetic/activity", "synthetic/canary"):
        result = store.vacuum(table, retention_hours=0, pins=pins)  # deletes all but the pinned versions' files
        assert [p.owner for p in result["kept_pins"]] == ["models:/test/1"], table
    result = fs.rebuild(built.manifest)
    assert result["matches"], result
    assert result["rows"] == m["output"]["rows"]


def test_bitemporal_build_and_batch_features(syn):
    store, fs = syn
    ts = fs.get_training_set(None, "purchase_v1", bitemporal=True, start=dt.date(2024, 1, 8), end=dt.date(2024, 1, 15))
    assert ts.manifest.bitemporal is True
    as_of = dt.datetime(2024, 1, 20, tzinfo=UTC)
    batch = fs.get_batch_features("purchase_v1", as_of=as_of)
    train_rows = fs.get_training_set(None, "purchase_v1", start=dt.date(2024, 1, 20), end=dt.date(2024, 1, 21),
                                     require_label=False).df
    cols = ["entity_id", "events_7d", "mean_amount_7d", "purchases_today"]
    assert sorted(map(tuple, batch.select(*cols).collect())) == sorted(map(tuple, train_rows.select(*cols).collect()))
    latest = fs.get_latest_features("activity", [{"entity_id": "e000001"}]).collect()
    assert len(latest) == 1 and latest[0].entity_id == "e000001"


def test_content_hash_is_sha256_over_the_sorted_row_digests(spark):
    """The hash of the manifest: SHA-256 over the column names and the sorted per-row digests, row by row here;
    fti hashes the collected Arrow buffer, which must give the same value (and over several partitions)."""
    import hashlib

    from pyspark.sql import functions as F

    from fti.store.training_set import content_hash

    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    df = spark.createDataFrame([(i, None if i % 3 else f"k{i}", when + dt.timedelta(hours=i), i / 7) for i in range(500)],
                               "id int, key string, t timestamp, x double").repartition(4)
    encoded = F.to_json(F.struct(*[F.col(c) for c in sorted(df.columns)]),
                        {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "ignoreNullFields": "false"})
    digests = sorted(r.d for r in df.select(F.sha2(encoded, 256).alias("d")).collect())
    expected = hashlib.sha256(("|".join(sorted(df.columns)) + "\n").encode())
    for d in digests:
        expected.update(d.encode())
    assert content_hash(df) == expected.hexdigest() == content_hash(df.coalesce(1).orderBy(F.rand(1)))
    assert content_hash(df.limit(0)) == hashlib.sha256(b"id|key|t|x\n").hexdigest()
