"""The ``native`` backend: the Delta Spark connector (clusters with the jar, Databricks).

Writes use ``df.write.format("delta")`` with ``replaceWhere`` for partition replaces and
``txnAppId``/``txnVersion`` for idempotent retries; reads use ``versionAsOf``. The log-reading half
(history, properties, app transactions) is shared with the delta-rs backend (``base.py``).

Not exercised on machines without the Delta jar (the tests skip with that reason).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import FtiError, SchemaMismatchError
from fti.store.base import WATERMARK_PREFIX, CommitResult, RunContext, TableStore, Txn, WriteMode, format_partition_value
from fti.store.delta_rs import check_not_null
from fti.store.faults import fault_point
from fti.store.schema import check_schema, spark_to_delta

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType


class NativeStore(TableStore):
    """Delta tables read and written by the Delta Spark connector."""

    backend_name = "native"

    def _delta_spark(self, name: str) -> Any:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.uri(name))

    def create_table(self, name: str, schema: StructType, *, kind: str, partition_by: Sequence[str] = (),
                     description: str = "", properties: Mapping[str, str] | None = None) -> int:
        from delta.tables import DeltaTable

        spark_to_delta(schema, table=name)  # refuses types other Delta readers cannot read
        with self.commit_lock(name):
            if self.exists(name):
                check_schema(schema, self.schema(name), table=name)
                return self.version(name)
            builder = DeltaTable.createIfNotExists(self.spark).location(self.uri(name)).addColumns(schema)
            if partition_by:
                builder = builder.partitionedBy(*partition_by)
            if description:
                builder = builder.comment(description)
            for key, value in self.table_properties_for(kind, properties).items():
                builder = builder.property(key, value)
            builder.execute()
        return 0

    def write(self, name: str, df: DataFrame, *, mode: WriteMode = "append",
              partitions: Sequence[Mapping[str, Any]] | None = None, txn: Txn | None = None,
              watermarks: Mapping[str, int] | None = None, run: RunContext | None = None,
              allow_new_columns: bool = False, metadata: Mapping[str, Any] | None = None) -> CommitResult:
        run = run or RunContext()
        table_schema = self.schema(name)
        new_cols = check_schema(df.schema, table_schema, table=name, allow_new_columns=allow_new_columns)
        check_not_null(df, table_schema, table=name)
        df = df.select(*(table_schema.fieldNames() + new_cols))
        # The connector takes ONE application transaction per write: a watermark rides on it when no
        # other transaction id is given; two are refused rather than recorded outside the commit.
        apps = ([(txn.app_id, txn.version)] if txn else []) + [
            (WATERMARK_PREFIX + s, int(v)) for s, v in (watermarks or {}).items()
        ]
        if len(apps) > 1:
            raise FtiError(
                f"the native Delta backend records one application transaction per commit; {name} needs {len(apps)}",
                hint="use delta.backend: delta-rs for multi-source watermarks, or one raw source per feature group",
            )
        if apps and (self.transaction_version(name, apps[0][0]) or -1) >= apps[0][1]:
            return CommitResult(table=name, version=self.version(name), skipped=True)
        writer = df.write.format("delta")
        if allow_new_columns:
            writer = writer.option("mergeSchema", "true")
        if mode == "append":
            writer = writer.mode("append")
        elif mode == "overwrite":
            writer = writer.mode("overwrite")
        elif mode == "replace_partitions":
            part_cols = self.partition_by(name)
            if not part_cols or not partitions:
                raise ValueError(f"replace_partitions on {name} needs a partitioned table and partitions=")
            clauses = []
            for part in partitions:
                terms = []
                for col in part_cols:
                    value = format_partition_value(part[col])
                    terms.append(f"`{col}` IS NULL" if value is None else f"`{col}` = '{value}'")
                clauses.append("(" + " AND ".join(terms) + ")")
            writer = writer.mode("overwrite").option("replaceWhere", " OR ".join(clauses))
        else:
            raise ValueError(f"unknown mode {mode!r}")
        if apps:
            writer = writer.option("txnAppId", apps[0][0]).option("txnVersion", apps[0][1])
        conf_key = "spark.databricks.delta.commitInfo.userMetadata"
        self.spark.conf.set(conf_key, json.dumps(self.commit_metadata(run, mode, metadata)))
        fault_point("before_files", table=name)
        try:
            writer.save(self.uri(name))
        finally:
            self.spark.conf.unset(conf_key)
        fault_point("after_commit", table=name)
        last = self.history(name, limit=1)[0]
        rows = int((last.get("operationMetrics") or {}).get("numOutputRows", 0))
        return CommitResult(table=name, version=last["version"], rows=rows)

    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        resolved = self.resolve_version(name, version=version, timestamp=timestamp)
        return self.spark.read.format("delta").option("versionAsOf", resolved).load(self.uri(name))

    def merge(self, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None,
              run: RunContext | None = None) -> CommitResult:
        table_schema = self.schema(name)
        check_schema(df.schema, table_schema, table=name)
        if not keys or any(k not in table_schema.fieldNames() for k in keys):
            raise SchemaMismatchError(f"merge keys {list(keys)} must be columns of {name}")
        if txn and (self.transaction_version(name, txn.app_id) or -1) >= txn.version:
            return CommitResult(table=name, version=self.version(name), skipped=True)
        cond = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        self._delta_spark(name).alias("t").merge(df.alias("s"), cond).whenMatchedUpdateAll() \
            .whenNotMatchedInsertAll().execute()
        return CommitResult(table=name, version=self.version(name))

    def delete(self, name: str, predicate: str, *, run: RunContext | None = None) -> CommitResult:
        self._delta_spark(name).delete(predicate)
        return CommitResult(table=name, version=self.version(name))

    def compact(self, name: str, *, run: RunContext | None = None) -> CommitResult:
        self._delta_spark(name).optimize().executeCompaction()
        return CommitResult(table=name, version=self.version(name))
