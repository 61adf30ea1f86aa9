"""Reliability fixtures: one small synthetic system, landed once and copied per scenario.

Scenarios run the real ``fti`` command in a subprocess (so it can be SIGKILLed) against a COPY of a
prepared home, then recover in this process with the suite's shared Spark session and compare every
table with a clean run's, whole.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT

SYSTEM = "synthetic"
THROUGH = dt.date(2024, 2, 25)          # 8 weeks: the config's train/validation/test windows
NOW = "2024-02-26T00:00:00Z"            # the feature runs' clock (fixed: tables are reproducible)
NOW_DT = dt.datetime(2024, 2, 26, tzinfo=dt.timezone.utc)
AS_OF = "2024-02-20T00:00:00Z"          # a scoring time inside the data
AS_OF_DT = dt.datetime(2024, 2, 20, tzinfo=dt.timezone.utc)
ENTITIES = 120

FEATURE_TABLES = ("synthetic/activity", "synthetic/canary", "synthetic/labels", "synthetic/quarantine")
# columns that name the run or its wall clock: everything else must be identical to a clean run
RUN_COLUMNS = {"synthetic/quarantine": ["run_id", "detected_at"], "synthetic/predictions": ["scored_at"]}


@dataclass
class Proc:
    """A finished ``fti`` subprocess."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        return f"fti {' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-5000:]}"


# Each scenario is a short-lived Spark driver on a few hundred rows: the JVM's optimizing compiler and parallel GC
# cost more than they save there (4 concurrent scorings: 132 s with the defaults, 83 s with these), and 2 shuffle
# partitions are plenty. The clean runs in this process use 4 partitions: equal tables also show that the
# partition count changes nothing.
SUBPROCESS_SPARK = {"SPARK_SUBMIT_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
                    "FTI__SPARK__UI": "false", "FTI__SPARK__SHUFFLE_PARTITIONS": "2"}


def fti_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI")}
    env.update({"TZ": "UTC", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                "PYTHONPATH": str(PROJECT), **SUBPROCESS_SPARK})
    env.update(extra)
    return env


def start_fti(home: Path, *args: str, env: dict[str, str] | None = None, system: str | None = SYSTEM) -> subprocess.Popen:
    """Start ``python -m fti ... --system synthetic --home HOME`` in its own process group."""
    argv = [sys.executable, "-m", "fti", *args, *(["--system", system] if system else []), "--home", str(home)]
    proc = subprocess.Popen(argv, cwd=PROJECT, env=env or fti_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    proc.fti_args = list(args)  # type: ignore[attr-defined]
    proc.fti_started = time.perf_counter()  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 420) -> Proc:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _reap_group(proc.pid)
    return Proc(proc.fti_args, proc.returncode, out, err, time.perf_counter() - proc.fti_started)  # type: ignore[attr-defined]


def _reap_group(pgid: int) -> None:
    """A SIGKILLed driver leaves its Spark JVM behind for a moment: kill the whole process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_fti(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 420,
            system: str | None = SYSTEM) -> Proc:
    return finish(start_fti(home, *args, env=env, system=system), timeout)


def kill_at(proc: subprocess.Popen, seconds: float) -> threading.Thread:
    """SIGKILL the process group ``seconds`` after the process started, if it is still running then. Returns at
    once (a thread does the kill), so the caller can wait for other processes meanwhile."""
    def killer() -> None:
        deadline = proc.fti_started + seconds  # type: ignore[attr-defined]
        while proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.fti_killed_at = time.perf_counter() - proc.fti_started  # type: ignore[attr-defined]
            _reap_group(proc.pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_locks"))
    return dst


def settings_for(home: Path):
    from fti.config import load_config

    return load_config(SYSTEM, home=home)


def store_for(spark, home: Path):
    from fti.store import open_store

    return open_store(spark, settings_for(home), backend="native")


def _sortable(df, drop=()):
    """Maps cannot be sorted or compared by chispa: replace each by its entries sorted by key."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    return df.select(*[F.array_sort(F.map_entries(f.name)).alias(f.name) if isinstance(f.dataType, MapType)
                       else F.col(f.name) for f in df.schema.fields if f.name not in drop])


def assert_valid(spark, home: Path, table: str) -> int:
    """The table is at a committed version whose every file exists, and Spark and delta-rs read the
    same rows. Returns the version."""
    from chispa import assert_df_equality
    from deltalake import DeltaTable
    from pyspark.sql.types import MapType

    store = store_for(spark, home)
    version = store.version(table)
    missing = [u for u in store.file_uris(table) if not Path(u.removeprefix("file://")).is_file()]
    assert not missing, f"{table} v{version} references missing files: {missing[:3]}"
    via_spark = _sortable(store.read(table))
    frame = DeltaTable(store.uri(table)).to_pyarrow_table().to_pandas()
    for f in store.read(table).schema.fields:
        if isinstance(f.dataType, MapType):  # pyarrow gives a map as (key, value) pairs
            frame[f.name] = [[{"key": k, "value": v} for k, v in sorted(pairs)] if pairs is not None else None
                             for pairs in frame[f.name]]
    via_rs = spark.createDataFrame(frame[via_spark.columns], schema=via_spark.schema) if len(frame) else \
        spark.createDataFrame([], via_spark.schema)
    assert_df_equality(via_spark, via_rs, ignore_row_order=True, ignore_nullable=True)
    return version


def assert_same_rows(spark, home: Path, clean_home: Path, table: str) -> None:
    """The table holds exactly the clean run's rows (columns naming the run or wall clock aside)."""
    from chispa import assert_df_equality

    drop = RUN_COLUMNS.get(table, [])
    actual = _sortable(store_for(spark, home).read(table), drop)
    expected = _sortable(store_for(spark, clean_home).read(table), drop)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.fixture(scope="session")
def landed_home(spark, tmp_path_factory) -> Path:
    """Raw synthetic events landed through THROUGH (weekly batches), and a small batch with two bad rows (as real
    data has: the feature run then commits the quarantine, one of the kill points); no feature run yet."""
    from fti.examples.synthetic.generate import EVENTS
    from fti.ingest import land, load_through

    home = tmp_path_factory.mktemp("rel-landed")
    settings = settings_for(home)
    store = store_for(spark, home)
    load_through(store, settings, through=THROUGH, batch="week", entities=ENTITIES)
    rows = [("", "2024-02-24T10:00:00Z", "activity", "1.0"), ("e000001", "2024-02-24 10:00", "activity", "1.0"),
            ("e000001", "2024-02-24T10:00:07Z", "activity", "3.5")]
    land(store, SYSTEM, EVENTS, spark.createDataFrame(rows, ", ".join(f"{c} string" for c in EVENTS.columns)),
         ingested_at=dt.datetime(2024, 2, 25, 12, tzinfo=dt.timezone.utc), source_label="test: two bad rows")
    return home


@pytest.fixture(scope="session")
def featured_home(spark, landed_home, tmp_path_factory) -> Path:
    """The clean reference: ``landed_home`` plus one feature run at NOW."""
    from fti.features import pipeline

    home = copy_home(landed_home, tmp_path_factory.mktemp("rel-featured") / "home")
    pipeline.run(store_for(spark, home), settings_for(home), now=NOW_DT, run_id="features-clean")
    return home


@pytest.fixture(scope="session")
def trained_home(spark, featured_home, tmp_path_factory) -> Path:
    """``featured_home`` plus a registered champion model, and a clean scoring run at AS_OF (in a copy)."""
    from fti.training.pipeline import run as train

    home = copy_home(featured_home, tmp_path_factory.mktemp("rel-trained") / "home")
    from fti.config import load_config

    settings = load_config(SYSTEM, home=home, env={"FTI__TRAINING__NUM_BOOST_ROUND": "20"})
    train(store_for(spark, home), settings)
    return home


@pytest.fixture(scope="session")
def scored_home(spark, trained_home, tmp_path_factory) -> Path:
    from fti.inference.pipeline import run as score

    home = copy_home(trained_home, tmp_path_factory.mktemp("rel-scored") / "home")
    score(store_for(spark, home), settings_for(home), as_of=AS_OF_DT)
    return home
