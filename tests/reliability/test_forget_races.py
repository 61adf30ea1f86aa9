"""``fti forget`` racing a feature run or a landing: the entity never comes back.

A real race: the run (or landing) is held at a fault point after it read the forgotten list and before it
commits; ``fti forget`` starts meanwhile. On code without the system lock the deletion finished while the run was
held, and the released run then committed the entity's rows into features, labels and history (or the landing
its raw rows), after forget had reported success. With the lock, forget waits for the run and deletes what it
wrote.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROJECT, NOW, SYSTEM, copy_home, finish, fti_env, start_fti, store_for

ENTITY = "e000001"


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, finish(proc).explain()
        time.sleep(0.2)


def _forget_in_background(home: Path, log_file: Path) -> subprocess.Popen:
    """``fti forget`` with its log in a file, so that the test sees when it waits for the lock."""
    argv = [sys.executable, "-m", "fti", "forget", "--where", f"entity_id={ENTITY}", "--system", SYSTEM,
            "--home", str(home)]
    handle = open(log_file, "w")
    return subprocess.Popen(argv, cwd=PROJECT, env=fti_env(), stdout=handle, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _deletion_done_or_waiting(proc: subprocess.Popen, log_file: Path, timeout: float = 300) -> str:
    """Wait until forget has finished (no lock: it ran while the other run was held) or says it waits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return "finished"
        if "waits for the runs and landings" in log_file.read_text():
            return "waiting"
        time.sleep(0.2)
    raise AssertionError(f"forget neither finished nor waited:\n{log_file.read_text()[-3000:]}")


def _holders(spark, home: Path) -> dict[str, int]:
    """Rows of the entity in every table of the system that has its key column."""
    from pyspark.sql import functions as F

    store = store_for(spark, home)
    found = {}
    for table in store.list_tables():
        if table.startswith(f"{SYSTEM}/") and "entity_id" in store.schema(table).fieldNames() \
                and not table.endswith("/forgotten"):
            found[table] = store.read(table).where(F.col("entity_id") == ENTITY).count()
    return found


@pytest.mark.parametrize("step", ["feature run", "landing"])
def test_forget_racing_a_run_or_a_landing_keeps_the_entity_out(spark, landed_home, featured_home, tmp_path, step):
    home = copy_home(landed_home if step == "feature run" else featured_home, tmp_path / "h")
    release = tmp_path / "release"
    if step == "feature run":
        held = start_fti(home, "features", "--now", NOW,
                         env=fti_env(FTI_FAULT=f"after_files@{SYSTEM}/activity:wait={release}",
                                     FTI__FEATURES__PARALLEL_OUTPUTS="1"))
    else:
        batch = tmp_path / "batch.csv"
        batch.write_text("entity_id,event_ts,kind,amount\n"
                         f"{ENTITY},2024-02-25T09:00:00Z,activity,1.0\ne000002,2024-02-25T09:00:00Z,activity,2.0\n")
        held = start_fti(home, "ingest", "--source", "raw_events", "--file", str(batch), "--now", NOW,
                         env=fti_env(FTI_FAULT=f"after_files@{SYSTEM}/raw_events:wait={release}"))
    _wait_for(Path(f"{release}.reached"), held)
    log_file = tmp_path / "forget.log"
    deletion = _forget_in_background(home, log_file)
    seen = _deletion_done_or_waiting(deletion, log_file)
    release.touch()
    first = finish(held)
    assert first.returncode == 0, first.explain()
    assert deletion.wait(timeout=300) == 0, log_file.read_text()[-3000:]
    holders = _holders(spark, home)
    assert f"{SYSTEM}/raw_events" in holders and (step == "landing" or f"{SYSTEM}/labels" in holders), holders
    assert all(n == 0 for n in holders.values()), f"the forgotten entity is back: {holders}"
    assert seen == "waiting", "forget did not wait for the run that read the forgotten list before it"
    if step == "landing":  # the rest of the batch landed
        from pyspark.sql import functions as F

        raw = store_for(spark, home).read(f"{SYSTEM}/raw_events")
        assert raw.where((F.col("entity_id") == "e000002") & (F.col("event_ts") == "2024-02-25T09:00:00Z")).count() == 1
