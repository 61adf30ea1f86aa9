"""Runs at the same time: no duplicate rows, no lost rows; one run wins or both serialize."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from conftest import (AS_OF, FEATURE_TABLES, NOW, THROUGH, assert_same_rows, assert_valid, copy_home, finish,
                      run_fti, settings_for, start_fti, store_for)


STATUSES = ("written", "up to date", "skipped: another run wrote it")


def _statuses(stdout: str, table: str) -> list[str]:
    """The status column of ``table`` in ``fti features`` output."""
    return [next(s for s in STATUSES if line[len(table):].strip().startswith(s)) for line in stdout.splitlines()
            if line.startswith(table + " ")]


def test_two_feature_runs_over_the_same_empty_window(spark, landed_home, featured_home, tmp_path):
    """Both runs replace the same new (empty) day partitions of every table: each table gets exactly one data
    commit, from one of the runs; the other run's commit is skipped and says so, or it finds nothing to do."""
    home = copy_home(landed_home, tmp_path / "h")
    procs = [start_fti(home, "features", "--now", NOW) for _ in range(2)]
    done = [finish(p) for p in procs]
    for proc in done:
        assert proc.returncode == 0, proc.explain()
    for table in FEATURE_TABLES:
        assert_same_rows(spark, home, featured_home, table)
        assert assert_valid(spark, home, table) == 1, f"{table}: exactly one data commit"
    for table in FEATURE_TABLES[:-1]:
        statuses = sorted(s for proc in done for s in _statuses(proc.stdout, table))
        assert statuses in (["skipped: another run wrote it", "written"], ["up to date", "written"]), \
            (table, statuses, [p.stdout for p in done])


def test_two_scoring_runs_of_the_same_time_serialize(spark, trained_home, scored_home, tmp_path):
    home = copy_home(trained_home, tmp_path / "h")
    procs = [start_fti(home, "score", "--as-of", AS_OF) for _ in range(2)]
    done = [finish(p) for p in procs]
    for proc in done:
        assert proc.returncode == 0, proc.explain()
    assert_same_rows(spark, home, scored_home, "synthetic/predictions")
    store = store_for(spark, home)
    # two commits (the second replaced the first's rows), no duplicate keys
    assert assert_valid(spark, home, "synthetic/predictions") == 2
    keys = store.read("synthetic/predictions").groupBy("entity_id").count()
    assert keys.where("count > 1").count() == 0


def test_feature_run_while_a_training_set_build_reads(spark, featured_home, tmp_path):
    """The build pins the versions it read; a feature run committing meanwhile changes nothing it returns."""
    from fti.features.synthetic.generate import ingest
    from fti.store.feature_store import FeatureStore

    home = copy_home(featured_home, tmp_path / "h")
    store = store_for(spark, home)
    ingest(spark, store, settings_for(home), through=THROUGH + dt.timedelta(days=7), batch="week", entities=120)
    before = {t: store.version(t) for t in FEATURE_TABLES}
    proc = start_fti(home, "features", "--now", "2024-03-04T00:00:00Z")
    fs = FeatureStore(store, settings_for(home))
    built = fs.materialize(fs.get_training_set(None, "purchase_v1"))
    feature_run = finish(proc)
    assert feature_run.returncode == 0, feature_run.explain()
    after = {t: store.version(t) for t in FEATURE_TABLES}
    assert all(after[t] == before[t] + 1 for t in FEATURE_TABLES), (before, after)
    pinned = {e["group"]: e["version"] for e in built.manifest["features"]}
    assert set(pinned.values()) <= {1, 2}
    # what was built is exactly what its pinned versions give, whichever versions it saw
    rebuilt = fs.rebuild(built.manifest)
    assert rebuilt["matches"], rebuilt
    for table in FEATURE_TABLES:
        assert_valid(spark, home, table)


def test_vacuum_while_a_rebuild_reads_a_pinned_version(spark, trained_home, tmp_path):
    """Vacuums in a loop (one refused for breaking the model's pins, one allowed) while the model's training set
    is rebuilt: the rebuild matches its hash and every file of the pinned versions is still there."""
    from fti.registry import ModelRef, manifest_of_model
    from fti.store.feature_store import FeatureStore

    home = copy_home(trained_home, tmp_path / "h")
    settings = settings_for(home)
    store = store_for(spark, home)
    manifest = manifest_of_model(settings, ModelRef.parse("synthetic_purchase@champion"))
    # a backfill replaces every day of activity: the pinned version's files are now removed ones
    from fti.features import pipeline

    pipeline.run(store, settings, start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 26), groups=["activity"],
                 now=dt.datetime(2024, 2, 26, tzinfo=dt.timezone.utc))
    pinned_files = {e["table"]: store.file_uris(e["table"], version=e["version"]) for e in manifest["features"]}
    results: list = []
    stop = threading.Event()

    def vacuums() -> None:
        while not stop.is_set():
            results.append(run_fti(home, "vacuum", "--retention-hours", "0"))
            results.append(run_fti(home, "vacuum"))

    thread = threading.Thread(target=vacuums)
    thread.start()
    try:
        rebuilt = FeatureStore(store, settings).rebuild(manifest)
    finally:
        stop.set()
        thread.join()
    assert rebuilt["matches"], rebuilt
    assert len(results) >= 2
    for refused, allowed in zip(results[::2], results[1::2]):
        assert refused.returncode == 2 and "synthetic_purchase" in refused.stderr, refused.explain()
        assert "Traceback" not in refused.stderr
        assert allowed.returncode == 0 and "synthetic/activity: deleted 0 file(s)" in allowed.stdout, allowed.explain()
    for table, files in pinned_files.items():
        assert files and all(Path(f.removeprefix("file://")).is_file() for f in files), table
