"""Which hadoop-aws matches this Spark, also under spark-submit (where pyspark is imported from a zip and Spark's
jars are found through SPARK_HOME); a session never fails for want of the S3A jars."""

from __future__ import annotations

import pytest

from fti import connector
from fti.errors import EnvironmentProblem


def test_the_hadoop_version_comes_from_spark_home_then_pyspark(tmp_path, monkeypatch):
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "hadoop-client-api-9.9.9.jar").touch()
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    assert connector.object_store_coordinates() == "org.apache.hadoop:hadoop-aws:9.9.9"
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "not-a-spark"))
    assert connector.hadoop_version() == "3.5.0"  # pyspark 4.2's own jars


def test_without_a_known_hadoop_no_s3a_jars_are_loaded(tmp_path, monkeypatch):
    (tmp_path / "jars").mkdir()  # a Spark whose jars name no hadoop-client-api
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="hadoop-client-api"):
        connector.hadoop_version()
    assert connector.installed_object_store_jars() == []
