"""The store contract, on BOTH Delta backends (the connector and the delta-rs bridge), against real Delta
tables on disk and a real Spark."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from fti.errors import SchemaMismatchError, TableNotFoundError, VersionNotFoundError
from fti.store import Match, Pin, RunContext, Txn
from tests.helpers.tables import SCHEMA

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "append_rows.py"
UTC = dt.timezone.utc



def ts(*args):
    return dt.datetime(*args, tzinfo=UTC)


def rows_df(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


@pytest.fixture(scope="module", params=["native", "delta-rs"])
def store(request, spark, tmp_path_factory):
    """The store of a fresh home, once per backend: every test of this module runs on both."""
    from fti.config import load_config
    from fti.store import open_store

    settings = load_config("flights", home=tmp_path_factory.mktemp(f"store-{request.param}"))
    return open_store(spark, settings, backend=request.param)


def unreferenced_files(store, table):
    """Parquet files under the table folder that no version of it references (a failed write's leftovers)."""
    known = {str(Path(u.removeprefix("file://"))) for v in range(store.version(table) + 1)
             for u in store.file_uris(table, version=v)}
    return [p for p in Path(store.path(table)).rglob("*.parquet") if str(p) not in known]


@pytest.fixture()
def table(store, request):
    name = f"test/{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')[:60]}"
    store.create_table(name, SCHEMA, kind="raw", partition_by=["d"], description="store test table")
    return name


def test_create_sets_kind_retention_and_protocol(store, table):
    props = store.properties(table)
    assert props["fti.kind"] == "raw"
    assert props["delta.logRetentionDuration"] == "interval 365 days"
    assert props["delta.deletedFileRetentionDuration"] == "interval 365 days"
    from deltalake import DeltaTable

    proto = DeltaTable(store.uri(table)).protocol()
    assert (proto.min_reader_version, proto.min_writer_version) == (1, 2)
    assert not proto.reader_features and not proto.writer_features
    assert store.version(table) == 0
    assert store.read(table).count() == 0


def test_create_again_same_schema_is_noop_other_schema_fails(store, table):
    assert store.create_table(table, SCHEMA, kind="raw", partition_by=["d"]) == 0
    other = T.StructType([T.StructField("k", T.LongType(), False)])
    with pytest.raises(SchemaMismatchError, match="column 'k' has type bigint"):
        store.create_table(table, other, kind="raw")


def test_append_and_read_whole(spark, store, table):
    rows = [("a", ts(2013, 1, 1, 5, 0, 0, 123456), dt.date(2013, 1, 1), 1.0),
            ("b", ts(2013, 1, 2, 5), dt.date(2013, 1, 2), None)]
    result = store.append(table, rows_df(spark, rows), run=RunContext(run_id="run-append-1", pipeline="test"))
    assert (result.version, result.rows, result.files_added, result.skipped) == (1, 2, 2, False)
    assert_df_equality(store.read(table), rows_df(spark, rows), ignore_row_order=True, ignore_nullable=True)
    files = store.file_uris(table)
    assert len(files) == 2
    if store.backend_name == "delta-rs":  # the bridge names its files with the run id; the connector with a uuid
        assert all("run-append-1" in f for f in files)
    assert not (store.home / "_staging").exists() or not (store.home / "_staging").iterdir()


def test_stats_recorded_with_timestamp_max_rounded_up(spark, store, table):
    rows = [("a", ts(2013, 1, 1, 5, 0, 0, 123456), dt.date(2013, 1, 1), 1.0),
            ("b", ts(2013, 1, 1, 6, 0, 0, 1), dt.date(2013, 1, 1), 2.5)]
    store.append(table, rows_df(spark, rows).coalesce(1))
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(store.uri(table)).get_add_actions(flatten=True)).to_pylist()
    assert len(actions) == 1
    act = actions[0]
    assert act["num_records"] == 2
    assert act["null_count.v"] == 0
    assert act["min.v"] == 1.0 and act["max.v"] == 2.5
    assert act["min.ts"] == dt.datetime(2013, 1, 1, 5, 0, 0, 123000, tzinfo=UTC)
    # statistics hold milliseconds: the bridge rounds the max up, the connector truncates it (and widens it
    # by 1 ms when it skips data, as fti's own replace planning does)
    assert act["max.ts"] == dt.datetime(2013, 1, 1, 6, 0, 0, 1000 if store.backend_name == "delta-rs" else 0,
                                        tzinfo=UTC)
    assert store.row_count(table) == 2


def test_replace_partition_rerun_is_idempotent(spark, store, table):
    day1 = [("a", ts(2013, 1, 1, 5), dt.date(2013, 1, 1), 1.0)]
    day2 = [("b", ts(2013, 1, 2, 5), dt.date(2013, 1, 2), 2.0), ("c", ts(2013, 1, 2, 6), dt.date(2013, 1, 2), 3.0)]
    store.append(table, rows_df(spark, day1 + day2))
    v_before = store.version(table)
    new_day2 = [("b", ts(2013, 1, 2, 5), dt.date(2013, 1, 2), 20.0)]
    r1 = store.replace_where(table, rows_df(spark, new_day2), Match.of(d=[dt.date(2013, 1, 2)]))
    assert r1.version == v_before + 1 and r1.files_removed >= 1
    after_first = store.read(table)
    r2 = store.replace_where(table, rows_df(spark, new_day2), Match.of(d=[dt.date(2013, 1, 2)]))
    assert r2.version == v_before + 2
    assert_df_equality(store.read(table), after_first, ignore_row_order=True)
    assert_df_equality(store.read(table), rows_df(spark, day1 + new_day2), ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("held", [True, False], ids=["day-held", "day-new"])
def test_replace_refuses_rows_outside_partitions(spark, store, table, held):
    """Also when no file holds the replaced day (the connector then writes the replace as an append)."""
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    before = store.version(table)
    stray = rows_df(spark, [("x", ts(2013, 1, 3), dt.date(2013, 1, 3), 1.0)])
    with pytest.raises(ValueError, match="not covered by the replace predicate"):
        store.replace_where(table, stray, Match.of(d=[dt.date(2013, 1, 1) if held else dt.date(2013, 1, 2)]))
    assert store.version(table) == before
    # the refused run's files are gone
    assert not unreferenced_files(store, table)


def test_replace_empty_partition_and_overwrite(spark, store, table):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    store.replace_where(table, rows_df(spark, []), Match.of(d=[dt.date(2013, 1, 1)]))
    assert store.read(table).count() == 0
    rows = [("z", ts(2013, 2, 1), dt.date(2013, 2, 1), 9.0)]
    store.overwrite(table, rows_df(spark, rows))
    assert_df_equality(store.read(table), rows_df(spark, rows), ignore_nullable=True)


def test_merge_upserts_on_keys(spark, store):
    name = "test/merge"
    schema = T.StructType([T.StructField("k", T.StringType(), False), T.StructField("v", T.LongType(), True)])
    store.create_table(name, schema, kind="feature_group")
    store.append(name, spark.createDataFrame([("a", 1), ("b", 2)], schema))
    result = store.merge(name, spark.createDataFrame([("b", 20), ("c", 3)], schema), keys=["k"])
    assert result.version == 2
    expected = spark.createDataFrame([("a", 1), ("b", 20), ("c", 3)], schema)
    assert_df_equality(store.read(name), expected, ignore_row_order=True, ignore_nullable=True)


def test_time_travel_by_version_and_timestamp(spark, store, table):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    time.sleep(1.1)
    between = dt.datetime.now(UTC)
    time.sleep(1.1)
    store.append(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]))
    assert store.read(table, version=1).count() == 1
    assert store.read(table, version=2).count() == 2
    assert store.version_at(table, between) == 1
    assert [r.k for r in store.read(table, timestamp=between).collect()] == ["a"]
    first_commit = min(h["timestamp"] for h in store.history(table))
    with pytest.raises(VersionNotFoundError, match="did not exist at"):
        store.read(table, timestamp=first_commit - dt.timedelta(days=1))
    with pytest.raises(VersionNotFoundError, match="no version 7"):
        store.read(table, version=7)


def test_history_has_run_and_pipeline(spark, store, table):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]),
                 run=RunContext(run_id="run-hist-1", pipeline="features"), metadata={"fti.note": "hello"})
    last = store.history(table)[0]
    assert last["version"] == 1
    assert last["run_id"] == "run-hist-1"
    assert last["pipeline"] == "features"
    assert last["fti.operation"] == "append"
    assert last["fti.note"] == "hello"


def test_schema_mismatch_errors_name_the_column(spark, store, table):
    bad_type = spark.createDataFrame([("a", "2013-01-01", dt.date(2013, 1, 1), 1.0)],
                                     "k string, ts string, d date, v double")
    with pytest.raises(SchemaMismatchError, match="column 'ts' has type string, the table has timestamp"):
        store.append(table, bad_type)
    missing = spark.createDataFrame([("a", dt.date(2013, 1, 1))], "k string, d date")
    with pytest.raises(SchemaMismatchError, match="missing column\\(s\\) 'ts', 'v'"):
        store.append(table, missing)
    extra = spark.createDataFrame([("a", None, dt.date(2013, 1, 1), 1.0, 5)],
                                  "k string, ts timestamp, d date, v double, w int")
    with pytest.raises(SchemaMismatchError, match="unknown column\\(s\\) 'w'"):
        store.append(table, extra)
    nulls = spark.createDataFrame([(None, None, dt.date(2013, 1, 1), 1.0)], "k string, ts timestamp, d date, v double")
    with pytest.raises(SchemaMismatchError, match="'k' has (1 )?null row"):
        store.append(table, nulls)
    assert store.version(table) == 0


def test_timestamp_ntz_refused(spark, store):
    schema = T.StructType([T.StructField("t", T.TimestampNTZType(), True)])
    with pytest.raises(SchemaMismatchError, match="TimestampNTZ"):
        store.create_table("test/ntz", schema, kind="raw")


def test_schema_evolution_adds_column(spark, store, table):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    wider = spark.createDataFrame([("b", ts(2013, 1, 2), dt.date(2013, 1, 2), 2.0, 7)],
                                  "k string, ts timestamp, d date, v double, w int")
    store.append(table, wider, allow_new_columns=True)
    assert store.schema(table).fieldNames() == ["k", "ts", "d", "v", "w"]
    got = {r.k: r.w for r in store.read(table).collect()}
    assert got == {"a": None, "b": 7}
    assert store.read(table, version=1).columns == ["k", "ts", "d", "v"]


def test_transaction_id_skips_retried_commit_and_watermark_survives_checkpoint(spark, store):
    name = "test/txn"
    store.checkpoint_interval = 2
    try:
        store.create_table(name, SCHEMA, kind="feature_group", partition_by=["d"])
    finally:
        store.checkpoint_interval = 10
    df = rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)])
    first = store.append(name, df, txn=Txn("features:test/txn", 1), watermarks={"raw/flights": 3})
    again = store.append(name, df, txn=Txn("features:test/txn", 1), watermarks={"raw/flights": 3})
    assert again.skipped and again.version == first.version
    assert store.read(name).count() == 1
    for i in range(2, 6):
        store.append(name, df, txn=Txn("features:test/txn", i), watermarks={"raw/flights": 3 + i})
    assert list(Path(store.path(name), "_delta_log").glob("*.checkpoint.parquet")), "expected a checkpoint"
    assert store.watermark(name, "raw/flights") == 8
    assert store.transaction_version(name, "features:test/txn") == 5
    # read the state from the checkpoint alone: remove the JSON commits it covers
    from deltalake import DeltaTable

    log_dir = Path(store.path(name), "_delta_log")
    cp_version = max(int(p.name.split(".")[0]) for p in log_dir.glob("*.checkpoint.parquet"))
    for p in log_dir.glob("*.json"):
        if int(p.name.split(".")[0]) <= cp_version:
            p.unlink()
    assert DeltaTable(store.uri(name)).transaction_version("raw/flights".join(["fti.watermark:", ""])) == 8


def test_other_readers_match_spark_at_every_version(spark, store, table):
    import polars as pl
    from deltalake import DeltaTable

    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1, 1, 2, 3, 456789), dt.date(2013, 1, 1), 1.0)]))
    store.append(table, rows_df(spark, [("b", ts(2013, 1, 2), dt.date(2013, 1, 2), None)]))
    store.replace_where(table, rows_df(spark, [("c", ts(2013, 1, 1), dt.date(2013, 1, 1), 3.0)]),
                        Match.of(d=[dt.date(2013, 1, 1)]))
    for version in range(store.version(table) + 1):
        by_spark = sorted(tuple(r) for r in store.read(table, version=version).collect())
        by_rs = DeltaTable(store.uri(table), version=version).to_pyarrow_table().to_pylist()
        by_polars = pl.read_delta(store.uri(table), version=version).to_dicts()

        def norm(items):
            return sorted((r["k"], r["ts"], r["d"], r["v"]) for r in items)

        spark_norm = sorted((k, t.replace(tzinfo=UTC) if t else None, d, v) for k, t, d, v in by_spark)
        assert norm(by_rs) == spark_norm, version
        assert norm(by_polars) == spark_norm, version


def test_compaction_keeps_content(spark, store, table):
    for i in range(3):
        store.append(table, rows_df(spark, [(f"k{i}", ts(2013, 1, 1), dt.date(2013, 1, 1), float(i))]))
    before = store.read(table).collect()
    result = store.compact(table)
    assert result.files_removed == 3 and result.files_added == 1
    assert sorted(before) == sorted(store.read(table).collect())
    assert len(store.file_uris(table)) == 1


def test_vacuum_keeps_pinned_versions_and_force_names_the_models(spark, store, table):
    """Vacuum deletes the files no version within the retention needs, except the pinned versions' (the rebuild
    of a registered model's training set keeps working); --force deletes those too and names the models."""
    for i, k in enumerate(["a", "b", "c"]):
        store.overwrite(table, rows_df(spark, [(k, ts(2013, 1, 1), dt.date(2013, 1, 1), float(i))]))
    v1, v2 = (Path(store.file_uris(table, version=v)[0]).name for v in (1, 2))
    pin = Pin(table=table, version=1, owner="models:/flights_delay/3")
    result = store.vacuum(table, retention_hours=0, pins=[pin])
    assert {Path(p).name for p in result["deleted"]} == {v2}
    assert result["kept_pins"] == [pin] and result["broken_pins"] == []
    assert [r.k for r in store.read(table, version=1).collect()] == ["a"]  # still rebuildable
    result = store.vacuum(table, retention_hours=0, pins=[pin], force=True)
    assert result["broken_pins"] == [pin] and v1 in {Path(p).name for p in result["deleted"]}
    assert [r.k for r in store.read(table).collect()] == ["c"]
    # a pin of the latest version never loses its files
    latest = Pin(table, store.version(table), "m")
    assert store.vacuum(table, retention_hours=0, pins=[latest], force=True)["broken_pins"] == []


def test_missing_table_error(store):
    with pytest.raises(TableNotFoundError, match="does not exist"):
        store.read("test/nope")


@pytest.mark.parametrize("leftover", ["empty log folder", "commits folder", "temporary commit file"])
def test_a_creation_killed_before_its_first_commit_does_not_block_the_next(spark, store, leftover):
    """A process killed while it creates a table leaves the ``_delta_log`` folder without a commit (found by
    test_killed_runs' random kill: every rerun then failed with DELTA_TABLE_NOT_FOUND). The next creation makes
    the table, and the leftover of a real table (one with a commit) is never taken for such a folder."""
    name = f"test/half_created_{leftover.replace(' ', '_')}"
    log_dir = Path(store.path(name).local) / "_delta_log"
    log_dir.mkdir(parents=True)
    if leftover == "commits folder":
        (log_dir / "_commits").mkdir()
    if leftover == "temporary commit file":
        (log_dir / ".00000000000000000000.json.0b5c8a1e.tmp").write_text('{"commitInfo":{}}\n')
    assert not store.exists(name)

    assert store.create_table(name, SCHEMA, kind="raw", partition_by=["d"]) == 0
    assert store.version(name) == 0 and store.read(name).count() == 0
    store.append(name, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    assert [r.k for r in store.read(name).collect()] == ["a"]


def test_fault_raise_after_files_leaves_table_and_no_orphans(spark, store, table, monkeypatch):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    before = store.version(table)
    monkeypatch.setenv("FTI_FAULT", "after_files:raise")
    from fti.errors import FaultInjected

    with pytest.raises(FaultInjected):
        store.append(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]),
                     run=RunContext(run_id="run-faulty-1"))
    monkeypatch.delenv("FTI_FAULT")
    assert store.version(table) == before
    assert not unreferenced_files(store, table)


def _run_helper(store, table, tag, n, env_extra=None, *, txn=None, replace_day=None, inputs=None):
    env = dict(os.environ, **(env_extra or {}))
    extra = (["--txn", txn] if txn else []) + (["--replace-day", replace_day.isoformat()] if replace_day else [])
    extra += ["--inputs", inputs] if inputs else []
    return subprocess.Popen([sys.executable, str(HELPER), str(store.home), table, tag, str(n), store.backend_name,
                             *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_write_leaves_previous_version(spark, store, table):
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    before = store.read(table).collect()
    proc = _run_helper(store, table, "killed", 5, {"FTI_FAULT": "after_files:kill"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -9, err[-2000:]
    assert store.version(table) == 1
    assert sorted(store.read(table).collect()) == sorted(before)
    # orphans of the killed run exist on disk but no version references them; the next write works
    assert unreferenced_files(store, table), "the kill happened after the files were written: they must be orphans"
    store.append(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]))
    assert sorted(r.k for r in store.read(table).collect()) == ["a", "b"]


def test_concurrent_appends_from_two_processes_both_land(store, table):
    procs = [_run_helper(store, table, tag, 20) for tag in ("p1", "p2")]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    keys = sorted(r.k for r in store.read(table).collect())
    assert len(keys) == 40 and len(set(keys)) == 40
    appends = [h for h in store.history(table) if h.get("fti.operation") == "append"]
    assert sorted(h["pipeline"] for h in appends) == ["proc-p1", "proc-p2"]


def _commit_actions(store, table, version):
    import json

    text = (store.path(table) / "_delta_log" / f"{version:020d}.json").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_guard_and_every_watermark_are_in_the_data_commit(spark, store, table):
    """A feature run's commit carries its retry guard and one watermark per raw source it read, in the SAME
    commit as its data (the connector's df.write takes only one application transaction)."""
    result = store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]),
                          txn=Txn("features:t", 7), watermarks={"raw_flights": 7, "raw_weather": 0})
    actions = _commit_actions(store, table, result.version)
    txns = {a["txn"]["appId"]: a["txn"]["version"] for a in actions if "txn" in a}
    assert txns == {"features:t": 7, "fti.watermark:raw_flights": 7, "fti.watermark:raw_weather": 0}
    assert any("add" in a for a in actions)
    # version 0 is a real version, not "absent"
    assert store.watermark(table, "raw_weather") == 0 and store.is_applied(table, Txn("fti.watermark:raw_weather", 0))
    again = store.append(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]),
                         txn=Txn("features:t", 7), watermarks={"raw_flights": 7})
    assert again.skipped and store.version(table) == result.version


def _hold(tmp_path, name):
    """A FTI_FAULT value that holds a writer between its read and its commit until the test releases it."""
    release = tmp_path / name
    return release, {"FTI_FAULT": f"after_files:wait={release}"}


def _wait_reached(release, proc):
    deadline = time.time() + 240
    while not Path(f"{release}.reached").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "the held writer never reached its commit"
        time.sleep(0.2)


def test_lost_race_on_the_same_guard_is_skipped_not_an_error(spark, store, table, tmp_path):
    """Two runs with the same transaction guard race for real: the held one read the table before the other
    committed. It reports skipped, commits nothing, and leaves none of its files behind."""
    release, env = _hold(tmp_path, "release-guard")
    proc = _run_helper(store, table, "held", 3, env | {"FTI__DELTA__COMPACT_ABOVE_FILES": "0"}, txn="features:race:4")
    _wait_reached(release, proc)
    won = store.append(table, rows_df(spark, [("winner", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]),
                       txn=Txn("features:race", 4))
    release.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == f"skipped {won.version}", out
    assert store.version(table) == won.version
    assert [r.k for r in store.read(table).collect()] == ["winner"]
    assert not unreferenced_files(store, table), "the losing run's files must be removed"


@pytest.mark.parametrize("held", [True, False], ids=["day-held", "day-new"])
def test_stale_replace_is_refused_not_landed(spark, store, table, tmp_path, held):
    """A replace read the table, then another writer added rows of the day it replaces: committing would drop
    them (or land stale data). It fails, commits nothing, and the other writer's rows stay. Also when no file
    held the day at the replace's read (the connector then writes the replace as an append that read the table)."""
    day = dt.date(2013, 1, 1)
    store.append(table, rows_df(spark, [("old", ts(2013, 1, 1), day if held else dt.date(2013, 1, 2), 1.0)]))
    release, env = _hold(tmp_path, "release-stale")
    proc = _run_helper(store, table, "stale", 2, env, replace_day=day)
    _wait_reached(release, proc)
    store.append(table, rows_df(spark, [("late", ts(2013, 1, 1, 3), day, 2.0)]))
    release.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3 and "ConcurrentRunError" in out, out + err[-3000:]
    assert sorted(r.k for r in store.read(table).collect()) == ["late", "old"]
    assert not unreferenced_files(store, table)


def test_replace_of_days_no_file_holds_removes_nothing_and_depends_on_the_table(spark, store, table):
    """The usual incremental run replaces days that no file holds yet: the rows land, nothing is removed, and the
    commit is not a blind append (a concurrent writer's rows make it conflict), on both backends."""
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    new = [("b", ts(2013, 1, 2, 5), dt.date(2013, 1, 2), 2.0), ("c", ts(2013, 1, 3, 6), dt.date(2013, 1, 3), 3.0)]
    result = store.replace_where(table, rows_df(spark, new), Match.of(d=[dt.date(2013, 1, 2), dt.date(2013, 1, 3)]),
                                 txn=Txn("features:new-days", 1), watermarks={"raw_flights": 1})
    assert result.files_removed == 0 and result.rows == 2
    assert_df_equality(store.read(table), rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0), *new]),
                       ignore_row_order=True, ignore_nullable=True)
    actions = _commit_actions(store, table, result.version)
    assert not any("remove" in a for a in actions)
    assert {a["txn"]["appId"] for a in actions if "txn" in a} == {"features:new-days", "fti.watermark:raw_flights"}
    info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    assert info.get("isBlindAppend") is not True
    assert store.history(table, limit=1)[0]["fti.predicate"] == Match.of(d=[dt.date(2013, 1, 2), dt.date(2013, 1, 3)]).sql()


def test_changes_see_through_a_compaction(spark, store, table):
    """Rows added after a reader's watermark stay findable after another writer compacted their files."""
    from pyspark.sql import functions as F

    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]), run=RunContext("land-1"))
    mark = store.version(table)
    store.append(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]), run=RunContext("land-2"))
    compacted = store.compact(table)
    assert compacted.files_removed == 2 and compacted.files_added == 1
    changes = store.changes(table, after=mark, upto=store.version(table))
    assert changes.batches == {"land-2": mark + 1}
    assert len(changes.files) == 1, "the compacted file carries the new rows"
    assert [r.k for r in store.read_files(table, list(changes.files)).where(F.col("k") == "b").collect()] == ["b"]
    # a compaction of files that held no new rows adds nothing new
    later = store.version(table)
    store.compact(table)
    assert store.changes(table, after=later, upto=store.version(table)).files == {}


def test_store_compacts_past_its_file_limit(spark, store, table):
    limit = store.compact_above_files
    store.compact_above_files = 3
    try:
        for i in range(4):
            store.append(table, rows_df(spark, [(f"k{i}", ts(2013, 1, 1), dt.date(2013, 1, 1), float(i))]))
    finally:
        store.compact_above_files = limit
    assert len(store.file_uris(table)) <= 3
    assert sorted(r.k for r in store.read(table).collect()) == ["k0", "k1", "k2", "k3"]
    assert store.history(table, limit=1)[0]["fti.operation"] == "compact"


def test_an_error_after_the_commit_landed_keeps_its_files(spark, store, table, monkeypatch):
    """An error raised once the log entry is written (a failing post-commit hook such as the checkpoint, an
    interrupt while the call returns) must not delete the files the new version references."""
    from fti.errors import FaultInjected

    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    before = store.version(table)
    monkeypatch.setenv("FTI_FAULT", "after_log_write:raise")
    with pytest.raises(FaultInjected):
        store.append(table, rows_df(spark, [("b", ts(2013, 1, 2), dt.date(2013, 1, 2), 2.0)]))
    monkeypatch.delenv("FTI_FAULT")
    assert store.version(table) == before + 1
    missing = [u for u in store.file_uris(table) if not Path(u.removeprefix("file://")).is_file()]
    assert not missing, f"the committed version points at deleted files: {missing}"
    assert sorted(r.k for r in store.read(table).collect()) == ["a", "b"]


def test_vacuum_with_a_fractional_retention_never_breaks_a_pin(spark, store, table):
    """The pin check and the deletion use the same retention: a fraction of an hour is rounded up for both
    (it used to be checked as 0.01 h and deleted as int(0.01) = 0 h)."""
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    store.overwrite(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]))
    pin = Pin(table=table, version=1, owner="models:/m/1")
    result = store.vacuum(table, retention_hours=0.01, pins=[pin], force=True)
    assert result["deleted"] == [] and result["broken_pins"] == []
    assert [r.k for r in store.read(table, version=1).collect()] == ["a"]


def test_vacuum_defaults_to_the_retention_the_table_declares(spark, store, table):
    """A store configured with a shorter retention than a table declares vacuums by the table's."""
    import json

    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    result = store.overwrite(table, rows_df(spark, [("b", ts(2013, 1, 1), dt.date(2013, 1, 1), 2.0)]))
    # the file of version 1 was removed two days ago (by the clock of the remove action vacuum reads)
    commit = store.path(table) / "_delta_log" / f"{result.version:020d}.json"
    lines = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    for action in lines:
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = two_days_ago
    commit.write_text("\n".join(json.dumps(a) for a in lines) + "\n")
    configured = store.retention_days
    store.retention_days = 1  # the config says one day; the table says 365
    try:
        assert store.vacuum(table)["deleted"] == []
    finally:
        store.retention_days = configured
    assert [r.k for r in store.read(table, version=1).collect()] == ["a"]


def test_a_backfill_from_older_raw_never_replaces_newer_rows(spark, store, table, tmp_path):
    """A backfill read raw at v5 and is held before its commit; an incremental run commits the same day from raw
    v7 (its watermark says v7 is covered). The backfill's commit is refused; the newer rows stay. A write whose
    input is already older than what the table covers is refused at once."""
    day = dt.date(2013, 1, 1)
    store.append(table, rows_df(spark, [("v4", ts(2013, 1, 1), day, 1.0)]), watermarks={"raw": 4})
    release, env = _hold(tmp_path, "release-backfill")
    proc = _run_helper(store, table, "backfill", 2, env, replace_day=day, inputs="raw=5")
    _wait_reached(release, proc)
    store.replace_where(table, rows_df(spark, [("v7", ts(2013, 1, 1), day, 7.0)]), Match.of(d=[day]),
                        watermarks={"raw": 7})
    release.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3 and "ConcurrentRunError" in out, out + err[-3000:]
    assert [r.k for r in store.read(table).collect()] == ["v7"]
    assert not unreferenced_files(store, table)
    from fti.errors import ConcurrentRunError

    with pytest.raises(ConcurrentRunError, match="raw v5 \\(the table covers v7\\)"):
        store.replace_where(table, rows_df(spark, [("old", ts(2013, 1, 1), day, 5.0)]), Match.of(d=[day]),
                            inputs={"raw": 5})
    assert [r.k for r in store.read(table).collect()] == ["v7"]


def test_vacuum_removes_orphans_of_killed_runs_but_never_a_running_writers_files(spark, store, table):
    """Files no version references (a killed run's) go with vacuum once they are older than the retention and
    a day; a younger unreferenced file may be a writer's that has not committed yet, and stays."""
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    live = store.file_uris(table)
    folder = Path(live[0].removeprefix("file://")).parent
    old_orphan, fresh = folder / "part-00000-killed-run.snappy.parquet", folder / "part-00000-running.snappy.parquet"
    for orphan in (old_orphan, fresh):
        orphan.write_bytes(Path(live[0].removeprefix("file://")).read_bytes())
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_orphan, (two_days_ago, two_days_ago))
    result = store.vacuum(table, retention_hours=0)
    assert [Path(p).name for p in result["deleted"]] == [old_orphan.name]
    assert not old_orphan.exists() and fresh.exists()
    assert store.file_uris(table) == live and [r.k for r in store.read(table).collect()] == ["a"]


def test_an_interrupt_while_the_connector_commits_deletes_no_file_the_commit_references(spark, store, table, tmp_path,
                                                                                      monkeypatch):
    """Ctrl-C while the main thread waits in py4j for the connector's commit aborts only the Python side: the
    JVM goes on and writes the commit. The clean-up of a failed write must not delete the files that commit
    then references (the interrupt is held until the commit call returns, then raised)."""
    import signal
    import threading

    from fti.store.native import _Scala

    if store.backend_name == "delta-rs":
        pytest.skip("the bridge commits in this process: an interrupt arrives once the commit call returned")
    store.append(table, rows_df(spark, [("a", ts(2013, 1, 1), dt.date(2013, 1, 1), 1.0)]))
    before = store.version(table)
    scala = _Scala(spark)
    spark.conf.set("spark.databricks.delta.commitLock.enabled", "true")
    # the connector commits under the table's snapshot lock (as does startTransaction): once the write's files
    # are written, a second thread takes it, so that the main thread's commit call waits in the JVM while the
    # interrupt arrives; released, the JVM writes the commit
    lock = scala.delta.DeltaLog.forTable(scala.jspark, store.uri(table)).snapshotLock()
    release_files = tmp_path / "files-written"
    monkeypatch.setenv("FTI_FAULT", f"after_files@{table}:wait={release_files}")
    release = threading.Event()

    def hold_then_interrupt() -> None:
        deadline = time.monotonic() + 60
        while not Path(f"{release_files}.reached").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        lock.lock()  # a JVM thread of its own: py4j pins one to each Python thread
        try:
            release_files.touch()
            while not lock.hasQueuedThreads() and time.monotonic() < deadline:
                time.sleep(0.05)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # what Ctrl-C does
            release.wait(2.0)  # the Python side has given up on the commit by now (on the old code)
        finally:
            lock.unlock()

    holder = threading.Thread(target=hold_then_interrupt, daemon=True)
    holder.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            store.append(table, rows_df(spark, [("b", ts(2013, 1, 2), dt.date(2013, 1, 2), 2.0)]))
    finally:
        monkeypatch.delenv("FTI_FAULT")
        holder.join(60)
        spark.conf.unset("spark.databricks.delta.commitLock.enabled")
    deadline = time.monotonic() + 30
    while store.version(table) == before and time.monotonic() < deadline:  # the JVM may still be committing
        time.sleep(0.2)
    assert store.version(table) == before + 1, "the commit the interrupt came during landed"
    missing = [u for u in store.file_uris(table) if not Path(u.removeprefix("file://")).is_file()]
    assert not missing, f"the committed version points at deleted files: {missing}"
    assert sorted(r.k for r in store.read(table).collect()) == ["a", "b"]
