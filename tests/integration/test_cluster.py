"""spark-submit of the three jobs against a real Spark standalone cluster, a Ray cluster and an MLflow server
(all on 127.0.0.1), with the `cluster` profile; the results match a local run on the same data."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from chispa import assert_df_equality

from tests.conftest import PROJECT
from tests.helpers.cluster import local_cluster, spark_submit

pytestmark = pytest.mark.cluster
NOW = "2024-02-26T00:00Z"
ENV = {"FTI__INGEST__ENTITIES": "150", "FTI__TRAINING__NUM_BOOST_ROUND": "30"}


def fti(*args, env=None):
    import os

    out = subprocess.run([sys.executable, "-m", "fti", *args], capture_output=True, text=True, cwd=PROJECT,
                         env={**os.environ, **ENV, **(env or {})}, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_jobs_on_a_real_cluster_match_the_local_run(tmp_path, spark):
    cluster_home, local_home = tmp_path / "cluster-home", tmp_path / "local-home"
    for home in (cluster_home, local_home):  # the same raw data in both homes
        fti("ingest", "--system", "synthetic", "--home", str(home), "--through", "2024-02-25")
    fti("features", "--system", "synthetic", "--home", str(local_home), "--now", NOW)
    fti("training-set", "build", "--system", "synthetic", "--home", str(local_home), "--start", "2024-01-08",
        "--end", "2024-02-26")

    with local_cluster(tmp_path / "services") as cluster:
        env = {**ENV, "FTI_PROFILE": "cluster", "FTI__RAY__ADDRESS": cluster.ray_address,
               "FTI__MLFLOW__TRACKING_URI": cluster.mlflow_uri}
        common = ["--system", "synthetic", "--home", str(cluster_home)]
        logs = {}
        for job, args, extra in (("jobs/feature_pipeline.py", ["--now", NOW], {}),
                                 # two workers of 2 CPUs on two 2-CPU Ray nodes: one per node
                                 ("jobs/training_pipeline.py", [], {"FTI__TRAINING__NUM_WORKERS": "2"}),
                                 ("jobs/batch_inference.py", ["--as-of", "2024-02-20T00:00Z"], {})):
            out = spark_submit(cluster, job, common + args, {**env, **extra}, cwd=PROJECT)
            assert out.returncode == 0, f"{job} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
            logs[job] = out.stdout
        # the summary names each worker's node, rows and times: two workers, on the two Ray nodes
        trained = next(line for line in logs["jobs/training_pipeline.py"].splitlines() if line.startswith("trained"))
        assert "2 workers, 2 CPUs each" in trained and "worker 1 on node" in trained, trained
        print(trained)
        assert len(set(re.findall(r"worker \d on node (\w+)", trained))) == 2, trained
        from mlflow.tracking import MlflowClient

        champion = MlflowClient(cluster.mlflow_uri).get_model_version_by_alias("synthetic_purchase", "champion")
        assert str(champion.version) == "1"
        pins = {k: v for k, v in champion.tags.items() if k.startswith("fti.pin.")}

    from fti.config import load_config
    from fti.store import open_store

    cl = open_store(spark, load_config("synthetic", home=cluster_home, env={}), backend="native")
    lo = open_store(spark, load_config("synthetic", home=local_home, env={}), backend="native")
    for table in ("synthetic/activity", "synthetic/canary", "synthetic/labels"):
        assert cl.version(table) == lo.version(table) == 1
        assert_df_equality(cl.read(table), lo.read(table), ignore_row_order=True)
        # written on the cluster by the connector (spark-submit --jars), watermark in the data commit
        last = cl.history(table, limit=1)[0]
        assert "Delta-Lake/" in (last.get("engineInfo") or ""), last
        assert last["operation"] == "WRITE" and cl.watermark(table, "raw_events") is not None
    assert pins["fti.pin.synthetic/activity"] == "1"
    # the training set built on the cluster has the same content hash as the local one
    import json

    def manifest(home):
        return json.loads(next((home / "synthetic" / "training_sets" / "purchase_v1").glob("*.training_set.json"))
                          .read_text())

    assert manifest(cluster_home)["output"]["sha256"] == manifest(local_home)["output"]["sha256"]
    population = lo.read("synthetic/labels").where("prediction_time = timestamp'2024-02-20 00:00:00'").count()
    assert cl.read("synthetic/predictions").count() == population > 100
