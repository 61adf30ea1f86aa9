"""The one place that builds (or adopts) a SparkSession."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

from fti import connector
from fti.errors import EnvironmentProblem
from fti.location import Location, spark_hadoop_conf

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from fti.config import Settings

log = logging.getLogger(__name__)

# Settings every fti session needs, whoever built it: timestamps in UTC microseconds, no marker files.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

# Connector settings for the small logs of fti tables: Delta rebuilds a snapshot's state with a shuffle of
# `snapshotPartitions` tasks (default 50, which is most of a small commit's time on 2 cores).
DELTA_CONF = {
    "spark.databricks.delta.snapshotPartitions": "2",
}

JAVA_HINT = (
    "install Java 17 (Debian/Ubuntu: 'apt-get install openjdk-17-jre-headless'; macOS: 'brew install openjdk@17') "
    "or set JAVA_HOME"
)


_JVM_OPTION_VARIABLES = ("SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")


def driver_java_options(options: str, environ: Mapping[str, str]) -> str:
    """The local driver's JVM options: ``options`` plus the throughput collector (one JVM does everything on a
    few cores: measured, the demo's monthly runs ~4% faster than with G1, `make demo` 3:08 -> 3:00), unless a
    collector is already chosen there or in the JVM's option variables (two collectors stop the JVM at start)."""
    chosen = " ".join([options, *(environ.get(v, "") for v in _JVM_OPTION_VARIABLES)])
    if re.search(r"-XX:\+Use\w*GC\b", chosen):
        return options
    return f"{options} -XX:+UseParallelGC".strip()


def check_java() -> str:
    """Check that a Java runtime is available.

    Returns:
        The first line of ``java -version``.

    Raises:
        EnvironmentProblem: If no ``java`` is found.
    """
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) if os.environ.get("JAVA_HOME") else None
    java = java or shutil.which("java")
    if not java:
        raise EnvironmentProblem("Java was not found: Spark needs Java 17", hint=JAVA_HINT)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else java


def active_session() -> SparkSession | None:
    """The session given by spark-submit, a notebook or an earlier call, if any."""
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def get_spark(settings: Settings, *, ui: bool | None = None, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Return the Spark session for fti.

    Under ``spark-submit`` or in a notebook the existing session is used (its master and resources are
    the cluster's), with fti's required SQL settings applied. Otherwise a ``local[*]`` session (or the
    configured master) is built with settings that fit small machines.

    Args:
        settings: Loaded settings (master, shuffle partitions, memory, extra conf).
        ui: Override the Spark UI switch (tests turn it off).
        extra_conf: More Spark settings for this session.

    Returns:
        The session.

    Raises:
        EnvironmentProblem: If Java is missing.
    """
    existing = active_session()
    if existing is not None:
        for key, value in REQUIRED_CONF.items():
            existing.conf.set(key, value)
        configure_storage(existing, settings.home)
        return existing

    check_java()
    # Workers must run this interpreter, or they import the system Python without pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    cfg = settings.config.spark
    scratch = Path(tempfile.gettempdir()) / f"fti-spark-{os.getuid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    conf = {
        "spark.app.name": cfg.app_name,
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.default.parallelism": str(max(2, cfg.shuffle_partitions)),
        "spark.driver.memory": cfg.driver_memory,
        "spark.ui.enabled": str(cfg.ui if ui is None else ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": (settings.home / "spark-warehouse").uri,
        "spark.local.dir": str(scratch),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch}",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.hadoop.parquet.enable.summary-metadata": "false",
        "spark.sql.adaptive.enabled": "true",
        # a feature run plans ~40 small queries: with the default 100 generated classes cached, each run compiles
        # most of its stages again (measured: a monthly flights run 9.8 s -> 8.6 s with 2000)
        "spark.sql.codegen.cache.maxEntries": "2000",
        "spark.executorEnv.PYSPARK_PYTHON": os.environ["PYSPARK_PYTHON"],
        **REQUIRED_CONF,
    }
    if cfg.master:  # empty: the master comes from spark-submit / spark-defaults
        conf["spark.master"] = cfg.master
    conf.update({f"spark.hadoop.{k}": v for k, v in spark_hadoop_conf(settings.home).items()})
    s3a_jars = connector.installed_object_store_jars() if (cfg.master or "").startswith("local") else []
    if s3a_jars:
        # on the driver's class path (in local mode the executors are the driver): no copy of the SDK bundle.
        # Not under spark-submit or on a cluster (an empty master): clusters bring their own S3 connector.
        conf["spark.driver.extraClassPath"] = os.pathsep.join(str(j) for j in s3a_jars)
    conf.update(cfg.conf)
    conf.update(extra_conf or {})
    if (cfg.master or "").startswith("local"):  # clusters keep their own JVM settings
        conf["spark.driver.extraJavaOptions"] = driver_java_options(conf.get("spark.driver.extraJavaOptions", ""),
                                                                    os.environ)
    connector_conf, origin = ({}, "none") if settings.config.delta.backend == "delta-rs" else connector.session_conf()
    if settings.config.delta.backend == "native" and origin == "none":
        raise EnvironmentProblem("delta.backend is 'native' but delta-spark is not installed",
                                 hint="pip install 'fti[spark]', or set delta.backend: delta-rs")
    log.info("starting Spark (%s)%s", cfg.master, "" if origin == "none" else f" with the Delta connector ({origin})")
    try:
        spark = _build({**DELTA_CONF, **connector_conf, **conf} if connector_conf else conf,
                       delta_pip=origin == "packages")
    except Exception as exc:
        if origin != "packages":
            raise
        # The standard resolution at start (no installed jars) failed: most often no network.
        log.warning("could not resolve the Delta connector at session start (%s); starting without it: the "
                    "delta-rs bridge will be used. `fti connector install` fetches it once.",
                    str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
        spark = _build(conf)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def configure_storage(spark: SparkSession, home: Location) -> None:
    """Point a running session's S3A at the home's endpoint (``AWS_ENDPOINT_URL``, for an S3-compatible server)
    before its first read of the home. Nothing changes for AWS itself, other stores and local homes."""
    settings = spark_hadoop_conf(home)
    if settings:
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001 - the session's Hadoop settings
        for key, value in settings.items():
            hadoop.set(key, value)


def _build(conf: dict[str, str], *, delta_pip: bool = False) -> SparkSession:
    """Build the session; ``delta_pip``: ask for the connector the standard way for pip installs
    (``configure_spark_with_delta_pip``, resolved by Spark at start)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in conf.items():
        if not (delta_pip and key == "spark.jars.packages"):
            builder = builder.config(key, value)
    if delta_pip:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    return builder.getOrCreate()


def delta_jar_available(spark: SparkSession) -> bool:
    """Whether the Delta Spark connector's classes load in this session's JVM."""
    try:
        jvm = spark.sparkContext._jvm  # noqa: SLF001 - py4j is the only way to ask the JVM
    except Exception:  # Spark Connect (Databricks serverless): Delta is built in there.
        return True
    try:
        jvm.java.lang.Class.forName(
            "org.apache.spark.sql.delta.DeltaLog", True, jvm.Thread.currentThread().getContextClassLoader()
        )
        return True
    except Exception:
        return False


@contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs the current thread starts (the Spark UI's job list shows which step ran them)."""
    sc = spark.sparkContext
    before = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setJobDescription(before)  # type: ignore[arg-type]


def release(df: DataFrame | None) -> None:
    """Free the blocks of a DataFrame made by ``localCheckpoint`` (``unpersist`` does not reach them: they
    would stay until the JVM's garbage collector runs Spark's cleaner)."""
    if df is None:
        return
    try:
        plan = df._jdf.queryExecution().logical()  # noqa: SLF001 - a LogicalRDD over the checkpointed RDD
        if plan.getClass().getSimpleName() == "LogicalRDD":
            plan.rdd().unpersist(False)
    except Exception:  # noqa: BLE001 - best effort: the cleaner frees them later anyway
        log.debug("could not release a checkpointed DataFrame", exc_info=True)
