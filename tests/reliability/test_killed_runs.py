"""SIGKILL at every named fault point (and at random moments) of a feature run, a training-set build and a
scoring run. Afterwards every table is at a committed version whose files exist and that Spark and delta-rs
read alike, and a rerun leaves exactly the rows of a clean run.

The feature pipeline commits the quarantine table first, then its outputs, several at once
(``features.parallel_outputs``). The named feature faults run with one output at a time, so each kill has one known
place: ``after_commit@synthetic/quarantine`` is the kill between the quarantine commit and the feature commits and
``after_commit@synthetic/activity`` the kill between two feature commits. The home killed at a random moment
runs its outputs in parallel, as a default run does.
"""

from __future__ import annotations

import random
import signal

import pytest
from conftest import (AS_OF, AS_OF_DT, FEATURE_TABLES, NOW, NOW_DT, assert_same_rows, assert_valid, copy_home,
                      finish, fti_env, kill_at, settings_for, start_fti, store_for)

FEATURE_FAULTS = [
    "before_files@synthetic/activity",
    "after_files@synthetic/canary",
    "after_commit@synthetic/quarantine",
    "after_commit@synthetic/activity",
]
SEED = 20261123


def _killed(proc) -> None:
    assert proc.returncode == -signal.SIGKILL, proc.explain()


def _run_all(homes: dict, args: list[str], *, random_kill_s: float) -> dict:
    """Run ``fti ARGS`` in every home at once (each a Spark driver of its own): the fault named by the home's key
    kills it (one output at a time: the kill's place is known), and the home keyed ``random`` (default settings:
    outputs in parallel) is killed by a timer ``random_kill_s`` after its start."""
    started = {fault: start_fti(home, *args, env=fti_env(FTI_FAULT=f"{fault}:kill", FTI__FEATURES__PARALLEL_OUTPUTS="1")
                                if fault != "random" else fti_env())
               for fault, home in homes.items()}
    kill_at(started["random"], random_kill_s)
    return {fault: finish(proc) for fault, proc in started.items()}


def _versions(spark, home, tables):
    store = store_for(spark, home)
    return {t: store.version(t) if store.exists(t) else None for t in tables}


def test_feature_run_killed_at_each_point_then_rerun_equals_clean(spark, landed_home, featured_home, tmp_path):
    from fti.features import pipeline

    homes = {fault: copy_home(landed_home, tmp_path / f"h{i}") for i, fault in enumerate(FEATURE_FAULTS)}
    homes["random"] = copy_home(landed_home, tmp_path / "hr")
    procs = _run_all(homes, ["features", "--now", NOW], random_kill_s=random.Random(SEED).uniform(12, 30))

    for fault, home in homes.items():
        proc = procs[fault]
        if fault != "random":
            _killed(proc)
            point, _, fault_table = fault.partition("@")
            assert f"fault point {point} reached (table {fault_table})" in proc.stderr, proc.explain()
        else:
            assert proc.returncode in (0, -signal.SIGKILL), proc.explain()
        for table in FEATURE_TABLES:
            if store_for(spark, home).exists(table):
                assert_valid(spark, home, table)
        if fault != "random":
            # the table the fault named has exactly the state the point implies
            version = _versions(spark, home, [fault_table])[fault_table]
            assert version == (1 if point == "after_commit" else 0), (fault, version)
        report = pipeline.run(store_for(spark, home), settings_for(home), now=NOW_DT, run_id=f"rerun-{fault[:12]}")
        assert fault == "random" or not report.up_to_date
        for table in FEATURE_TABLES:
            assert_same_rows(spark, home, featured_home, table)
            assert_valid(spark, home, table)
        # a second rerun has nothing left to do
        again = pipeline.run(store_for(spark, home), settings_for(home), now=NOW_DT)
        assert again.up_to_date, fault


def test_training_set_build_killed_then_rebuild_equals_clean(spark, featured_home, tmp_path, clean_set):
    """Killed before its files, after its files, and after its commit but before its manifest (all three at once)."""
    from chispa import assert_df_equality

    from fti.catalog import build_catalog
    from fti.store.feature_store import FeatureStore
    from fti.store.manifest import TrainingSetManifest

    points = ("before_files", "after_files", "after_commit")
    homes = {point: copy_home(featured_home, tmp_path / point) for point in points}
    procs = {point: start_fti(home, "training-set", "build", env=fti_env(FTI_FAULT=f"{point}:kill"))
             for point, home in homes.items()}
    for point, home in homes.items():
        _killed(finish(procs[point]))
        store = store_for(spark, home)
        sets = [t for t in store.list_tables() if t.startswith("synthetic/training_sets/")]
        assert len(sets) == 1, sets  # the killed build's table: created, never given a manifest
        killed = sets[0]
        assert assert_valid(spark, home, killed) == (1 if point == "after_commit" else 0)
        assert not TrainingSetManifest.path_of(store.home, killed).exists()
        for table in FEATURE_TABLES:
            assert _versions(spark, home, [table])[table] == _versions(spark, featured_home, [table])[table]
        fs = FeatureStore(store, settings_for(home))
        rebuilt = fs.materialize(fs.get_training_set(None, "purchase_v1"))
        assert rebuilt.manifest.output.sha256 == clean_set.manifest.output.sha256, point
        assert_df_equality(rebuilt.df, clean_set.df, ignore_row_order=True, ignore_nullable=True)
        # the catalog tells the complete set from the killed one
        listed = {t["name"]: (t["kind"], t["incomplete"]) for t in build_catalog(settings_for(home), store)["tables"]
                  if t["kind"] == "training_set"}
        assert listed == {killed: ("training_set", True), rebuilt.path: ("training_set", False)}, point


@pytest.fixture(scope="module")
def clean_set(spark, featured_home, tmp_path_factory):
    from fti.store.feature_store import FeatureStore

    home = copy_home(featured_home, tmp_path_factory.mktemp("clean-set") / "h")
    fs = FeatureStore(store_for(spark, home), settings_for(home))
    return fs.materialize(fs.get_training_set(None, "purchase_v1"))


SCORE_FAULTS = ["before_files@synthetic/predictions", "after_files@synthetic/predictions",
                "after_commit@synthetic/predictions", "random"]


def test_scoring_killed_at_each_point_then_rerun_equals_clean(spark, trained_home, scored_home, tmp_path):
    from fti.inference.pipeline import run as score

    homes = {fault: copy_home(trained_home, tmp_path / f"s{i}") for i, fault in enumerate(SCORE_FAULTS)}
    done = _run_all(homes, ["score", "--as-of", AS_OF], random_kill_s=random.Random(SEED + 1).uniform(10, 25))
    for fault, home in homes.items():
        proc = done[fault]
        store = store_for(spark, home)
        if fault == "random":
            assert proc.returncode in (0, -signal.SIGKILL), proc.explain()
        else:
            _killed(proc)
            point = fault.partition("@")[0]
            exists = store.exists("synthetic/predictions")
            # the table is created before the first write; its data commit happens only at after_commit
            assert exists and store.version("synthetic/predictions") == (1 if point == "after_commit" else 0)
        if store.exists("synthetic/predictions"):
            assert_valid(spark, home, "synthetic/predictions")
        score(store, settings_for(home), as_of=AS_OF_DT)
        assert_same_rows(spark, home, scored_home, "synthetic/predictions")
        assert_valid(spark, home, "synthetic/predictions")
