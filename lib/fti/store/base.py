"""The store interface: what both Delta backends do (``native.py``: the connector; ``delta_rs.py``: the bridge).

A store is the home's Spark-free log reader (:class:`~fti.store.delta_log.DeltaLog`) plus a Spark session
that reads and writes data. Every write is ONE Delta commit that carries the run's metadata and, where
given, the application transactions (a retry guard and the raw-source watermarks) of the data it adds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import ConcurrentRunError, FtiError, SchemaMismatchError
from fti.location import Location
from fti.store.delta_log import DeltaLog
from fti.store.locks import commit_lock, run_lock, system_lock
from fti.store.predicate import Match
from fti.store.records import KINDS, CommitResult, Metadata, Pin, RunContext, Txn, WriteMode

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

# Layout: fti tables are not partitioned by day (a year would leave hundreds of small files). A write
# replaces rows by predicate; once a table holds more live files than this, the store compacts it (a
# commit without data change, which incremental readers see through).
COMPACT_ABOVE_FILES = 24
# Table protocol: reader 1 / writer 2 (NOT NULL invariants) and no table features, so that the connector,
# delta-rs, polars and DuckDB read every version.
PROTOCOL_PROPERTIES = {
    "delta.minReaderVersion": "1",
    "delta.minWriterVersion": "2",
}


class TableStore(DeltaLog, ABC):
    """Delta tables under one home folder, read and written with Spark.

    Args:
        spark: The Spark session used to read and write data.
        home: The home folder; tables live at ``home/<name>``.
        retention_days: Log and file retention set on every table created.
        checkpoint_interval: Delta checkpoint interval set on every table created.
        compact_above_files: Compact a table after a write leaves more live files than this (0: never).
    """

    backend_name = "abstract"

    def __init__(self, spark: SparkSession, home: str | os.PathLike[str] | Location, *, retention_days: int = 365,
                 checkpoint_interval: int = 10, compact_above_files: int = COMPACT_ABOVE_FILES) -> None:
        super().__init__(home)
        self.spark = spark
        self.retention_days = retention_days
        self.checkpoint_interval = checkpoint_interval
        self.compact_above_files = compact_above_files
        self._catalog: str | None = None  # set by register_names: tables created later get a name too

    # ----------------------------------------------------------------------------- tables by name
    def register_names(self, *, catalog: str = "") -> list[str]:
        """Make every table of the home queryable by name in this Spark session, and every table created later.

        ``flights/carrier_delay`` becomes the external Delta table ``flights.carrier_delay`` at its location
        (deeper names join their parts with ``__``; characters other than letters, digits and ``_`` become ``_``). With the local session catalog the names live as long as
        the session; with a persistent catalog (Unity Catalog: ``delta.catalog: main``) they stay.

        Args:
            catalog: Catalog to register in (empty: the session's current catalog).

        Returns:
            The SQL names registered.
        """
        self._catalog = catalog
        return [self._register_name(name) for name in self.list_tables()]

    @staticmethod
    def sql_name(name: str, *, catalog: str = "") -> str:
        """The SQL identifier of a table: ``flights/carrier_delay`` -> ```flights`.`carrier_delay```
        (catalogs accept only letters, digits and ``_`` in table names)."""
        schema, _, rest = name.partition("/")
        parts = [schema, rest.replace("/", "__")]
        parts = [re.sub(r"[^A-Za-z0-9_]", "_", p).lower() for p in parts]
        return ".".join(f"`{p}`" for p in ([catalog] if catalog else []) + parts)

    def _register_name(self, name: str) -> str:
        """Register one table by name; an earlier registration of the name at another location (another home
        opened in the same session) is moved, but a table fti did not register (managed, or not Delta) never is."""
        ident = self.sql_name(name, catalog=self._catalog or "")
        schema = ident.rsplit(".", 1)[0]
        location = self.uri(name)
        self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if self.spark.catalog.tableExists(ident):
            detail = {r["col_name"]: r["data_type"] for r in self.spark.sql(f"DESCRIBE TABLE EXTENDED {ident}").collect()}
            current = detail.get("Location", "").removeprefix("file:")
            if current.rstrip("/") == location.rstrip("/"):
                return ident.replace("`", "")
            if detail.get("Type") != "EXTERNAL" or detail.get("Provider", "").lower() != "delta":
                raise FtiError(f"cannot register {name} as {ident.replace('`', '')}: that name is taken by a "
                               f"{detail.get('Type', '?').lower()} table at {current or '?'}",
                               hint="set delta.catalog to another catalog, or drop that table")
            self.spark.sql(f"DROP TABLE {ident}")  # external: only the name goes, the data stays
        escaped = location.replace("'", "\\'")
        self.spark.sql(f"CREATE TABLE {ident} USING DELTA LOCATION '{escaped}'")
        return ident.replace("`", "")

    def table_properties_for(self, kind: str, properties: Mapping[str, str] | None) -> dict[str, str]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        props = {
            "delta.logRetentionDuration": f"interval {self.retention_days} days",
            "delta.deletedFileRetentionDuration": f"interval {self.retention_days} days",
            "delta.checkpointInterval": str(self.checkpoint_interval),
            "fti.kind": kind,
        }
        props.update(properties or {})
        return props

    def commit_lock(self, name: str) -> AbstractContextManager[None]:
        """Serialize commits to one table from processes on this machine (see :mod:`fti.store.locks`)."""
        return commit_lock(self.home, name)

    def run_lock(self, key: str, *, what: str, wait_s: float = 900.0) -> AbstractContextManager[None]:
        """Hold an exclusive lock on ``key`` across several store calls (see :mod:`fti.store.locks`)."""
        return run_lock(self.home, key, what=what, wait_s=wait_s)

    def system_lock(self, system: str, *, what: str, exclusive: bool = False,
                    wait_s: float = 900.0) -> AbstractContextManager[None]:
        """Hold the system's lock, shared by runs and landings, exclusive for a deletion (see :mod:`fti.store.locks`)."""
        return system_lock(self.home, system, what=what, exclusive=exclusive, wait_s=wait_s)

    def row_count(self, name: str, *, version: int | None = None) -> int:
        """Exact row count: from the log's per-file stats, or counted when a file lacks them."""
        counted = super().row_count(name, version=version)
        return counted if counted is not None else self.read(name, version=version).count()

    def read_files(self, name: str, paths: Sequence[str], *, version: int | None = None) -> DataFrame:
        """Read chosen data files of a table (with its schema and partition columns)."""
        schema = self.schema(name, version=version)
        if not paths:
            return self.spark.createDataFrame([], schema)
        df = self.spark.read.schema(schema).option("basePath", self.uri(name)).parquet(*paths)
        return df.select(*schema.fieldNames())

    def vacuum(self, name: str, *, retention_hours: float | None = None, pins: Sequence[Pin] = (),
               force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """See :func:`fti.store.vacuum.vacuum` (default retention: the table's own)."""
        from fti.store.vacuum import vacuum

        hours = self.file_retention_hours(name) if retention_hours is None else retention_hours
        return vacuum(self, name, retention_hours=hours, pins=pins, force=force, dry_run=dry_run)

    # ----------------------------------------------------------------------------- data (per backend)
    @abstractmethod
    def create_table(self, name: str, schema: StructType, *, kind: str, partition_by: Sequence[str] = (),
                     description: str = "", properties: Mapping[str, str] | None = None) -> int:
        """Create an empty table (no-op if it exists with the same schema). Returns its version."""

    @abstractmethod
    def write(self, name: str, df: DataFrame, *, mode: WriteMode = "append", where: Match | None = None,
              txn: Txn | None = None, watermarks: Mapping[str, int] | None = None,
              inputs: Mapping[str, int] | None = None, records: Sequence[Txn] = (), run: RunContext | None = None,
              allow_new_columns: bool = False, metadata: Metadata | None = None) -> CommitResult:
        """Write a DataFrame in ONE commit.

        Args:
            name: Table name (must exist: see :meth:`create_table`).
            df: Data to write.
            mode: ``append``; ``overwrite`` (replace every row); ``replace`` (replace exactly the rows that
                ``where`` covers; every row of ``df`` must be covered).
            where: The rows a ``replace`` covers.
            txn: Application transaction; if the table already reached ``txn.version`` nothing is written,
                and a concurrent run that commits it first makes this one a skip, not an error.
            watermarks: Raw source versions this data covers, recorded in the same commit.
            inputs: Raw source versions this data was computed from (default: ``watermarks``). The commit is
                refused when the table already covers a later version of one of them (a backfill that read
                raw v5 must not replace rows an incremental run wrote from v7), also when that later version
                is committed while this write runs.
            records: More application transactions to record in the same commit (e.g. a rejected batch).
            run: Run id and pipeline name for the commit metadata.
            allow_new_columns: Schema evolution: add df columns the table lacks (old rows read as null).
            metadata: More commit metadata, or a function that gives it once the data files are written
                (statistics observed in the write's pass).

        Returns:
            What was committed.

        Raises:
            SchemaMismatchError: Before anything is written, if ``df`` does not fit the table.
            ValueError: If a ``replace`` holds rows that ``where`` does not cover.
            ConcurrentRunError: Its ``inputs`` are older than what the table covers, or another writer changed
                the rows it replaces after it read them: nothing was committed.
        """

    @abstractmethod
    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        """Read a table, latest or at a version or a commit time."""

    @abstractmethod
    def merge(self, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None,
              run: RunContext | None = None) -> CommitResult:
        """Upsert rows on keys (small upserts)."""

    @abstractmethod
    def delete(self, name: str, predicate: str, *, run: RunContext | None = None) -> CommitResult:
        """Delete the rows matching a SQL predicate, in one commit."""

    @abstractmethod
    def compact(self, name: str, *, run: RunContext | None = None) -> CommitResult:
        """Rewrite small files into larger ones: one commit without data change."""

    @abstractmethod
    def set_properties(self, name: str, properties: Mapping[str, str], *, run: RunContext | None = None) -> int:
        """Set table properties (one commit). Returns the new version."""

    def append(self, name: str, df: DataFrame, **kwargs: Any) -> CommitResult:
        return self.write(name, df, mode="append", **kwargs)

    def overwrite(self, name: str, df: DataFrame, **kwargs: Any) -> CommitResult:
        return self.write(name, df, mode="overwrite", **kwargs)

    def replace_where(self, name: str, df: DataFrame, where: Match, **kwargs: Any) -> CommitResult:
        """Replace exactly the rows ``where`` covers (e.g. the days a late batch touched) with ``df``."""
        return self.write(name, df, mode="replace", where=where, **kwargs)

    def compact_if_needed(self, name: str, *, run: RunContext | None = None) -> CommitResult | None:
        """Compact a table whose latest version holds more live files than ``compact_above_files``."""
        if not self.compact_above_files:
            return None
        files = len(self.file_uris(name))
        if files <= self.compact_above_files:
            return None
        result = self.compact(name, run=run)
        log.info("%s: compacted %d files into %d (version %d)", name, result.files_removed, result.files_added,
                 result.version)
        return result

    # ----------------------------------------------------------------------------- helpers for the backends
    @staticmethod
    def _check_write_args(name: str, mode: str, where: Match | None) -> None:
        if mode not in ("append", "overwrite", "replace"):
            raise ValueError(f"mode must be append, overwrite or replace, not {mode!r}")
        if (mode == "replace") != (where is not None):
            raise ValueError(f"write to {name}: where= goes with mode='replace' (and only with it)")

    @staticmethod
    def _check_inputs(name: str, inputs: Mapping[str, int], covered: Mapping[str, int | None]) -> None:
        """Refuse a write computed from raw versions older than those the table already covers."""
        stale = {s: (v, covered[s]) for s, v in inputs.items() if covered.get(s) is not None and covered[s] > v}
        if stale:
            detail = ", ".join(f"{s} v{v} (the table covers v{c})" for s, (v, c) in sorted(stale.items()))
            raise ConcurrentRunError(
                f"refusing to commit to {name}: this run computed its rows from {detail}; committing would roll "
                "back newer data; nothing was committed",
                hint="rerun: the next run reads the current raw versions")

    @staticmethod
    def _check_partition_columns(name: str, schema: StructType, partition_by: Sequence[str]) -> None:
        for col in partition_by:
            if col not in schema.fieldNames():
                raise SchemaMismatchError(f"partition column '{col}' of {name} is not in its schema")

    @staticmethod
    def commit_metadata(run: RunContext, operation: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        meta = {"fti.run_id": run.run_id, "fti.pipeline": run.pipeline, "fti.operation": operation}
        for key, value in (extra or {}).items():
            meta[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)
        return meta

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)
