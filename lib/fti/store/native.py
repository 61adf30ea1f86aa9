"""The ``native`` backend (the default): the Delta Spark connector, as on clusters and Databricks.

A write runs the connector's own ``WriteIntoDelta`` (its file writer, statistics, ``replaceWhere``, schema
merge and NOT NULL checks) inside an ``OptimisticTransaction`` that fti opens and commits itself, so that the
ONE data commit also carries several ``SetTransaction`` actions: the run's retry guard and the watermark of
each raw source it read (``df.write`` takes only one, through ``txnAppId``/``txnVersion``). The guard and the
watermarks are registered as read by the transaction, so a concurrent run that commits the same guard first
makes this commit conflict (``ConcurrentTransactionException``, or ``ConcurrentAppendException`` first for a
replace), which is reported as "skipped: another run wrote it".

The connector rebuilds a table's log state with Spark jobs (three per table) whenever a write needs its file
list or its transaction versions. An incremental run mostly replaces days that no file holds yet, so such a
replace is written as an append that reads the whole table (the same conflicts as the replace, no file to
list), its rows checked against the predicate in the write's own pass; appends and such replaces take the
transaction versions from the log without Spark (the same read version) and register them with the
transaction as ``txnVersion`` does.

Reads use ``versionAsOf``; the log (history, watermarks, file lists) is read Spark-free
(:mod:`fti.store.delta_log`). Commit metadata goes into ``userMetadata`` and is read back with the same keys
as the bridge's.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import unquote

from fti.errors import ConcurrentRunError, SchemaMismatchError
from fti.location import Location
from fti.store.base import PROTOCOL_PROPERTIES, TableStore
from fti.store.faults import fault_point
from fti.store.predicate import Match
from fti.store.records import WATERMARK_PREFIX, CommitResult, Metadata, RunContext, Txn, WriteMode, resolve_metadata
from fti.store.schema import check_schema, spark_to_delta

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# Connector features a table must not get, so that every reader fti supports reads it (delta.minWriterVersion
# 2 keeps the writer protocol legacy: no table features).
NATIVE_TABLE_PROPERTIES = {
    **PROTOCOL_PROPERTIES,
    "delta.enableDeletionVectors": "false",
    "delta.columnMapping.mode": "none",
}


# the error a write raises for a row that the replace predicate does not cover, when the replace is written as an append
_NOT_COVERED = "fti: a row is not covered by the replace predicate"


def _java_class(exc: BaseException) -> str:
    """The Java exception class behind a py4j / PySpark error ('' when there is none)."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    try:
        return java.getClass().getName() if java is not None else ""
    except Exception:  # noqa: BLE001 - a dead gateway: no class to report
        return ""


class CommitAbandoned(KeyboardInterrupt):
    """A second interrupt while the JVM commits: the Python side gives up waiting; whether the commit landed is
    unknown, so its files are kept (a vacuum removes them if it did not)."""


@contextmanager
def _interrupts_held(what: str) -> Iterator[None]:
    """Hold Ctrl-C while the main thread waits in py4j for a JVM call that cannot be taken back (a commit).

    An interrupt aborts only the Python side of a py4j call: the JVM goes on and may write the commit after
    the failed write's clean-up looked at the log and deleted the files the commit then references. Held, the
    interrupt is raised once the call returned, when the log tells for sure whether the commit landed. A second
    interrupt raises :class:`CommitAbandoned` at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:
            raise CommitAbandoned(f"interrupted twice while {what}: its files are kept")
        log.warning("interrupt received while %s: waiting for it to finish (interrupt again to stop at once)", what)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _is_conflict(exc: BaseException) -> bool:
    """A lost optimistic-commit race (ConcurrentTransaction, ConcurrentAppend, ConcurrentDeleteRead...)."""
    return "Concurrent" in _java_class(exc) or "DELTA_CONCURRENT" in str(exc)[:2000]


class _Scala:
    """The few Scala values the transaction API needs, built through py4j."""

    def __init__(self, spark: Any) -> None:
        self.jvm = spark._jvm  # noqa: SLF001 - py4j is the only way to reach the connector's Scala API
        self.jspark = spark._jsparkSession  # noqa: SLF001
        self.utils = self.jvm.org.apache.spark.api.python.PythonUtils
        self.delta = self.jvm.org.apache.spark.sql.delta

    def none(self) -> Any:
        return self.jvm.scala.Option.empty()

    def some(self, value: Any) -> Any:
        return self.jvm.scala.Some(value)

    def opt(self, value: Any) -> Any:
        return self.none() if value is None else self.some(value)

    def seq(self, values: Sequence[Any]) -> Any:
        return self.utils.toSeq(list(values))

    def map(self, values: Mapping[str, str]) -> Any:
        return self.utils.toScalaMap(dict(values))

    def save_mode(self, mode: str) -> Any:
        modes = self.jvm.org.apache.spark.sql.SaveMode
        return modes.Append if mode == "append" else modes.Overwrite

    @contextmanager
    def active(self, txn: Any) -> Iterator[None]:
        """Make ``txn`` the thread's active transaction, as ``DeltaLog.withNewTransaction`` does."""
        companion = getattr(getattr(self.delta, "OptimisticTransaction$"), "MODULE$")
        companion.setActive(txn)
        try:
            yield
        finally:
            companion.clearActive()


class NativeStore(TableStore):
    """Delta tables read and written by the Delta Spark connector."""

    backend_name = "native"

    def _delta_spark(self, name: str) -> Any:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.uri(name))

    @contextmanager
    def _user_metadata(self, run: RunContext, operation: str, extra: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Commit metadata for a connector operation that takes it only from the session conf."""
        self.spark.conf.set(USER_METADATA, json.dumps(self.commit_metadata(run, operation, extra)))
        try:
            yield
        finally:
            self.spark.conf.unset(USER_METADATA)

    def create_table(self, name: str, schema: StructType, *, kind: str, partition_by: Sequence[str] = (),
                     description: str = "", properties: Mapping[str, str] | None = None) -> int:
        from delta.tables import DeltaTable

        spark_to_delta(schema, table=name)  # refuses types other Delta readers cannot read
        self._check_partition_columns(name, schema, partition_by)
        with self.commit_lock(name):
            if self.exists(name):
                check_schema(schema, self.schema(name), table=name)
                return self.version(name)
            self.clear_uncommitted_log(name)
            builder = DeltaTable.createIfNotExists(self.spark).location(self.uri(name)).addColumns(schema)
            if partition_by:
                builder = builder.partitionedBy(*partition_by)
            if description:
                builder = builder.comment(description)
            for key, value in {**NATIVE_TABLE_PROPERTIES, **self.table_properties_for(kind, properties)}.items():
                builder = builder.property(key, value)
            with self._user_metadata(RunContext(pipeline="fti"), "create"):
                builder.execute()
        if self._catalog is not None:
            self._register_name(name)
        log.info("created table %s (%s)", name, kind)
        return 0

    # ----------------------------------------------------------------------------- write
    def write(self, name: str, df: DataFrame, *, mode: WriteMode = "append", where: Match | None = None,
              txn: Txn | None = None, watermarks: Mapping[str, int] | None = None,
              inputs: Mapping[str, int] | None = None, records: Sequence[Txn] = (), run: RunContext | None = None,
              allow_new_columns: bool = False, metadata: Metadata | None = None) -> CommitResult:
        from pyspark.sql import functions as F

        self._check_write_args(name, mode, where)
        run = run or RunContext()
        table_schema = self.schema(name)
        new_cols = check_schema(df.schema, table_schema, table=name, allow_new_columns=allow_new_columns)
        df = df.select(*(table_schema.fieldNames() + new_cols))
        if txn is not None and self.is_applied(name, txn):
            log.info("%s: transaction %s/%s already applied, nothing written", name, txn.app_id, txn.version)
            return CommitResult(table=name, version=self.version(name), skipped=True)

        scala = _Scala(self.spark)
        delta_log = scala.delta.DeltaLog.forTable(scala.jspark, self.uri(name))
        jtxn = delta_log.startTransaction(scala.none(), scala.none())
        read_version = int(jtxn.readVersion())
        options = {"mergeSchema": "true"} if allow_new_columns else {}
        # A replace that covers no live file of the read version (new days: the usual incremental run) removes
        # nothing. It is written as an append: the connector then needs no state reconstruction of the table's
        # log (three Spark jobs per table for the file list and the transaction versions). It still depends on
        # the table: the whole table counts as read (a concurrent commit that adds files conflicts, as with the
        # replace) and every row must be covered (the replace's check, made in the write's own pass).
        covers_nothing = where is not None and read_version >= 0 and not self.files_holding(name, where, version=read_version)
        if where is not None and not covers_nothing:
            options["replaceWhere"] = where.sql()
        elif covers_nothing:
            jtxn.readWholeTable()
            df = df.where(F.assert_true(where.column(), F.lit(f"{_NOT_COVERED} {where.sql()}")).isNull())
        # the transaction versions this write depends on, registered as read by the transaction (a concurrent
        # commit of one of them conflicts); taken from the log without Spark unless the write reconstructs the
        # state anyway
        versions = self._txn_versions(jtxn, name, read_version, spark_free=mode == "append" or covers_nothing)
        if txn is not None and txn.applied_in(versions(txn.app_id)):
            return CommitResult(table=name, version=read_version, skipped=True)
        inputs = dict(watermarks or {}, **(inputs or {}))
        self._check_inputs(name, inputs, {s: versions(WATERMARK_PREFIX + s) for s in inputs})
        save_mode = "append" if covers_nothing else mode
        fault_point("before_files", table=name)
        written: list[str] = []
        try:
            command = scala.delta.commands.WriteIntoDelta(
                delta_log, scala.save_mode(save_mode), scala.delta.DeltaOptions(scala.map(options), scala.jspark.sessionState().conf()),
                scala.seq([]), scala.map({}), df._jdf, scala.none(), scala.none(), False)  # noqa: SLF001
            with scala.active(jtxn):
                actions = command.writeAndReturnCommitData(jtxn, scala.jspark, scala.none(), False).actions()
            written, removed, rows = self._file_actions_summary(actions)
            fault_point("after_files", table=name)
            now = self._now_ms()
            for app_id, version in ([(txn.app_id, txn.version)] if txn else []) + [
                    (WATERMARK_PREFIX + s, int(v)) for s, v in (watermarks or {}).items()] + [
                    (r.app_id, r.version) for r in records]:
                jtxn.updateSetTransaction(app_id, int(version), scala.some(now))
            user_metadata = json.dumps(self.commit_metadata(
                run, mode, {**({"fti.predicate": where.sql()} if where else {}), **resolve_metadata(metadata)}))
            operation = getattr(scala.delta, "DeltaOperations$Write")(
                scala.save_mode(save_mode), scala.some(scala.seq(self.partition_by(name))),
                scala.opt(where.sql() if where else None), scala.some(user_metadata),
                scala.none(), scala.none(), scala.some(True) if allow_new_columns else scala.none(),
                scala.none(), scala.none())
            with self.commit_lock(name):
                with _interrupts_held(f"committing {name}"):
                    version = int(jtxn.commit(actions, operation))
                fault_point("after_log_write", table=name)  # an error here must keep the committed files
        except BaseException as exc:
            landed = isinstance(exc, CommitAbandoned) or not self._not_landed(name, read_version, written)
            if not landed:
                self._remove_files(name, written)
            if not isinstance(exc, Exception):
                raise
            # whichever conflict the connector saw first, a write whose guard another run committed meanwhile is
            # redundant: report it as skipped
            if txn is not None and not landed and _is_conflict(exc) and self.is_applied(name, txn):
                log.info("%s: transaction %s/%s committed concurrently, this run's files discarded",
                         name, txn.app_id, txn.version)
                return CommitResult(table=name, version=self.version(name), skipped=True)
            translated = self._translate(name, exc, where)
            if translated is exc:
                raise
            raise translated from exc
        fault_point("after_commit", table=name)
        log.info("%s: committed version %d (%s, %d rows, +%d/-%d files)", name, version, mode, rows, len(written),
                 removed)
        self.compact_if_needed(name, run=run)
        return CommitResult(table=name, version=version, rows=rows, files_added=len(written), files_removed=removed)

    def _txn_versions(self, jtxn: Any, name: str, read_version: int, *, spark_free: bool) -> Callable[[str], int | None]:
        """A reader of the transaction versions of the transaction's read version that registers each id as read
        (a concurrent commit of it conflicts). The connector's ``txnVersion`` reconstructs the log's state with
        Spark; ``spark_free`` reads the same version's log with delta-rs instead."""

        log_at_read = self._delta(name, read_version) if spark_free and read_version >= 0 else None  # loaded once

        def version(app_id: str) -> int | None:
            if spark_free:
                jtxn.readTxn().addOne(app_id)  # what txnVersion registers
                return log_at_read.transaction_version(app_id) if log_at_read is not None else None
            recorded = int(jtxn.txnVersion(app_id))
            return None if recorded < 0 else recorded

        return version

    @staticmethod
    def _file_actions_summary(actions: Any) -> tuple[list[str], int, int]:
        """(paths of the files added, relative to the table root; files removed; rows added) of the write's actions."""
        added: list[str] = []
        removed = 0
        rows = 0
        iterator = actions.iterator()
        while iterator.hasNext():
            action = iterator.next()
            kind = action.getClass().getSimpleName()
            if kind == "AddFile":
                added.append(action.path())
                stats = action.stats()
                if stats:
                    rows += int(json.loads(stats).get("numRecords", 0))
            elif kind == "RemoveFile":
                removed += 1
        return added, removed, rows

    def _translate(self, name: str, exc: Exception, where: Match | None) -> Exception:
        """A connector error as the error fti raises for the same problem on the bridge."""
        cls = _java_class(exc)
        text = str(exc)
        if "InvariantViolation" in cls or "DELTA_NOT_NULL_CONSTRAINT_VIOLATED" in text or "NOT NULL constraint" in text:
            column = text.split("NOT NULL constraint violated for column:", 1)[-1].split(".")[0].strip() \
                if "NOT NULL constraint violated for column:" in text else "?"
            return SchemaMismatchError(f"cannot write to {name}: column '{column}' has null row(s); the table "
                                       "declares it NOT NULL", hint="filter or fill those rows before writing")
        if where is not None and (_NOT_COVERED in text or "DELTA_REPLACE_WHERE_MISMATCH" in text or "does not conform to partial table "
                                  "overwrite" in text):
            return ValueError(f"cannot replace rows of {name}: some rows of the data are not covered by the "
                              f"replace predicate {where.sql()}; nothing was written")
        if _is_conflict(exc):
            return ConcurrentRunError(f"another writer changed {name} while this run wrote it "
                                      f"({cls.rsplit('.', 1)[-1]}); nothing was committed",
                                      hint="rerun: the next run reads the new version")
        return exc

    def _not_landed(self, name: str, read_version: int, written: Sequence[str]) -> bool:
        """Whether the failed write's commit is known NOT to have happened (only then may its files go)."""
        if not written:
            return True
        try:
            return self.commit_landed(name, after=read_version, paths=self._absolute(name, written)) is None
        except Exception:  # noqa: BLE001 - cannot tell: keep the files (vacuum removes orphans later)
            log.warning("%s: could not tell whether the failed commit landed; its files are kept", name)
            return False

    def _absolute(self, name: str, relative: Sequence[str]) -> list[str]:
        root = self.path(name)
        return [(root / unquote(p)).uri for p in relative]

    def _remove_files(self, name: str, written: Sequence[str]) -> None:
        """Delete the data files of a write whose commit did not land (this run's files, by exact path)."""
        for path in self._absolute(name, written):
            Location(path).unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- read and small operations
    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        resolved = self.resolve_version(name, version=version, timestamp=timestamp)
        return self.spark.read.format("delta").option("versionAsOf", resolved).load(self.uri(name))

    def merge(self, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None,
              run: RunContext | None = None) -> CommitResult:
        run = run or RunContext()
        table_schema = self.schema(name)
        check_schema(df.schema, table_schema, table=name)
        if not keys or any(k not in table_schema.fieldNames() for k in keys):
            raise SchemaMismatchError(f"merge keys {list(keys)} must be columns of {name}")
        if txn is not None and self.is_applied(name, txn):
            return CommitResult(table=name, version=self.version(name), skipped=True)
        cond = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        with self.commit_lock(name), self._user_metadata(run, "merge"), self._session_txn(txn):
            self._delta_spark(name).alias("t").merge(df.alias("s"), cond).whenMatchedUpdateAll() \
                .whenNotMatchedInsertAll().execute()
        return CommitResult(table=name, version=self.version(name))

    @contextmanager
    def _session_txn(self, txn: Txn | None) -> Iterator[None]:
        """One application transaction on a DML command (the connector's session-level idempotency)."""
        if txn is None:
            yield
            return
        self.spark.conf.set("spark.databricks.delta.write.txnAppId", txn.app_id)
        self.spark.conf.set("spark.databricks.delta.write.txnVersion", str(txn.version))
        try:
            yield
        finally:
            self.spark.conf.unset("spark.databricks.delta.write.txnAppId")
            self.spark.conf.unset("spark.databricks.delta.write.txnVersion")

    def delete(self, name: str, predicate: str, *, run: RunContext | None = None) -> CommitResult:
        run = run or RunContext()
        with self.commit_lock(name), self._user_metadata(run, "delete", {"fti.predicate": predicate}):
            self._delta_spark(name).delete(predicate)
        last = self.history(name, limit=1)[0]
        metrics = last.get("operationMetrics") or {}
        return CommitResult(table=name, version=last["version"], rows=int(metrics.get("numDeletedRows", 0)),
                            files_added=int(metrics.get("numAddedFiles", 0)),
                            files_removed=int(metrics.get("numRemovedFiles", 0)))

    def compact(self, name: str, *, run: RunContext | None = None) -> CommitResult:
        run = run or RunContext()
        before = self.version(name)
        with self.commit_lock(name), self._user_metadata(run, "compact"):
            self._delta_spark(name).optimize().executeCompaction()
        last = self.history(name, limit=1)[0]
        metrics = last.get("operationMetrics") or {}
        return CommitResult(table=name, version=last["version"], skipped=last["version"] == before,
                            files_added=int(metrics.get("numAddedFiles", 0)),
                            files_removed=int(metrics.get("numRemovedFiles", 0)))

    def set_properties(self, name: str, properties: Mapping[str, str], *, run: RunContext | None = None) -> int:
        run = run or RunContext()
        pairs = ", ".join(f"'{k}' = '{v.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
                          for k, v in properties.items())
        with self.commit_lock(name), self._user_metadata(run, "set_properties"):
            self.spark.sql(f"ALTER TABLE delta.`{self.uri(name)}` SET TBLPROPERTIES ({pairs})")
        return self.version(name)
