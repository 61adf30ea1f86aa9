"""Data-protection deletion that lasts: ``fti forget --where KEY=VALUE``.

One command removes an entity (a value of a key column) from every table of the system that has that column
(raw tables, feature groups, labels, training sets, predictions, monitoring), each in one commit, and records
the deletion in ``<system>/forgotten``. Every later landing drops the entity's rows and every feature run
(incremental, late data, backfill) filters them, so no recompute brings the entity back. Earlier Delta
versions still hold it until vacuum removes their files (``fti vacuum --retention-hours 0 --force``); the
result names the registered model versions whose pinned versions still hold it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.store import Match, RunContext, new_run_id
from fti.store.predicate import sql_literal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from fti.config import Settings
    from fti.store import DeltaLog, Pin, TableStore

log = logging.getLogger(__name__)
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")
FORGOTTEN_DDL = "column string NOT NULL, value string NOT NULL, deleted_at timestamp NOT NULL, run_id string NOT NULL"


def forgotten_table(system: str) -> str:
    return f"{system}/forgotten"


@dataclass
class ForgetResult:
    """What a deletion removed, and what still holds the entity until vacuum."""

    column: str
    value: str
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows removed
    versions: dict[str, int] = field(default_factory=dict)  # table -> version without the entity
    pinned: list[Pin] = field(default_factory=list)  # model pins of versions that still hold it
    derived_in: list[str] = field(default_factory=list)  # raw tables whose rows DERIVE the key (no such column)

    @property
    def message(self) -> str:
        rows = sum(self.deleted.values())
        lines = [f"forgot {self.column} = '{self.value}': {rows} row(s) removed from {len(self.deleted)} table(s); "
                 "later landings, feature runs and backfills leave it out"]
        if self.derived_in:
            lines.append(f"{', '.join(self.derived_in)} hold(s) no {self.column} column: the raw rows that parse to it "
                         f"were removed, but a later landing of the same raw rows lands them (feature runs still "
                         f"leave them out); forget by a raw column to drop them at landing too")
        if self.pinned:
            owners = ", ".join(sorted({p.owner for p in self.pinned}))
            lines.append(f"model versions whose pinned table versions still hold it: {owners}")
        lines.append("earlier table versions still hold it until `fti vacuum --retention-hours 0 --force` removes "
                     "their files (those models then lose the rebuild of their training sets)")
        return "\n".join(lines)


def parse_where(where: str) -> tuple[str, str]:
    match = _WHERE.match(where)
    if not match:
        raise FtiError(f"--where {where!r} is not COLUMN=VALUE", hint="e.g. --where carrier=UA")
    return match.group(1), match.group(2).strip("'\"")


def entity_columns(settings: Settings) -> set[str]:
    """The key columns an entity can be forgotten by: every feature group key and spine key."""
    from fti.projects import load_project

    system = load_project(settings)
    keys = {k for g in system.groups for k in g.keys}
    for view in settings.config.feature_views.values():
        keys |= set(view.spine.keys)
    return keys


def forget(store: TableStore, settings: Settings, *, where: str, pins: list[Pin] | None = None) -> ForgetResult:
    """Remove an entity from every table of the system that has its key column, and record it.

    Args:
        store: Table store.
        settings: Settings (system).
        where: ``KEY=VALUE``; KEY must be a feature group key or a spine key.
        pins: Registered model pins (default: read from the registry).

    Returns:
        What was removed, and the model versions whose pinned versions still hold the entity.

    Raises:
        FtiError: KEY is not an entity key of the system.
    """
    from pyspark.sql.types import _parse_datatype_string

    column, value = parse_where(where)
    keys = entity_columns(settings)
    if column not in keys:
        raise FtiError(f"'{column}' is not an entity key of system {settings.system}",
                       hint=f"entity keys: {', '.join(sorted(keys))}")
    if pins is None:
        from fti.registry import pins as registry_pins

        pins = registry_pins(settings)
    run = RunContext(run_id=new_run_id("forget"), pipeline="forget")
    # alone in the system: the runs and landings in flight (which read the forgotten list before this deletion)
    # finish first, and those that start meanwhile wait, then read the new list
    with store.system_lock(settings.system, what=f"forget {column}={value}", exclusive=True):
        return _forget(store, settings, column=column, value=value, pins=pins, run=run)


def _forget(store: TableStore, settings: Settings, *, column: str, value: str, pins: list[Pin],
            run: RunContext) -> ForgetResult:
    from pyspark.sql.types import _parse_datatype_string

    result = ForgetResult(column, value)
    name = forgotten_table(settings.system)
    store.create_table(name, _parse_datatype_string(FORGOTTEN_DDL), kind="deletions",
                       description="Entities removed for data protection: landings and feature runs leave them out")
    row = store.spark.createDataFrame([(column, value, dt.datetime.now(dt.timezone.utc), run.run_id)],
                                      _parse_datatype_string(FORGOTTEN_DDL))
    store.replace_where(name, row, Match.of(column=[column], value=[value]), run=run)
    # a key derived from raw columns (flights' flight_id): the raw rows that parse to it, as their JSON text
    derived = _raw_rows_deriving(store, settings, column, value)
    result.derived_in = sorted(derived)
    for table in store.list_tables():
        if table == name or not table.startswith(f"{settings.system}/"):
            continue
        before = store.version(table)
        columns = store.schema(table).fieldNames()
        if column in columns:
            deleted = store.delete(table, f"CAST(`{column}` AS STRING) = {sql_literal(value)}", run=run)
        elif table in derived:
            deleted = store.delete(table, derived[table][1], run=run)
        elif "raw_row" in columns:  # the quarantine keeps the raw row as JSON text
            texts = {text for rows, _ in derived.values() for text in rows}
            deleted = _rewrite_without(store, table, column, value, texts, run)
        else:
            continue
        if deleted.version == before or not deleted.rows:
            continue
        result.deleted[table] = deleted.rows
        result.versions[table] = deleted.version
        result.pinned += [p for p in pins if p.table == table and p.version < deleted.version]
    log.info(result.message)
    return result


# past this many raw rows, a derived key is not an entity but a wide selection (a deletion predicate per row)
MAX_DERIVED_ROWS = 10_000


def _raw_rows_deriving(store: TableStore, settings: Settings, column: str, value: str) -> dict[str, tuple[set[str], str]]:
    """For a key that a source's parser DERIVES from raw columns: the raw rows that parse to ``value``.

    Returns raw table -> (the rows' JSON text, as the quarantine keeps it; a predicate on the raw columns that
    matches exactly those rows), for each raw table without the column whose parsed rows have it.
    """
    from pyspark.sql import functions as F

    from fti.projects import load_project

    system = load_project(settings)
    context: dict | None = None
    found: dict[str, tuple[set[str], str]] = {}
    for source_name, source in system.sources.items():
        raw = source.table(system.name)
        if source_name not in system.parsers or not store.exists(raw) or column in store.schema(raw).fieldNames():
            continue
        context = system.reference_data(store) if context is None else context
        rows = store.read(raw).withColumns({
            "_raw_row": F.to_json(F.struct(*[F.col(c) for c in source.columns])), "_raw_version": F.lit(None).cast("long"),
            "_raw_ingested_at": F.col("ingested_at"), "_raw_land_day": F.col("land_day")})
        # a far clock: no row counts as "in the future", so every row gets its key
        parsed = system.parsers[source_name](rows, now=dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc), **context)
        if column not in parsed.columns:
            continue
        hits = parsed.where(F.col(f"`{column}`").cast("string") == value).select("_raw_row").distinct() \
            .limit(MAX_DERIVED_ROWS + 1).collect()
        if len(hits) > MAX_DERIVED_ROWS:
            raise FtiError(f"{column} = '{value}' matches more than {MAX_DERIVED_ROWS:,} raw rows of {raw}; "
                           "nothing was deleted", hint="forget by a key column the raw table has")
        if not hits:
            continue
        texts = {h["_raw_row"] for h in hits}
        clauses = []
        for text in sorted(texts):
            fields = json.loads(text)
            clauses.append("(" + " AND ".join(
                f"`{c}` = {sql_literal(fields[c])}" if fields.get(c) is not None else f"`{c}` IS NULL"
                for c in source.columns) + ")")
        found[raw] = (texts, " OR ".join(clauses))
    return found


def _rewrite_without(store: TableStore, table: str, column: str, value: str, texts: set[str], run: RunContext):
    """Rewrite a small table without the rows whose JSON ``raw_row`` holds the entity, or is one of ``texts``
    (the raw rows a derived key came from), in one commit."""
    from pyspark.sql import functions as F

    from fti.store import CommitResult

    rows = store.read(table).cache()
    hit = F.coalesce(F.trim(F.get_json_object("raw_row", f"$.{column}")) == value, F.lit(False))
    if texts:
        hit = hit | F.col("raw_row").isin(sorted(texts))
    removed = rows.where(hit).count()
    if not removed:
        rows.unpersist()
        return CommitResult(table=table, version=store.version(table))
    result = store.overwrite(table, rows.where(~hit).coalesce(1), run=run)
    rows.unpersist()
    return CommitResult(table=table, version=result.version, rows=removed)


def forgotten(store: DeltaLog | TableStore, system: str) -> list[tuple[str, str]]:
    """The ``(column, value)`` pairs forgotten in a system (read with ``deltalake``, no Spark job)."""

    name = forgotten_table(system)
    if not store.exists(name):
        return []
    rows = store.delta_table(name).to_pyarrow_table(columns=["column", "value"]).to_pylist()
    return sorted({(r["column"], r["value"]) for r in rows})


def without_forgotten(df: DataFrame, pairs: list[tuple[str, str]]) -> DataFrame:
    """``df`` without the rows of forgotten entities (text or typed key columns alike)."""
    from pyspark.sql import functions as F

    cond: Column | None = None
    for column, value in pairs:
        if column not in df.columns:
            continue
        hit = F.coalesce(F.trim(F.col(f"`{column}`").cast("string")) == value, F.lit(False))
        cond = hit if cond is None else cond | hit
    return df if cond is None else df.where(~cond)
