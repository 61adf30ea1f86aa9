"""A home on object storage: a real S3-compatible server on 127.0.0.1 (moto), the home at ``s3a://bucket/...``.

The synthetic cycle (land, features, training set, train, score) runs on both backends: through the connector
(Hadoop's S3A, hadoop-aws and the AWS SDK from Maven Central) and through ``deltalake``. MLflow is an
``mlflow server`` whose artifacts are in the same bucket, so nothing of the home is on the local disk. Then the
Spark-free side (catalog, lineage, vacuum) reads the bucket, and two writers on "two machines" (no shared lock)
race for the same table version.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality

from tests.helpers.s3 import object_store
from tests.helpers.tables import SCHEMA

UTC = dt.timezone.utc
HELPER = Path(__file__).resolve().parents[1] / "helpers" / "append_rows.py"
ENV = {"FTI__INGEST__ENTITIES": "60", "FTI__TRAINING__NUM_BOOST_ROUND": "15", "FTI__TRAINING__NUM_WORKERS": "1"}
AS_OF = dt.datetime(2024, 2, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with object_store(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _settings(s3, backend: str, folder: str = ""):
    from fti.config import load_config

    return load_config("synthetic", home=f"s3a://{s3.bucket}/{folder or backend}/lakehouse", env={
        **ENV, "FTI__DELTA__BACKEND": backend, "FTI__TRAINING__MODEL_NAME": f"purchase_{backend.replace('-', '_')}",
        "MLFLOW_TRACKING_URI": s3.mlflow_uri})


@pytest.fixture(scope="module", params=["native", "delta-rs"])
def cycle(request, spark, s3):
    from fti.config import ensure_home
    from fti.features import pipeline
    from fti.ingest import load_through
    from fti.inference.pipeline import run as score
    from fti.store import open_store
    from fti.training.pipeline import run as train

    settings = _settings(s3, request.param)
    local_before = set(os.listdir())
    ensure_home(settings)
    store = open_store(spark, settings)
    assert store.backend_name == request.param
    load_through(store, settings, through=dt.date(2024, 2, 25), batch="week")
    features = pipeline.run(store, settings, now=dt.datetime(2024, 2, 26, tzinfo=UTC))
    trained = train(store, settings)
    scored = score(store, settings, as_of=AS_OF)
    return store, settings, features, trained, scored, set(os.listdir()) - local_before


def test_the_cycle_on_s3_writes_every_table_into_the_bucket_and_nothing_locally(s3, cycle):
    store, settings, features, trained, scored, new_local = cycle
    assert {o.status for o in features.outputs} == {"written"}
    assert trained.alias == "champion"
    population = store.read("synthetic/labels").where("prediction_time = timestamp'2024-02-20 00:00:00'").count()
    assert scored.scored == population > 10
    prefix = settings.home.key + "/"
    keys = s3.keys(prefix)
    tables = store.list_tables()
    assert {"synthetic/raw_events", "synthetic/activity", "synthetic/labels", "synthetic/predictions"} <= set(tables)
    for table in tables:
        assert f"{prefix}{table}/_delta_log/00000000000000000000.json" in keys, table
    manifests = [k for k in keys if k.endswith(".training_set.json")]
    assert len(manifests) == 1 and manifests[0].startswith(prefix + "synthetic/training_sets/")
    # (an empty "folder" marker may stay: S3 clients write one to keep a parent folder visible)
    assert not [k for k in keys if "/_staging/" in k and not k.endswith("/")], "the bridge's staged files stayed"
    # the model's artifacts went through the MLflow server into the same bucket
    assert any(k.endswith("/MLmodel") for k in s3.keys("mlflow-artifacts/"))
    assert not new_local, f"the cycle wrote into the working folder: {sorted(new_local)}"


def _sortable(df):
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    return df.select(*[F.array_sort(F.map_entries(f.name)).alias(f.name) if isinstance(f.dataType, MapType)
                       else F.col(f.name) for f in sorted(df.schema.fields, key=lambda f: f.name)])


def test_the_connector_and_deltalake_read_the_same_rows_from_the_bucket(spark, cycle):
    from fti.store.delta_rs import DeltaRsStore

    store = cycle[0]
    bridge = DeltaRsStore(spark, store.home)  # reads the file list with deltalake, the rows with Spark
    for table in ("synthetic/activity", "synthetic/predictions"):
        by_connector = spark.read.format("delta").load(store.uri(table))
        assert_df_equality(_sortable(by_connector), _sortable(bridge.read(table)), ignore_row_order=True,
                           ignore_nullable=True)
        assert store.delta_table(table).to_pyarrow_table().num_rows == by_connector.count()


def test_catalog_lineage_and_vacuum_read_the_bucket_without_spark(cycle):
    from fti.catalog import build_catalog
    from fti.inference.lineage import model_lineage
    from fti.registry import ModelRef
    from fti.store import DeltaLog
    from fti.store.vacuum import vacuum

    _, settings, _, trained, _, _ = cycle
    log = DeltaLog(settings.home)
    catalog = build_catalog(settings, log)
    assert catalog["home"] == settings.home.uri
    assert "synthetic/predictions" in {t["name"] for t in catalog["tables"]}
    assert not any(t.get("incomplete") for t in catalog["tables"])
    name = settings.config.training.model_name
    chain = model_lineage(log, settings, ModelRef.parse(f"{name}@champion"))
    assert chain["training_set"]["manifest"].startswith("synthetic/training_sets/")
    assert chain["spine"]["raw_versions"] == {"synthetic/raw_events": log.version("synthetic/raw_events")}
    result = vacuum(log, "synthetic/activity", retention_hours=0, dry_run=True)
    assert result["deleted"] == []  # nothing was removed from the table: nothing to vacuum


def _writer(s3, home: str, table: str, tag: str, lock_dir: Path, hold: Path) -> subprocess.Popen:
    env = {**os.environ, **s3.env, "MLFLOW_TRACKING_URI": s3.mlflow_uri, "FTI_LOCK_DIR": str(lock_dir),
           "FTI_FAULT": f"after_files:wait={hold}"}
    return subprocess.Popen([sys.executable, str(HELPER), home, table, tag, "20", "delta-rs"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_writers_on_two_machines_race_for_one_version_and_both_land(spark, s3, tmp_path):
    """Two processes with no lock in common (as on two machines) write their files, wait at the commit until
    both are there, then commit at once: both read the same version, so both try to create the same next log
    entry. S3's conditional write (If-None-Match) lets one win; deltalake's commit sees the other's and retries
    at the next version. Without it, one commit would overwrite the other and its rows would be lost."""
    from fti.store import open_store

    settings = _settings(s3, "delta-rs", "race")
    store = open_store(spark, settings, backend="delta-rs")
    table = "test/race"
    store.create_table(table, SCHEMA, kind="raw", partition_by=["d"])
    holds = {tag: tmp_path / f"release-{tag}" for tag in ("m1", "m2")}
    procs = [_writer(s3, settings.home.uri, table, tag, tmp_path / f"machine-{tag}", hold) for tag, hold in holds.items()]
    deadline = time.time() + 240
    while not all(Path(f"{hold}.reached").exists() for hold in holds.values()):  # both wrote their files
        assert time.time() < deadline, "the writers did not reach the commit"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.2)
    assert store.version(table) == 0  # neither has committed: both will commit on top of version 0
    for hold in holds.values():
        hold.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    versions = sorted(int(o[0].split()[-1]) for o in outs)
    assert versions == [1, 2], outs
    keys = sorted(r.k for r in store.read(table).collect())
    assert len(keys) == 40 and len(set(keys)) == 40
    appends = [h for h in store.history(table) if h.get("fti.operation") == "append"]
    assert sorted(h["pipeline"] for h in appends) == ["proc-m1", "proc-m2"]
