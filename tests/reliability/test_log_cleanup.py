"""After Delta's log cleanup, feature runs still find every row.

The log is aged as ``delta.logRetentionDuration`` does it: a checkpoint at the latest raw version, then the commit
files before it are removed. On the old code the fallback snapshot diff carried no landing batches, so a run with
a reader without a watermark (a new group, or a first run) found nothing: "up to date", exit 0, forever; a reader
older than the cleanup got no rows either.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from chispa import assert_df_equality
from conftest import (ENTITIES, FEATURE_TABLES, NOW_DT, RUN_COLUMNS, SYSTEM, THROUGH, _sortable, assert_same_rows,
                      copy_home, settings_for, store_for)

LATER = THROUGH + dt.timedelta(days=14)  # two weekly batches: the first one's commit file goes
LATER_NOW = NOW_DT + dt.timedelta(days=14)


def age_log(store, table: str) -> int:
    """A checkpoint at the table's version, then its earlier commit files removed. Returns the version."""
    from deltalake import DeltaTable

    version = store.version(table)
    DeltaTable(store.uri(table)).create_checkpoint()
    log_dir = Path(store.uri(table).removeprefix("file://")) / "_delta_log"
    removed = 0
    for path in log_dir.iterdir():
        stem = path.name.split(".")[0]
        if stem.isdigit() and int(stem) < version and (path.suffix in (".json", ".crc") or ".checkpoint" in path.name):
            path.unlink()
            removed += 1
    assert removed >= version, f"{table}: only {removed} log files removed below version {version}"
    assert not (log_dir / f"{0:020d}.json").exists()
    return version


def _land_a_later_week(spark, home: Path) -> None:
    from fti.ingest import load_through

    load_through(store_for(spark, home), settings_for(home), through=LATER, batch="week", entities=ENTITIES)


@pytest.mark.parametrize("reader", ["new", "older than the cleanup"])
def test_a_run_after_log_cleanup_featurizes_every_row(spark, landed_home, featured_home, tmp_path, reader):
    from fti.features import pipeline

    raw = f"{SYSTEM}/raw_events"
    if reader == "new":  # nothing featurized yet: every reader has no watermark
        home, clean, now = copy_home(landed_home, tmp_path / "h"), featured_home, NOW_DT
    else:  # featured, then two later weeks landed; the clean run reads the same rows with the log intact
        home, clean, now = copy_home(featured_home, tmp_path / "h"), copy_home(featured_home, tmp_path / "c"), LATER_NOW
        for target in (home, clean):
            _land_a_later_week(spark, target)
        pipeline.run(store_for(spark, clean), settings_for(clean), now=now, run_id="features-clean")
    store = store_for(spark, home)
    mark = store.watermark(f"{SYSTEM}/labels", "raw_events") if store.exists(f"{SYSTEM}/labels") else None
    aged = age_log(store, raw)
    assert mark is None or mark + 1 < aged, "a commit file the reader needs is removed"
    report = pipeline.run(store, settings_for(home), now=now)
    assert not report.up_to_date, "the run found nothing after the log cleanup"
    assert all(o.status == "written" for o in report.outputs), report.outputs
    for table in FEATURE_TABLES:
        if reader == "new":
            assert_same_rows(spark, home, clean, table)
        else:  # every day was recomputed at this run's clock: the same values, stamped now
            drop = ["ingested_at", *RUN_COLUMNS.get(table, [])]
            assert_df_equality(_sortable(store_for(spark, home).read(table), drop),
                               _sortable(store_for(spark, clean).read(table), drop),
                               ignore_row_order=True, ignore_nullable=True)
    assert pipeline.run(store, settings_for(home), now=now).up_to_date
