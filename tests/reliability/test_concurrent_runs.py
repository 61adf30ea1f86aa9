"""Runs at the same time: no duplicate rows, no lost rows; one run wins or both serialize."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from conftest import (AS_OF, FEATURE_TABLES, NOW, THROUGH, assert_same_rows, assert_valid, copy_home, finish,
                      fti_env, run_fti, settings_for, start_fti, store_for)


STATUSES = ("written", "up to date", "skipped: another run wrote it")


def _statuses(stdout: str, table: str) -> list[str]:
    """The status column of ``table`` in ``fti features`` output."""
    return [next(s for s in STATUSES if line[len(table):].strip().startswith(s)) for line in stdout.splitlines()
            if line.startswith(table + " ")]


def test_two_feature_runs_over_the_same_empty_window(spark, landed_home, featured_home, tmp_path):
    """A real race: run A (one output at a time) reads every raw change and is held just before its first feature
    commit; run B (outputs in parallel, the default) then runs whole. Released, A must not commit anything B wrote:
    each table gets exactly one data commit, A says "skipped: another run wrote it", and the tables equal a clean
    run's."""
    import time

    home = copy_home(landed_home, tmp_path / "h")
    release = tmp_path / "release"
    held = start_fti(home, "features", "--now", NOW,
                     env=fti_env(FTI_FAULT=f"after_files@synthetic/activity:wait={release}",
                                 FTI__FEATURES__PARALLEL_OUTPUTS="1"))
    deadline = time.time() + 300
    while not Path(f"{release}.reached").exists():
        assert held.poll() is None and time.time() < deadline, finish(held).explain()
        time.sleep(0.2)
    other = run_fti(home, "features", "--now", NOW)
    assert other.returncode == 0, other.explain()
    release.touch()
    first = finish(held)
    assert first.returncode == 0, first.explain()
    for table in FEATURE_TABLES:
        assert_same_rows(spark, home, featured_home, table)
        assert assert_valid(spark, home, table) == 1, f"{table}: exactly one data commit"
    for table in FEATURE_TABLES[:-1]:
        assert _statuses(other.stdout, table) == ["written"], other.stdout
        assert _statuses(first.stdout, table) == ["skipped: another run wrote it"], first.stdout


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
    from fti.ingest import load_through
    from fti.store.feature_store import FeatureStore

    home = copy_home(featured_home, tmp_path / "h")
    store = store_for(spark, home)
    load_through(store, settings_for(home), through=THROUGH + dt.timedelta(days=7), batch="week", entities=120)
    before = {t: store.version(t) for t in FEATURE_TABLES}
    proc = start_fti(home, "features", "--now", "2024-03-04T00:00:00Z")
    fs = FeatureStore(store, settings_for(home))
    built = fs.materialize(fs.get_training_set(None, "purchase_v1"))
    feature_run = finish(proc)
    assert feature_run.returncode == 0, feature_run.explain()
    after = {t: store.version(t) for t in FEATURE_TABLES}
    assert all(after[t] == before[t] + 1 for t in FEATURE_TABLES if t != "synthetic/quarantine"), (before, after)
    assert after["synthetic/quarantine"] == before["synthetic/quarantine"]  # no bad row in the new week: no commit
    pinned = {g.group: g.version for g in built.manifest.groups}
    assert set(pinned.values()) <= {1, 2}
    # what was built is exactly what its pinned versions give, whichever versions it saw
    rebuilt = fs.rebuild(built.manifest)
    assert rebuilt["matches"], rebuilt
    for table in FEATURE_TABLES:
        assert_valid(spark, home, table)


def test_vacuum_while_a_rebuild_reads_a_pinned_version(spark, trained_home, tmp_path):
    """Vacuums in a loop that DO delete files (those of an unpinned version) while the model's training set is
    rebuilt: the rebuild matches its hash and every file of the pinned versions is still there; --force then
    deletes them too and names the model."""
    from fti.registry import ModelRef, manifest_of_model
    from fti.store.feature_store import FeatureStore

    home = copy_home(trained_home, tmp_path / "h")
    settings = settings_for(home)
    store = store_for(spark, home)
    manifest = manifest_of_model(settings, ModelRef.parse("synthetic_purchase@champion"))
    pinned = {g.table: g.version for g in manifest.groups}
    # two backfills of every day of activity: the pinned version's files are removed ones, and so are those
    # of the version between (which no model pins: vacuum deletes them)
    from fti.features import pipeline

    for _ in range(2):
        pipeline.run(store, settings, start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 26), groups=["activity"],
                     now=dt.datetime(2024, 2, 26, tzinfo=dt.timezone.utc))
    pinned_files = {t: store.file_uris(t, version=v) for t, v in pinned.items()}
    unpinned = store.file_uris("synthetic/activity", version=pinned["synthetic/activity"] + 1)
    results: list = []
    stop = threading.Event()

    def vacuums() -> None:
        while not stop.is_set():
            results.append(run_fti(home, "vacuum", "--retention-hours", "0"))

    thread = threading.Thread(target=vacuums)
    thread.start()
    try:
        rebuilt = FeatureStore(store, settings).rebuild(manifest)
    finally:
        stop.set()
        thread.join()
    assert rebuilt["matches"], rebuilt
    assert results and all(r.returncode == 0 for r in results), results[0].explain()
    assert "kept the files of version" in results[0].stdout and "synthetic_purchase/1" in results[0].stdout
    assert unpinned and not any(Path(f.removeprefix("file://")).exists() for f in unpinned), "unpinned files stay"
    for table, files in pinned_files.items():
        assert files and all(Path(f.removeprefix("file://")).is_file() for f in files), table
    forced = run_fti(home, "vacuum", "--table", "synthetic/activity", "--retention-hours", "0", "--force")
    assert forced.returncode == 0, forced.explain()
    assert "model synthetic_purchase/1 can no longer rebuild its training set" in forced.stdout
    assert not any(Path(f.removeprefix("file://")).exists() for f in pinned_files["synthetic/activity"])
