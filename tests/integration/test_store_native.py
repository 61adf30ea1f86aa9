"""The native backend (Delta Spark connector). It needs the Delta jar on Spark's classpath."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import types as T

from fti.spark import delta_jar_available


@pytest.fixture(scope="module")
def native_store(spark, settings):
    if not delta_jar_available(spark):
        pytest.skip("native Delta backend not exercised: the Delta Spark connector jar is not on the classpath "
                    "(Maven is unreachable here); run with spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.1")
    from fti.store import open_store

    return open_store(spark, settings, backend="native")


def test_native_round_trip(spark, native_store):
    schema = T.StructType([T.StructField("k", T.StringType(), False), T.StructField("d", T.DateType(), True)])
    native_store.create_table("native/t", schema, kind="raw", partition_by=["d"])
    native_store.append("native/t", spark.createDataFrame([("a", dt.date(2013, 1, 1))], schema))
    native_store.replace_partitions("native/t", spark.createDataFrame([("b", dt.date(2013, 1, 1))], schema),
                                    [{"d": dt.date(2013, 1, 1)}])
    assert [r.k for r in native_store.read("native/t").collect()] == ["b"]
    assert [r.k for r in native_store.read("native/t", version=1).collect()] == ["a"]


def test_auto_picks_delta_rs_without_jar(spark, settings):
    from fti.store import open_store

    if delta_jar_available(spark):
        pytest.skip("the Delta jar is present: auto picks native")
    assert open_store(spark, settings).backend_name == "delta-rs"
