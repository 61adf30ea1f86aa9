"""The ``delta-rs`` backend: Spark writes parquet on the executors, the driver commits with ``deltalake``.

Write path of one :meth:`DeltaRsStore.write` call:

1. check the DataFrame against the table schema (names, types, nullability);
2. Spark writes parquet (TIMESTAMP_MICROS) into ``<home>/_staging/<run_id>/``, outside every table root;
3. the files are moved under the table root, renamed ``part-NNNNN-<run_id>.snappy.parquet`` so that a
   cleanup only ever touches this run's files;
4. under the table's commit lock, the transaction id is checked (a retried commit is skipped), the
   files to remove are listed from the current snapshot, and ONE Delta commit adds and removes files
   with per-file statistics, the run's commit metadata and app transactions (transaction id and
   watermarks), so the state is recorded IN the commit it describes;
5. any failure removes this run's files; the table stays at its previous version.

Executors never call ``deltalake`` (its runtime must not run in forked processes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import unquote

from fti.errors import SchemaMismatchError
from fti.store.base import (
    WATERMARK_PREFIX,
    CommitResult,
    RunContext,
    TableStore,
    Txn,
    WriteMode,
    format_partition_value,
)
from fti.store.faults import fault_point
from fti.store.schema import check_schema, delta_to_spark, spark_to_delta
from fti.store.stats import parquet_file_stats

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def check_not_null(df: DataFrame, schema: StructType, *, table: str) -> None:
    """Refuse nulls in columns the table declares NOT NULL, naming the column and the row count."""
    from pyspark.sql import functions as F

    required = [f.name for f in schema.fields if not f.nullable]
    if not required:
        return
    nullable_in_df = {f.name for f in df.schema.fields if f.nullable}
    to_check = [c for c in required if c in nullable_in_df]
    if not to_check:
        return
    row = df.agg(*[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in to_check]).collect()[0]
    bad = {c: row[c] for c in to_check if row[c]}
    if bad:
        detail = ", ".join(f"'{c}' has {n} null row(s)" for c, n in bad.items())
        raise SchemaMismatchError(f"cannot write to {table}: {detail}; the table declares them NOT NULL",
                                  hint="filter or fill those rows before writing")


class DeltaRsStore(TableStore):
    """Delta tables written by Spark (parquet) and committed by delta-rs on the driver."""

    backend_name = "delta-rs"

    # ----------------------------------------------------------------------------- create
    def create_table(self, name: str, schema: StructType, *, kind: str, partition_by: Sequence[str] = (),
                     description: str = "", properties: Mapping[str, str] | None = None) -> int:
        from deltalake import DeltaTable
        from deltalake.transaction import CommitProperties

        delta_schema = spark_to_delta(schema, table=name)
        for col in partition_by:
            if col not in schema.fieldNames():
                raise SchemaMismatchError(f"partition column '{col}' of {name} is not in its schema")
        with self.commit_lock(name):
            if self.exists(name):
                existing = self.schema(name)
                check_schema(schema, existing, table=name)
                return self.version(name)
            self.path(name).mkdir(parents=True, exist_ok=True)
            DeltaTable.create(
                self.uri(name),
                delta_schema,
                partition_by=list(partition_by) or None,
                name=name.replace("/", "."),
                description=description or None,
                configuration=self.table_properties_for(kind, properties),
                raise_if_key_not_exists=False,
                commit_properties=CommitProperties(
                    custom_metadata=self.commit_metadata(RunContext(pipeline="fti"), "create")
                ),
            )
        log.info("created table %s (%s)", name, kind)
        return 0

    # ----------------------------------------------------------------------------- write
    def write(self, name: str, df: DataFrame, *, mode: WriteMode = "append",
              partitions: Sequence[Mapping[str, Any]] | None = None, txn: Txn | None = None,
              watermarks: Mapping[str, int] | None = None, run: RunContext | None = None,
              allow_new_columns: bool = False, metadata: Mapping[str, Any] | None = None) -> CommitResult:
        """Write ``df`` to ``name`` in one commit.

        Args:
            name: Table name (must exist: see :meth:`create_table`).
            df: Data to write.
            mode: ``append``; ``overwrite`` (replace every row); ``replace_partitions`` (replace exactly
                the rows of ``partitions``, which ``df`` must stay inside).
            partitions: Partition values to replace, e.g. ``[{"event_date": date(2013, 1, 1)}]``.
            txn: Application transaction; if the table already reached ``txn.version`` nothing is written.
            watermarks: Raw source versions this data covers, recorded in the same commit.
            run: Run id and pipeline name for commitInfo and file names.
            allow_new_columns: Schema evolution: add df columns the table lacks (old rows read as null).
            metadata: More commitInfo entries.

        Returns:
            What was committed.

        Raises:
            SchemaMismatchError: Before anything is written, if ``df`` does not fit the table.
            ValueError: If ``df`` holds rows outside ``partitions``.
        """
        from deltalake import DeltaTable
        from deltalake.transaction import AddAction, CommitProperties, Transaction

        run = run or RunContext()
        table_schema = self.schema(name)
        part_cols = self.partition_by(name)
        new_cols = check_schema(df.schema, table_schema, table=name, allow_new_columns=allow_new_columns)
        check_not_null(df, table_schema, table=name)
        columns = table_schema.fieldNames() + new_cols
        df = df.select(*columns)
        wanted = self._wanted_partitions(name, mode, partitions, part_cols)

        if txn is not None and self._applied(name, txn):
            log.info("%s: transaction %s/%s already applied, nothing written", name, txn.app_id, txn.version)
            return CommitResult(table=name, version=self.version(name), skipped=True)

        fault_point("before_files", table=name)
        root = self.path(name)
        staging = self.home / "_staging" / run.run_id / name.replace("/", "__")
        moved: list[Path] = []
        try:
            writer = df.write.mode("overwrite").option("compression", "snappy")
            if part_cols:
                writer = writer.partitionBy(*part_cols)
            writer.parquet(str(staging))
            adds = []
            rows = 0
            for seq, (src, rel_dir, pvalues) in enumerate(self._staged_files(staging, part_cols)):
                if mode == "replace_partitions":
                    key = tuple(pvalues[c] for c in part_cols)
                    if key not in wanted:
                        raise ValueError(
                            f"cannot replace partitions of {name}: the data holds rows for "
                            f"{dict(zip(part_cols, key))}, which is not among the partitions to replace"
                        )
                target_dir = root / rel_dir if rel_dir else root
                target_dir.mkdir(parents=True, exist_ok=True)
                target = target_dir / f"part-{seq:05d}-{run.run_id}.snappy.parquet"
                os.replace(src, target)
                moved.append(target)
                count, stats = parquet_file_stats(str(target))
                if count == 0:
                    target.unlink()
                    moved.remove(target)
                    continue
                rows += count
                rel_path = target.relative_to(root).as_posix()
                adds.append(AddAction(rel_path, target.stat().st_size, pvalues, int(target.stat().st_mtime * 1000),
                                      True, stats))
            fault_point("after_files", table=name)

            with self.commit_lock(name):
                delta = DeltaTable(self.uri(name))
                if txn is not None and (delta.transaction_version(txn.app_id) or -1) >= txn.version:
                    log.info("%s: transaction %s/%s committed concurrently, discarding this run's files",
                             name, txn.app_id, txn.version)
                    self._remove(moved)
                    return CommitResult(table=name, version=delta.version(), skipped=True)
                removes = self._removes(delta, mode, wanted, part_cols)
                apps = [Transaction(txn.app_id, txn.version, self._now_ms())] if txn else []
                for source, version in (watermarks or {}).items():
                    apps.append(Transaction(WATERMARK_PREFIX + source, int(version), self._now_ms()))
                commit_schema = spark_to_delta(table_schema, table=name)
                if new_cols:
                    # Schema evolution is its own commit (a new version where old rows read as null),
                    # made only once the data files are ready; the data commit follows at once.
                    commit_schema = self._evolved_schema(table_schema, df.schema, name)
                    delta.alter.add_columns(
                        [f for f in commit_schema.fields if f.name in new_cols],
                        commit_properties=CommitProperties(
                            custom_metadata=self.commit_metadata(run, "add_columns", {"fti.columns": new_cols})),
                    )
                    delta = DeltaTable(self.uri(name))
                delta.create_write_transaction(
                    adds + removes,
                    mode="append",
                    schema=commit_schema,
                    partition_by=part_cols or None,
                    commit_properties=CommitProperties(
                        custom_metadata=self.commit_metadata(run, mode, metadata),
                        app_transactions=apps or None,
                    ),
                )
                version = DeltaTable(self.uri(name)).version()
        except BaseException:
            self._remove(moved)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            parent = staging.parent
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        fault_point("after_commit", table=name)
        log.info("%s: committed version %d (%s, %d rows, +%d/-%d files)", name, version, mode, rows, len(adds),
                 len(removes))
        return CommitResult(table=name, version=version, rows=rows, files_added=len(adds), files_removed=len(removes))

    def _applied(self, name: str, txn: Txn) -> bool:
        current = self.transaction_version(name, txn.app_id)
        return current is not None and current >= txn.version

    @staticmethod
    def _wanted_partitions(name: str, mode: str, partitions: Sequence[Mapping[str, Any]] | None,
                           part_cols: Sequence[str]) -> set[tuple[str | None, ...]]:
        if mode not in ("append", "overwrite", "replace_partitions"):
            raise ValueError(f"mode must be append, overwrite or replace_partitions, not {mode!r}")
        if mode != "replace_partitions":
            if partitions:
                raise ValueError("partitions= is only for mode='replace_partitions'")
            return set()
        if not part_cols:
            raise ValueError(f"{name} is not partitioned: use mode='overwrite'")
        if partitions is None:
            raise ValueError("replace_partitions needs partitions=[{column: value, ...}, ...]")
        wanted = set()
        for part in partitions:
            if set(part) != set(part_cols):
                raise ValueError(f"partition {dict(part)} must give exactly the columns {list(part_cols)}")
            wanted.add(tuple(format_partition_value(part[c]) for c in part_cols))
        return wanted

    @staticmethod
    def _staged_files(staging: Path, part_cols: Sequence[str]) -> list[tuple[Path, str, dict[str, str | None]]]:
        found = []
        for dirpath, dirnames, filenames in os.walk(staging):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
            for fname in sorted(filenames):
                if not fname.endswith(".parquet") or fname.startswith(("_", ".")):
                    continue
                rel_dir = Path(dirpath).relative_to(staging).as_posix()
                rel_dir = "" if rel_dir == "." else rel_dir
                values: dict[str, str | None] = {}
                for segment in filter(None, rel_dir.split("/")):
                    col, _, raw = segment.partition("=")
                    if unquote(raw) != raw:
                        raise ValueError(
                            f"partition value {unquote(raw)!r} of column '{col}' needs escaping in a path; "
                            "partition by a column with plain values (dates, codes)"
                        )
                    values[col] = None if raw == _HIVE_NULL else raw
                if set(values) != set(part_cols):
                    raise RuntimeError(f"unexpected staged file layout {rel_dir!r} for partitions {part_cols}")
                found.append((Path(dirpath) / fname, rel_dir, values))
        return found

    def _removes(self, delta: Any, mode: str, wanted: set[tuple[str | None, ...]], part_cols: Sequence[str]) -> list:
        import pyarrow as pa
        from deltalake.transaction import RemoveAction

        if mode == "append":
            return []
        actions = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
        removes = []
        now = self._now_ms()
        for action in actions:
            pvalues = {c: format_partition_value(action.get(f"partition.{c}")) for c in part_cols}
            if mode == "replace_partitions" and tuple(pvalues[c] for c in part_cols) not in wanted:
                continue
            removes.append(RemoveAction(action["path"], True, now, action["size_bytes"], pvalues or None))
        return removes

    @staticmethod
    def _evolved_schema(table_schema: StructType, df_schema: StructType, name: str) -> Any:
        from pyspark.sql.types import StructField, StructType

        fields = list(table_schema.fields)
        for field in df_schema.fields:
            if field.name not in table_schema.fieldNames():
                fields.append(StructField(field.name, field.dataType, True))
        return spark_to_delta(StructType(fields), table=name)

    @staticmethod
    def _remove(paths: Sequence[Path]) -> None:
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # ----------------------------------------------------------------------------- read
    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        """Read a table at its latest version, a version, or the version current at a commit time.

        The file list of that version comes from the Delta log; Spark reads the parquet files (distributed).
        """
        resolved = self.resolve_version(name, version=version, timestamp=timestamp)
        delta = self._delta(name, resolved)
        schema = delta_to_spark(delta.schema())
        files = list(delta.file_uris())
        if not files:
            return self.spark.createDataFrame([], schema)
        df = self.spark.read.schema(schema).option("basePath", self.uri(name)).parquet(*files)
        return df.select(*schema.fieldNames())

    # ----------------------------------------------------------------------------- small operations
    def merge(self, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None,
              run: RunContext | None = None) -> CommitResult:
        """Upsert ``df`` on ``keys`` through delta-rs (the rows pass through the driver: small upserts only)."""
        from deltalake import DeltaTable
        from deltalake.transaction import CommitProperties, Transaction

        run = run or RunContext()
        table_schema = self.schema(name)
        check_schema(df.schema, table_schema, table=name)
        check_not_null(df, table_schema, table=name)
        missing = [k for k in keys if k not in table_schema.fieldNames()]
        if not keys or missing:
            raise ValueError(f"merge keys {list(keys)} must be columns of {name}")
        source = df.select(*table_schema.fieldNames()).toArrow()
        import pyarrow as pa

        target = pa.schema(self._delta(name).schema().to_arrow())
        source = pa.Table.from_batches(source.to_batches(), schema=source.schema).select(target.names)
        source = source.cast(pa.schema([f.with_nullable(True) for f in target]))
        with self.commit_lock(name):
            delta = DeltaTable(self.uri(name))
            if txn is not None and (delta.transaction_version(txn.app_id) or -1) >= txn.version:
                return CommitResult(table=name, version=delta.version(), skipped=True)
            apps = [Transaction(txn.app_id, txn.version, self._now_ms())] if txn else None
            predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
            metrics = (
                delta.merge(source, predicate, source_alias="s", target_alias="t",
                            commit_properties=CommitProperties(custom_metadata=self.commit_metadata(run, "merge"),
                                                               app_transactions=apps))
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            version = DeltaTable(self.uri(name)).version()
        return CommitResult(table=name, version=version, rows=source.num_rows,
                            files_added=int(metrics.get("num_target_files_added", 0)),
                            files_removed=int(metrics.get("num_target_files_removed", 0)))

    def delete(self, name: str, predicate: str, *, run: RunContext | None = None) -> CommitResult:
        from deltalake import DeltaTable
        from deltalake.transaction import CommitProperties

        run = run or RunContext()
        with self.commit_lock(name):
            delta = DeltaTable(self.uri(name))
            metrics = delta.delete(predicate, commit_properties=CommitProperties(
                custom_metadata=self.commit_metadata(run, "delete", {"fti.predicate": predicate})))
            version = DeltaTable(self.uri(name)).version()
        return CommitResult(table=name, version=version, rows=int(metrics.get("num_deleted_rows", 0)),
                            files_added=int(metrics.get("num_added_files", 0)),
                            files_removed=int(metrics.get("num_removed_files", 0)))

    def compact(self, name: str, *, run: RunContext | None = None) -> CommitResult:
        from deltalake import DeltaTable
        from deltalake.transaction import CommitProperties

        run = run or RunContext()
        with self.commit_lock(name):
            delta = DeltaTable(self.uri(name))
            before = delta.version()
            metrics = delta.optimize.compact(commit_properties=CommitProperties(
                custom_metadata=self.commit_metadata(run, "compact")))
            version = DeltaTable(self.uri(name)).version()
        return CommitResult(table=name, version=version, skipped=version == before,
                            files_added=int(metrics.get("numFilesAdded", 0)),
                            files_removed=int(metrics.get("numFilesRemoved", 0)))
