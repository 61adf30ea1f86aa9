"""A corpus of bad input files landed with ``fti ingest --file``: each gets a clear message naming what and
where; recoverable rows land and are quarantined with their reason; an unusable file lands nothing; a batch
with too many bad rows changes no feature table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from conftest import FEATURE_TABLES, copy_home, store_for

LAND_NOW = "2024-02-25T12:00:00Z"
RUN_NOW = "2024-02-26T00:00:00Z"
RUN_CLOCK = "2024-02-26T00:00:00+00:00"  # how a reason names the run's clock
HEADER = ("entity_id", "event_ts", "kind", "amount")


def _csv(path: Path, rows, header=HEADER) -> Path:
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path


def _good(n: int, entity: str = "e000001") -> tuple[str, str, str, str]:
    return (entity, f"2024-02-21T10:00:{n:02d}Z", "activity", "12.5")


# file -> (rows, the quarantine reasons they must produce)
RECOVERABLE = {
    "null_keys.csv": ([("", "2024-02-21T09:00:00Z", "activity", "1.0"), ("NA", "2024-02-21T09:00:01Z", "activity", "1.0"),
                       ("  ", "2024-02-21T09:00:02Z", "activity", "1.0"), _good(1)],
                      {"null or empty key: entity_id": 3}),
    "timestamp_formats.csv": ([("e000002", "2024-02-21 10:00:00", "activity", "1.0"),
                               ("e000002", "21/02/2024 10:00", "activity", "1.0"),
                               ("e000002", "1708509600", "activity", "1.0"),
                               ("e000002", "2024-02-21T10:00:00+02:00", "activity", "1.0"), _good(2)],
                              {"unparseable event_ts: '2024-02-21 10:00:00' (expected YYYY-MM-DDTHH:MM:SSZ)": 1,
                               "unparseable event_ts: '21/02/2024 10:00' (expected YYYY-MM-DDTHH:MM:SSZ)": 1, "unparseable event_ts: '1708509600' (expected YYYY-MM-DDTHH:MM:SSZ)": 1,
                               "unparseable event_ts: '2024-02-21T10:00:00+02:00' (expected YYYY-MM-DDTHH:MM:SSZ)": 1}),
    "timestamp_range.csv": ([("e000003", "2999-01-01T00:00:00Z", "activity", "1.0"),
                             ("e000003", "1969-12-31T23:59:59Z", "activity", "1.0"), _good(3)],
                            {f"event_ts after the run's clock ({RUN_CLOCK})": 1, "event_ts before 1970-01-01": 1}),
    "nan_inf.csv": ([("e000004", "2024-02-21T11:00:00Z", "activity", v) for v in ("NaN", "inf", "-Infinity", "1e400")]
                    + [_good(4)],
                    {"amount is not a finite number: NaN": 1, "amount is not a finite number: inf": 1,
                     "amount is not a finite number: -Infinity": 1, "amount is not a finite number: 1e400": 1}),
    "duplicates.csv": ([_good(5)] * 3, {"duplicate row": 2}),
}
REFUSED = {
    "extra_column.csv": "does not match source 'raw_events' of system synthetic: unknown column(s) channel",
    "missing_column.csv": "does not match source 'raw_events' of system synthetic: missing column(s) amount",
    "zero_rows.csv": "has no rows; nothing was landed",
    "zero_rows.parquet": "has no rows; nothing was landed",
    "latin1.csv": "is not UTF-8: byte 0xe9 at offset 105 (line 3); nothing was landed",
    "truncated.parquet": "cannot read",
}


def _write_refused(folder: Path) -> dict[str, Path]:
    files = {
        "extra_column.csv": _csv(folder / "extra_column.csv", [(*_good(6), "web")], HEADER + ("channel",)),
        "missing_column.csv": _csv(folder / "missing_column.csv", [_good(7)[:3]], HEADER[:3]),
        "zero_rows.csv": _csv(folder / "zero_rows.csv", []),
    }
    empty = pa.table({c: pa.array([], pa.string()) for c in HEADER})
    pq.write_table(empty, folder / "zero_rows.parquet")
    files["zero_rows.parquet"] = folder / "zero_rows.parquet"
    latin = folder / "latin1.csv"
    latin.write_bytes(b"entity_id,event_ts,kind,amount\ne000009,2024-02-21T10:00:00Z,activity,1.0\n"
                      b"e000009,2024-02-21T10:00:01Z,caf\xe9,1.0\n")
    files["latin1.csv"] = latin
    whole = folder / "whole.parquet"
    pq.write_table(pa.table({c: pa.array([v] * 1000) for c, v in zip(HEADER, _good(8))}), whole)
    data = whole.read_bytes()
    (folder / "truncated.parquet").write_bytes(data[: len(data) // 2])
    files["truncated.parquet"] = folder / "truncated.parquet"
    return files


@pytest.fixture(scope="module")
def corpus_home(spark, featured_home, tmp_path_factory) -> Path:
    return copy_home(featured_home, tmp_path_factory.mktemp("corpus") / "h")


def _fti(capsys, home: Path, *args: str) -> tuple[int, str, str]:
    from fti.cli import main

    capsys.readouterr()
    code = main([*args, "--system", "synthetic", "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def _land(capsys, home: Path, path: Path) -> tuple[int, str, str]:
    return _fti(capsys, home, "ingest", "--source", "raw_events", "--file", str(path), "--now", LAND_NOW)


def test_unusable_files_are_refused_whole_with_the_file_named(spark, corpus_home, tmp_path, capsys):
    store = store_for(spark, corpus_home)
    before = {t: store.version(t) for t in store.list_tables()}
    for name, path in _write_refused(tmp_path).items():
        code, out, err = _land(capsys, corpus_home, path)
        assert code == 2, (name, out, err)
        first = err.splitlines()[0]
        assert first.startswith("error: ") and str(path) in first and REFUSED[name] in first, (name, err)
        assert "Traceback" not in err and "hint: " in err
        assert {t: store.version(t) for t in store.list_tables()} == before, name


def test_recoverable_rows_land_and_are_quarantined_with_their_reason(spark, corpus_home, tmp_path, capsys):
    from pyspark.sql import functions as F

    store = store_for(spark, corpus_home)
    landed: dict[int, str] = {}
    for name, (rows, _) in RECOVERABLE.items():
        code, out, err = _land(capsys, corpus_home, _csv(tmp_path / name, rows))
        assert code == 0, (name, err)
        assert f"landed {len(rows)} rows of {tmp_path / name} into synthetic/raw_events" in out
        landed[store.version("synthetic/raw_events")] = name
    # wrong column types that convert cleanly are accepted; the rest quarantined with the value named
    typed = pa.table({"entity_id": pa.array([8, 8, 8], pa.int64()),
                      "event_ts": ["2024-02-21T12:00:00Z", "2024-02-21T12:00:01Z", "2024-02-21T12:00:02Z"],
                      "kind": ["activity"] * 3, "amount": ["abc", "12,5", "3.5"]})
    pq.write_table(typed, tmp_path / "wrong_types.parquet")
    assert _land(capsys, corpus_home, tmp_path / "wrong_types.parquet")[0] == 0
    landed[store.version("synthetic/raw_events")] = "wrong_types.parquet"
    # typed timestamps become the contract's text: with a zone, without one (taken as UTC); a fraction is kept
    # and so quarantined with its value, not silently dropped
    at = [dt.datetime(2024, 2, 21, 13, 0, 0), dt.datetime(2024, 2, 21, 13, 0, 1),
          dt.datetime(2024, 2, 21, 13, 0, 2, 500000)]
    for name, ts_type in (("typed_utc.parquet", pa.timestamp("us", tz="UTC")),
                          ("typed_naive.parquet", pa.timestamp("us"))):
        entity = name.removesuffix(".parquet")
        pq.write_table(pa.table({"entity_id": [entity] * 3, "event_ts": pa.array(at, ts_type),
                                 "kind": ["activity"] * 3, "amount": ["2.0", "4.0", "6.0"]}), tmp_path / name)
        assert _land(capsys, corpus_home, tmp_path / name)[0] == 0
        landed[store.version("synthetic/raw_events")] = name
    # one entity with 20,000 events in a day
    huge = [("e_huge", f"2024-02-21T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", "activity", "1.0")
            for i in range(20000)]
    assert _land(capsys, corpus_home, _csv(tmp_path / "huge_entity.csv", huge))[0] == 0
    landed[store.version("synthetic/raw_events")] = "huge_entity.csv"

    code, out, err = _fti(capsys, corpus_home, "features", "--now", RUN_NOW)
    assert code == 0, err
    expected = {(name, reason, n) for name, (_, reasons) in RECOVERABLE.items() for reason, n in reasons.items()}
    expected |= {("wrong_types.parquet", "unparseable amount: 'abc'", 1),
                 ("wrong_types.parquet", "unparseable amount: '12,5'", 1),
                 ("typed_utc.parquet", "unparseable event_ts: '2024-02-21T13:00:02.500000Z' (expected YYYY-MM-DDTHH:MM:SSZ)", 1),
                 ("typed_naive.parquet", "unparseable event_ts: '2024-02-21T13:00:02.500000Z' (expected YYYY-MM-DDTHH:MM:SSZ)", 1)}
    q = (store.read("synthetic/quarantine").where(F.col("raw_version").isin(list(landed)))
         .groupBy("raw_version", "reason").count().collect())
    assert {(landed[r.raw_version], r.reason, r["count"]) for r in q} == expected
    # the good rows of those files were featurized, the huge entity's whole day included
    activity = store.read("synthetic/activity").where(F.col("entity_id").isin("8", "e_huge", "typed_utc",
                                                                             "typed_naive"))
    want = spark.createDataFrame(
        [("8", dt.datetime(2024, 2, 21, 12, 0, 2, tzinfo=dt.timezone.utc), 1, 3.5),
         ("typed_utc", dt.datetime(2024, 2, 21, 13, 0, 1, tzinfo=dt.timezone.utc), 2, 3.0),
         ("typed_naive", dt.datetime(2024, 2, 21, 13, 0, 1, tzinfo=dt.timezone.utc), 2, 3.0),
         ("e_huge", dt.datetime(2024, 2, 21, 5, 33, 19, tzinfo=dt.timezone.utc), 20000, 1.0)],
        "entity_id string, event_time timestamp, events_7d bigint, mean_amount_7d double")
    assert_df_equality(activity.where(F.col("day") == dt.date(2024, 2, 21)).select(*want.columns), want,
                       ignore_row_order=True, ignore_nullable=True)


def test_a_batch_of_only_bad_rows_changes_no_feature_table(spark, corpus_home, tmp_path, capsys):
    store = store_for(spark, corpus_home)
    rows = [("", f"2024-02-22T00:00:{i:02d}Z", "activity", "1.0") for i in range(40)]
    assert _land(capsys, corpus_home, _csv(tmp_path / "all_bad.csv", rows))[0] == 0
    raw_version = store.version("synthetic/raw_events")
    before = {t: store.version(t) for t in FEATURE_TABLES if t != "synthetic/quarantine"}
    code, out, err = _fti(capsys, corpus_home, "features", "--now", RUN_NOW)
    assert code == 3
    assert "error: 40 of 40 new rows of synthetic/raw_events failed validation (100.0% > 5.0%); " \
           "feature tables were not changed" in err
    assert "Traceback" not in err
    assert {t: store.version(t) for t in before} == before
    q = store.read("synthetic/quarantine").where(f"raw_version = {raw_version}")
    assert q.count() == 40 and {r.reason for r in q.select("reason").distinct().collect()} == \
        {"null or empty key: entity_id"}
    # the rejected batch stays rejected: a plain rerun refuses it again (it used to exit 0 and featurize)
    code, out, err = _fti(capsys, corpus_home, "features", "--now", RUN_NOW)
    assert code == 3, out + err
    assert "was rejected (40 of 40 new rows failed validation, 100.0% > 5.0%) and is not accepted" in err
    assert "hint: inspect the rows in synthetic/quarantine; then accept the batch with " \
           "`fti features accept --system synthetic --source raw_events`, or raise features.max_bad_share" in err
    assert {t: store.version(t) for t in before} == before
    code, out, err = _fti(capsys, corpus_home, "features", "accept", "--source", "raw_events")
    assert code == 0 and f"up to raw version {raw_version}" in out, err
    code, out, err = _fti(capsys, corpus_home, "features", "--now", RUN_NOW)
    assert code == 0, err
    assert store.read("synthetic/quarantine").where(f"raw_version = {raw_version}").count() == 40
