"""Cross-engine conformance: every version of a table written by either backend reads the same in the Delta
connector (``versionAsOf``), delta-rs and polars. Both of fti's own readers used to replay the log with
delta-rs; this is the check that another engine agrees."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import types as T

from fti.store import Match, RunContext, Txn
from tests.helpers.tables import SCHEMA

UTC = dt.timezone.utc


def _norm_value(value):
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value


def _norm(rows):
    return sorted((tuple(sorted((k, _norm_value(v)) for k, v in row.items())) for row in rows), key=repr)


@pytest.fixture(scope="module", params=["native", "delta-rs"])
def written(request, spark, tmp_path_factory):
    """A table taken through every kind of commit fti makes, by one backend."""
    from fti.config import load_config
    from fti.store import open_store

    store = open_store(spark, load_config("flights", home=tmp_path_factory.mktemp(f"conf-{request.param}")),
                       backend=request.param)
    name = "conformance/t"
    store.create_table(name, SCHEMA, kind="feature_group", partition_by=["d"])

    def df(rows, schema=SCHEMA):
        return spark.createDataFrame(rows, schema)

    d1, d2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
    t = dt.datetime(2013, 1, 1, 5, 6, 7, 891011, tzinfo=UTC)
    store.append(name, df([("a", t, d1, 1.0), ("b", None, d2, None)]), txn=Txn("features:c", 1),
                 watermarks={"raw_a": 1, "raw_b": 0}, run=RunContext(pipeline="test"))
    store.append(name, df([("c", t, d1, 3.0)]))
    store.replace_where(name, df([("b", t, d2, 20.0)]), Match.of(d=[d2]))
    wider = T.StructType([*SCHEMA.fields, T.StructField("w", T.LongType(), True)])
    store.append(name, df([("e", t, d2, 5.0, 7)], wider), allow_new_columns=True)
    store.merge(name, df([("a", t, d1, 10.0, 1), ("f", None, d1, 6.0, None)], wider), keys=["k"])
    store.delete(name, "k = 'c'")
    store.compact(name)
    store.overwrite(name, df([("z", t, d1, 0.5, 9)], wider))
    return store, name


def test_every_version_reads_the_same_in_every_engine(spark, written):
    import polars as pl
    from deltalake import DeltaTable

    store, name = written
    assert store.version(name) >= 8
    for version in range(store.version(name) + 1):
        by_connector = [r.asDict() for r in
                        spark.read.format("delta").option("versionAsOf", version).load(store.uri(name)).collect()]
        by_delta_rs = DeltaTable(store.uri(name), version=version).to_pyarrow_table().to_pylist()
        by_polars = pl.read_delta(store.uri(name), version=version).to_dicts()
        by_store = [r.asDict() for r in store.read(name, version=version).collect()]
        expected = _norm(by_connector)
        assert _norm(by_delta_rs) == expected, (store.backend_name, version)
        assert _norm(by_polars) == expected, (store.backend_name, version)
        assert _norm(by_store) == expected, (store.backend_name, version)


def test_metadata_and_watermarks_read_the_same_on_both_backends(written):
    store, name = written
    first_write = [h for h in store.history(name) if h["version"] == 1][0]
    assert first_write["pipeline"] == "test" and first_write["fti.operation"] == "append"
    assert store.watermark(name, "raw_a", version=1) == 1 and store.watermark(name, "raw_b", version=1) == 0
    assert store.transaction_version(name, "features:c") == 1
    assert {h["fti.operation"] for h in store.history(name)} >= {"create", "append", "replace", "merge", "delete",
                                                                  "compact", "overwrite"}


def test_a_table_with_a_feature_fti_cannot_read_is_refused_by_name(spark, tmp_path):
    from fti.errors import UnsupportedTableError
    from fti.store import DeltaLog

    path = tmp_path / "ext" / "dv"
    spark.sql(f"CREATE TABLE delta.`{path}` (k string) USING DELTA "
              "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    with pytest.raises(UnsupportedTableError, match="deletionVectors"):
        DeltaLog(tmp_path).version("ext/dv")
