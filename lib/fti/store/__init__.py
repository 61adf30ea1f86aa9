"""The Delta store layer: one interface (:class:`TableStore`), two backends, and a Spark-free log reader.

``open_store`` picks the backend from config ``delta.backend``: ``native`` (the Delta Spark connector, the
default), ``delta-rs`` (the bridge: Spark parquet + ``deltalake`` commits), or ``auto`` (native when the
connector's classes load in the JVM, else the bridge, saying so). :class:`DeltaLog` reads any home's logs
without Spark (catalog, lineage, vacuum).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fti.errors import EnvironmentProblem
from fti.store.base import TableStore
from fti.store.delta_log import DeltaLog
from fti.store.predicate import Match
from fti.store.records import KINDS, CommitResult, Pin, RunContext, TableInfo, Txn, new_run_id

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from fti.config import Settings

log = logging.getLogger(__name__)

__all__ = ["KINDS", "CommitResult", "DeltaLog", "Match", "Pin", "RunContext", "TableInfo", "TableStore", "Txn",
           "new_run_id", "open_store"]


def open_store(spark: SparkSession, settings: Settings, *, backend: str | None = None) -> TableStore:
    """Open the table store of a home folder.

    Args:
        spark: The Spark session.
        settings: Loaded settings (home, ``delta.backend``, retention).
        backend: Override the configured backend.

    Returns:
        The store.

    Raises:
        EnvironmentProblem: If ``native`` is asked for but the Delta connector is not in the JVM.
    """
    from fti.spark import configure_storage, delta_jar_available

    configure_storage(spark, settings.home)
    choice = backend or settings.config.delta.backend
    if choice == "auto":
        choice = "native" if delta_jar_available(spark) else "delta-rs"
        if choice == "delta-rs":
            log.warning("the Delta Spark connector is not on Spark's classpath: using the delta-rs bridge "
                        "(`fti connector install` fetches the connector)")
    kwargs = {
        "retention_days": settings.config.delta.retention_days,
        "checkpoint_interval": settings.config.delta.checkpoint_interval,
        "compact_above_files": settings.config.delta.compact_above_files,
    }
    if choice == "native":
        if not delta_jar_available(spark):
            from fti.connector import expected

            want = expected()
            raise EnvironmentProblem(
                "delta.backend is 'native' but the Delta Spark connector is not on Spark's classpath",
                hint=f"spark-submit --packages {want.coordinates if want else 'io.delta:delta-spark_<spark>_2.13:<v>'}"
                     " (or --jars from `fti connector show`), or set delta.backend: delta-rs",
            )
        from fti.store.native import NativeStore

        return NativeStore(spark, settings.home, **kwargs)
    from fti.store.delta_rs import DeltaRsStore

    log.debug("delta backend: delta-rs")
    return DeltaRsStore(spark, settings.home, **kwargs)
