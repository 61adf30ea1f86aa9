"""Shared fixtures: ONE Spark session for the whole suite, a temporary home per test module."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

# The suite runs in UTC unless FTI_TEST_TZ names another zone: `make test` runs the unit, feature-pipeline,
# scoring and monitoring tests a second time under America/New_York, so that code handing naive datetimes to
# Spark (read as the PROCESS's local time) fails there. Tests compare naive datetimes from Spark as UTC only
# through `tests.helpers.tz.utc` where they may run in another zone.
os.environ["TZ"] = os.environ.get("FTI_TEST_TZ") or "UTC"
time.tzset()

# Workers must run this interpreter (the venv's), not the system Python.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ.pop("FTI_HOME", None)
os.environ.pop("FTI_FAULT", None)
# fti takes MLflow from these where the config names none; the suite uses each home's embedded store
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)
for _key in [k for k in os.environ if k.startswith("FTI__")]:
    os.environ.pop(_key)

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _mlflow_uris_put_back():
    """Tests that call mlflow.set_tracking_uri themselves also set MLFLOW_TRACKING_URI (MLflow does): put both
    variables back after each test, or every later home would read that store."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def session_dir() -> Path:
    with tempfile.TemporaryDirectory(prefix="fti-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def spark(session_dir: Path):
    """The suite's one local SparkSession (UI off, warehouse and scratch in a session temp folder)."""
    from fti.config import load_config
    from fti.spark import get_spark

    settings = load_config("flights", home=session_dir / "spark-home")
    session = get_spark(settings, ui=False, extra_conf={
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.sql.warehouse.dir": str(session_dir / "warehouse"),
    })
    yield session
    session.stop()


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """fti built as a wheel and installed into a fresh virtual environment outside the checkout (once)."""
    from tests.helpers.wheel import install

    return install(PROJECT, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A fresh home folder (tables, MLflow store) for one test module."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def settings(home: Path):
    from fti.config import load_config

    return load_config("flights", home=home)


@pytest.fixture(scope="module")
def store(spark, settings):
    from fti.store import open_store

    return open_store(spark, settings, backend="native")
