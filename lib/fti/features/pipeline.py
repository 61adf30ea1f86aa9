"""The incremental feature pipeline: raw versions in, one Delta commit per feature group out.

A run:

1. reads the current version of each raw source;
2. **quarantine**: the raw rows added since the quarantine table's watermark are parsed; bad rows go to
   ``<system>/quarantine`` with their reason, run id and raw version (partitions replaced by raw
   version, so a rerun never duplicates them); past ``features.max_bad_share`` the run stops here and
   the feature tables stay as they were;
3. **windows**: for each output table, the days touched by the raw files added since ITS watermark
   (read from the Delta log, whatever their event times) widen by the group's lookback into the days
   whose rows change; a group whose watermark is the current raw version is "up to date";
4. the raw rows those days need are read (partition-pruned) and parsed ONCE per source;
5. each group's transform runs on them; the rows of the changed days replace those days' partitions in
   ONE commit that also records the new watermark and a transaction id (retries are skipped).

``--start/--end`` backfills: the same code over explicit days, watermarks untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import FtiError
from fti.features.definitions import FeatureGroup
from fti.forget import forgotten, without_forgotten
from fti.features.spec import SystemSpec
from fti.features.systems import get_system
from fti.store import Match, RunContext, TableStore, Txn, new_run_id
from fti.store.delta_log import Changes
from fti.timeutil import UTC, days

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from fti.config import Settings

log = logging.getLogger(__name__)

QUARANTINE_DDL = ("source string NOT NULL, raw_version bigint NOT NULL, run_id string NOT NULL, reason string NOT NULL, "
                  "raw_row string NOT NULL, ingested_at timestamp, detected_at timestamp NOT NULL, land_day date")


class TooManyBadRows(FtiError):
    """A run found more bad raw rows than ``features.max_bad_share`` allows."""

    exit_code = 3


@dataclass
class OutputResult:
    """What a run did to one output table."""

    table: str
    status: str  # "written", "up to date", "no data"
    version: int | None = None
    rows: int = 0
    days: int = 0
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    seconds: float = 0.0
    dropped: int = 0


@dataclass
class FeatureRunReport:
    """The outcome of a feature run (printed by the CLI)."""

    run_id: str
    now: dt.datetime
    raw_versions: dict[str, int]
    new_rows: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, int] = field(default_factory=dict)
    outputs: list[OutputResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return all(o.status == "up to date" for o in self.outputs) and not any(self.new_rows.values())


def quarantine_table(system: str) -> str:
    return f"{system}/quarantine"


def labels_table(system: str) -> str:
    return f"{system}/labels"


def _column_stats(df: DataFrame, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """count, nulls, min, max, mean and quantiles of each column (one Spark job)."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("__rows")]
    numeric = {f.name for f in df.schema.fields
               if f.dataType.typeName() in ("double", "float", "long", "integer", "short", "decimal")}
    for c in columns:
        aggs += [F.count(F.col(f"`{c}`")).alias(f"{c}__count"), F.min(F.col(f"`{c}`")).alias(f"{c}__min"),
                 F.max(F.col(f"`{c}`")).alias(f"{c}__max")]
        if c in numeric:
            aggs += [F.avg(F.col(f"`{c}`")).alias(f"{c}__mean"),
                     F.percentile_approx(F.col(f"`{c}`").cast("double"), [0.05, 0.5, 0.95], 1000).alias(f"{c}__q")]
    row = df.agg(*aggs).collect()[0].asDict()
    total = row["__rows"]
    out: dict[str, dict[str, Any]] = {}
    for c in columns:
        entry = {"count": row[f"{c}__count"], "nulls": total - row[f"{c}__count"],
                 "min": stat_value(row[f"{c}__min"]), "max": stat_value(row[f"{c}__max"])}
        if c in numeric:
            entry["mean"] = row[f"{c}__mean"]
            entry["quantiles"] = dict(zip(("p05", "p50", "p95"), row[f"{c}__q"] or [None, None, None]))
        out[c] = entry
    return out


def stat_value(value: Any) -> Any:
    """A statistic as JSON text. PySpark's ``collect()`` gives timestamps as naive datetimes in the PROCESS's
    local zone (not the session's): they are converted from local time to UTC, so that freshness is right on
    hosts not set to UTC."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _ensure_group_table(store: TableStore, system: SystemSpec, group: FeatureGroup) -> tuple[str, bool]:
    """Create the group's table, or accept an additive change of its definition.

    Returns:
        ``(table name, evolving)``: evolving is True when the definition adds columns to an existing table
        (the write adds them: a new version where older rows read as null).

    Raises:
        FtiError: A breaking change (a changed type or key): that needs a new group version (``name_v2``).
    """
    name = group.table(system.name)
    schema = group.schema(dict(system.key_types))
    if not store.exists(name):
        store.create_table(name, schema, kind="feature_group", description=group.description,
                           properties={"fti.definition": group.to_json(), "fti.feature_group": group.name})
        return name, False
    current = {f.name: f.dataType for f in store.schema(name).fields}
    wanted = {f.name: f.dataType for f in schema.fields}
    changed = [c for c in current if c in wanted and wanted[c] != current[c]]
    removed = [c for c in current if c not in wanted]
    if changed or removed:
        raise FtiError(
            f"feature group {group.name} changed incompatibly with its table {name}: "
            + "; ".join([f"column '{c}' is {current[c].simpleString()} in the table, {wanted[c].simpleString()} "
                         "in the definition" for c in changed] + [f"column '{c}' was removed" for c in removed]),
            hint=f"a breaking change is a new group version: name it {group.name}_v2 and keep {group.name} for "
                 "the models that pin it",
        )
    return name, any(c not in current for c in wanted)


def _ensure_labels_table(store: TableStore, system: SystemSpec) -> str:
    name = labels_table(system.name)
    store.create_table(name, system.labels_schema(), kind="labels", description=system.labels.description,
                       properties={"fti.sources": json.dumps([system.labels.source])})
    return name


def _ensure_quarantine_table(store: TableStore, system: str) -> str:
    from pyspark.sql.types import _parse_datatype_string

    name = quarantine_table(system)
    store.create_table(name, _parse_datatype_string(QUARANTINE_DDL), kind="quarantine",
                       description="Raw rows that failed validation, with the reason, run id and raw version")
    return name


@dataclass
class SourceChanges:
    """The raw rows of one source added since the oldest watermark among the tables that read it.

    Attributes:
        version: The raw version this run reads.
        changes: The files and landing batches of those rows (None when every reader is up to date).
        landed: ``(land_day, raw version, rows)`` of the new rows (one small Spark job per source).
    """

    version: int
    changes: Changes | None = None
    landed: list[tuple[dt.date | None, int, int]] = field(default_factory=list)

    def touched_days(self, mark: int | None) -> set[dt.date]:
        """Days with rows landed after raw version ``mark``, whatever their event times (late rows too)."""
        return {d for d, v, _ in self.landed if d is not None and (mark is None or v > mark)}

    def new_rows(self, mark: int | None) -> int:
        return sum(n for _, v, n in self.landed if mark is None or v > mark)

    def batches_after(self, mark: int | None) -> dict[str, int]:
        batches = self.changes.batches if self.changes else {}
        return {b: v for b, v in batches.items() if mark is None or v > mark}


def _source_changes(store: TableStore, raw: str, version: int, marks: Sequence[int | None]) -> SourceChanges:
    """Find the rows of ``raw`` landed after the oldest of ``marks`` by content lineage: the landing run id
    each raw row carries (``_batch``), looked up in the files added since (compactions included)."""
    from pyspark.sql import functions as F

    if all(m is not None and m >= version for m in marks):
        return SourceChanges(version)
    lowest = None if any(m is None for m in marks) else min(m for m in marks if m is not None)
    changes = store.changes(raw, after=lowest, upto=version)
    if not changes.batches or not changes.files:
        return SourceChanges(version, changes)
    rows = store.read_files(raw, sorted(changes.files), version=version)
    counts = (rows.where(F.col("_batch").isin(list(changes.batches)))
              .groupBy("land_day", "_batch").count().collect())
    return SourceChanges(version, changes, [(r["land_day"], changes.batches[r["_batch"]], r["count"]) for r in counts])


def _read_and_validate(store: TableStore, system: SystemSpec, source: str, found: SourceChanges, needed: set[dt.date],
                       *, now: dt.datetime, run: RunContext, context: dict[str, Any],
                       max_bad_share: float) -> tuple[DataFrame | None, DataFrame | None, int, int]:
    """Read the raw rows a run needs ONCE, parse them, and quarantine the bad ones among the new rows.

    The rows read are those of the days the outputs need, plus the rows landed since the quarantine
    table's watermark and the other rows of their days (duplicates are judged among all rows of a day).

    Returns:
        ``(good rows or None when nothing is needed; the cached parse to unpersist; new rows; bad new rows)``.

    Raises:
        TooManyBadRows: Past ``max_bad_share`` (after the quarantine commit).
    """
    from pyspark.sql import functions as F

    spark = store.spark
    version = found.version
    src = system.sources[source]
    raw = src.table(system.name)
    qname = _ensure_quarantine_table(store, system.name)
    mark = store.watermark(qname, source)
    fresh = found.batches_after(mark)
    new_rows = found.new_rows(mark)
    wanted_days = needed | found.touched_days(mark)
    paths = set(found.changes.files) if fresh and found.changes else set()
    if wanted_days:
        by_day = Match.of(land_day=wanted_days)
        paths |= {f["path"] for f in store.file_actions(raw, version=version, stats_columns=["land_day"])
                  if by_day.may_hold(f)}
    if not paths:
        return None, None, 0, 0
    rows = store.read_files(raw, sorted(paths), version=version)
    tags = spark.createDataFrame(list(fresh.items()) or [("", -1)], "_batch string, _raw_version bigint")
    rows = (rows.join(F.broadcast(tags), "_batch", "left")
            .withColumn("_raw_row", F.to_json(F.struct(*[F.col(c) for c in src.columns])))
            .withColumn("_raw_ingested_at", F.col("ingested_at"))
            .withColumn("_raw_land_day", F.col("land_day")))
    parsed = system.parsers[source](rows, now=now, **context).cache()
    bad_rows = 0
    if fresh:
        bad = parsed.where(F.col("_reason").isNotNull() & F.col("_raw_version").isNotNull()).select(
            F.lit(source).alias("source"), F.col("_raw_version").alias("raw_version"),
            F.lit(run.run_id).alias("run_id"), F.col("_reason").alias("reason"), F.col("_raw_row").alias("raw_row"),
            F.col("_raw_ingested_at").alias("ingested_at"), F.lit(now).cast("timestamp").alias("detected_at"),
            F.col("_raw_land_day").alias("land_day"),
        ).cache()
        bad_rows = bad.count()
        first = (mark if mark is not None else -1) + 1
        rejected = bool(new_rows) and bad_rows / new_rows > max_bad_share
        # a rejected batch is recorded IN the quarantine commit: later runs keep refusing it until accepted
        store.replace_where(qname, bad.coalesce(1), Match.of(source=[source], raw_version=range(first, version + 1)),
                            watermarks={source: version}, run=run, txn=Txn(f"quarantine:{source}", version),
                            records=[Txn(REJECTED + source, version)] if rejected else (),
                            metadata={"fti.bad_rows": bad_rows, "fti.new_rows": new_rows,
                                      **({"fti.rejected": source} if rejected else {})})
        bad.unpersist()
        if new_rows:
            log.info("%s: %d new raw rows, %d quarantined (%.2f%%)", source, new_rows, bad_rows,
                     100.0 * bad_rows / new_rows)
        if rejected:
            parsed.unpersist()
            raise TooManyBadRows(
                f"{bad_rows} of {new_rows} new rows of {raw} failed validation "
                f"({100.0 * bad_rows / new_rows:.1f}% > {100.0 * max_bad_share:.1f}%); feature tables were not changed, "
                "and later runs refuse this batch until it is accepted",
                hint=_accept_hint(system.name, source, qname, run.run_id, bad_rows / new_rows),
            )
    if not needed:
        parsed.unpersist()
        return None, None, new_rows, bad_rows
    # a forgotten entity never comes back through a recompute, a backfill or rows landed before its deletion
    good = without_forgotten(parsed.where(F.col("_reason").isNull()).drop("_reason"), forgotten(store, system.name))
    return good, parsed, new_rows, bad_rows


REJECTED = "fti.rejected:"
ACCEPTED = "fti.accepted:"


def _accept_hint(system: str, source: str, qname: str, run_id: str | None, share: float) -> str:
    return (f"inspect the rows in {qname}{f' (run id {run_id})' if run_id else ''}; then accept the batch with "
            f"`fti features accept --system {system} --source {source}`, or raise features.max_bad_share above "
            f"{100.0 * share:.1f}% (FTI__FEATURES__MAX_BAD_SHARE={share + 0.0005:.3f})")


def pending_rejection(store: TableStore, system: str, source: str) -> tuple[int, int, int] | None:
    """The raw version up to which a batch of ``source`` was rejected and not accepted since, with its
    ``(bad, new)`` row counts; None when there is none."""
    qname = quarantine_table(system)
    if not store.exists(qname):
        return None
    rejected = store.transaction_version(qname, REJECTED + source)
    accepted = store.transaction_version(qname, ACCEPTED + source)
    if rejected is None or (accepted is not None and accepted >= rejected):
        return None
    for entry in store.history(qname):
        if entry.get("fti.rejected") == source:
            return rejected, int(entry.get("fti.bad_rows") or 0), int(entry.get("fti.new_rows") or 0)
    return rejected, 0, 0


def _refuse_rejected(store: TableStore, system: str, source: str, readers: Mapping[str, int | None],
                     max_bad_share: float) -> None:
    """Stop before any feature write while a rejected batch of ``source`` would be read by an output that has
    not moved past it, unless the user accepted it (``fti features accept``) or raised the share above its own."""
    pending = pending_rejection(store, system, source)
    if pending is None:
        return
    version, bad, new = pending
    behind = sorted(t for t, mark in readers.items() if mark is None or mark < version)
    if not behind or (new and bad / new <= max_bad_share):
        return
    raise TooManyBadRows(
        f"the batch of {source} up to raw version {version} was rejected ({bad} of {new} new rows failed "
        f"validation, {100.0 * bad / max(new, 1):.1f}% > {100.0 * max_bad_share:.1f}%) and is not accepted: "
        f"{', '.join(behind)} were not changed",
        hint=_accept_hint(system, source, quarantine_table(system), None, bad / max(new, 1)),
    )


def accept_rejected(store: TableStore, settings: Settings, *, source: str) -> int:
    """Accept the rejected batch of a raw source: later runs featurize its good rows (its bad rows stay in the
    quarantine). Recorded as an application transaction in the quarantine table.

    Returns:
        The raw version accepted up to.

    Raises:
        FtiError: No rejected batch of that source is pending.
    """
    from pyspark.sql.types import _parse_datatype_string

    system = get_system(settings.system)
    if source not in system.sources:
        raise FtiError(f"unknown source {source!r} of system {settings.system}",
                       hint=f"sources: {', '.join(system.sources)}")
    pending = pending_rejection(store, settings.system, source)
    if pending is None:
        raise FtiError(f"no rejected batch of {source} is waiting to be accepted")
    qname = quarantine_table(settings.system)
    empty = store.spark.createDataFrame([], _parse_datatype_string(QUARANTINE_DDL))
    store.append(qname, empty, records=[Txn(ACCEPTED + source, pending[0])],
                 run=RunContext(pipeline="features"), metadata={"fti.accepted": source})
    log.info("accepted the batch of %s up to raw version %d (%d of %d rows bad)", source, *pending)
    return pending[0]


def _affected_days(store: TableStore, table: str, source: str, found: SourceChanges,
                   lookback: int) -> set[dt.date]:
    """The days whose rows of ``table`` change: each day with rows landed after the table's watermark,
    widened forward by the look-back (a trailing window over it ends on any of those days)."""
    mark = store.watermark(table, source) if store.exists(table) else None
    if mark is not None and mark >= found.version:
        return set()
    return {d + dt.timedelta(days=i) for d in found.touched_days(mark) for i in range(lookback)}


def history_table(table: str) -> str:
    """Where a feature group keeps the rows its recomputes replaced: ``flights/carrier_delay`` ->
    ``flights/history/carrier_delay``."""
    system, _, group = table.partition("/")
    return f"{system}/history/{group}"


def _keep_history(store: TableStore, name: str, keys: Sequence[str], out: DataFrame, affected: Sequence[dt.date], *,
                  now: dt.datetime, run: RunContext, txn_version: int | None, evolving: bool) -> DataFrame:
    """History is kept, not re-stamped: a recomputed row whose values did not change keeps its ``ingested_at``;
    the rows a recompute changes or no longer produces move to the group's history table (one commit, made
    BEFORE the group's own, with ``replaced_at``), so a bi-temporal read reproduces what was known at a time.

    Returns:
        The rows to write: ``out`` with the kept ``ingested_at`` of unchanged rows.
    """
    from pyspark.sql import functions as F

    if not store.exists(name):
        return out
    existing = store.read(name).where(F.col("day").isin(list(affected)))
    match = [*keys, "event_time"]
    values = [c for c in out.columns if c != "ingested_at"]

    def digest(df: DataFrame) -> Any:
        cols = [F.col(f"`{c}`") if c in df.columns else F.lit(None).alias(c) for c in values]
        return F.sha2(F.to_json(F.struct(*cols), {"ignoreNullFields": "false"}), 256)

    old = existing.withColumn("_h", digest(existing))
    if evolving:  # a new column changes every row: the window's old rows all become history
        rows, replaced = out, old
    else:
        new = out.withColumn("_h", digest(out))
        unchanged = old.select(*match, "_h", F.col("ingested_at").alias("_kept_at"))
        rows = (new.join(unchanged, [*match, "_h"], "left")
                .withColumn("ingested_at", F.coalesce(F.col("_kept_at"), F.col("ingested_at")))
                .select(*out.columns))
        replaced = old.join(new.select(*match, "_h"), [*match, "_h"], "left_anti")
    replaced = replaced.drop("_h").withColumn("replaced_at", F.lit(now).cast("timestamp")).cache()
    if replaced.limit(1).count():
        from pyspark.sql.types import StructField, StructType, TimestampType

        history = history_table(name)
        schema = StructType([*store.schema(name).fields, StructField("replaced_at", TimestampType(), False)])
        store.create_table(history, schema, kind="feature_history",
                           description=f"Rows of {name} that later recomputes replaced (bi-temporal reads)")
        store.append(history, replaced.select(*schema.fieldNames()).coalesce(1), run=run,
                     txn=Txn(f"history:{name}", txn_version) if txn_version is not None else None,
                     allow_new_columns=True)
    replaced.unpersist()
    return rows


def _finish(group_out: DataFrame, *, keys: Sequence[str], schema: StructType, now: dt.datetime) -> DataFrame:
    """Add ``ingested_at``; keep one row per (keys, event_time) (the later day wins); the definition's
    column order and types (the definition is the contract, whatever the transform's arithmetic gives)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    win = Window.partitionBy(*keys, "event_time").orderBy(F.col("day").desc())
    out = group_out.withColumn("_r", F.row_number().over(win)).where("_r = 1").drop("_r")
    out = out.withColumn("ingested_at", F.lit(now).cast("timestamp"))
    return out.select(*[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in schema.fields])


def run(store: TableStore, settings: Settings, *, now: dt.datetime | None = None, start: dt.date | None = None,
        end: dt.date | None = None, groups: Sequence[str] | None = None, run_id: str | None = None,
        system: SystemSpec | None = None) -> FeatureRunReport:
    """Run the feature pipeline of ``settings.system`` once.

    Args:
        store: Table store (its Spark session does the work).
        settings: Loaded settings.
        now: The run's clock: ``ingested_at`` of written rows and the "future" cutoff (default: wall clock).
        start: Backfill from this day (inclusive); with ``end``.
        end: Backfill up to this day (exclusive).
        groups: Only these feature groups (default: config ``features.groups`` or all); labels are
            written whenever all groups run.
        run_id: Run id (default: a new one).
        system: The system's spec (default: the registered one for ``settings.system``).

    Returns:
        What the run did.

    Raises:
        TooManyBadRows: Past ``features.max_bad_share`` (quarantine written, feature tables unchanged).
        FtiError: No raw data yet.
    """
    from pyspark.sql import functions as F

    started = time.perf_counter()
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    system = system or get_system(settings.system)
    run_ctx = RunContext(run_id=run_id or new_run_id("features"), pipeline="features")
    backfill = start is not None or end is not None
    if backfill and (start is None or end is None or end <= start):
        raise FtiError("a backfill needs --start and --end with start < end", hint="e.g. --start 2013-01-01 --end 2013-02-01")
    selected = list(groups or settings.config.features.groups or [g.name for g in system.groups])
    chosen = [system.group(g) for g in selected]
    with_labels = groups is None

    sources = sorted({s for g in chosen for s in g.sources} | ({system.labels.source} if with_labels else set()))
    versions: dict[str, int] = {}
    for source in sources:
        raw = system.sources[source].table(system.name)
        if not store.exists(raw):
            raise FtiError(f"no raw data for source '{source}' of system {system.name} under {store.home}",
                           hint=f"land data first: fti ingest --system {system.name} ...")
        versions[source] = store.version(raw)
    report = FeatureRunReport(run_id=run_ctx.run_id, now=now, raw_versions=dict(versions))
    context = system.context(store, system.name)

    # 1. which days each output rewrites
    outputs: list[tuple[str, str, FeatureGroup | None, int]] = []
    for group in chosen:
        outputs.append((group.table(system.name), group.sources[0], group, group.lookback_days))
    if with_labels:
        outputs.append((labels_table(system.name), system.labels.source, None, 1))
    found: dict[str, SourceChanges] = {}
    marks: dict[str, dict[str, int | None]] = {}
    for source in sources:
        raw = system.sources[source].table(system.name)
        marks[source] = {t: store.watermark(t, source) if store.exists(t) else None
                         for t, src, _, _ in outputs if src == source}
        readers = [] if backfill else list(marks[source].values())
        qname = quarantine_table(system.name)
        found[source] = _source_changes(store, raw, versions[source],
                                        readers + [store.watermark(qname, source) if store.exists(qname) else None])
    plan: dict[str, set[dt.date]] = {}
    for table, source, _, lookback in outputs:
        if backfill:
            plan[table] = set(days(start, end))  # type: ignore[arg-type]
        else:
            plan[table] = _affected_days(store, table, source, found[source], lookback)

    # 2. read and parse each source ONCE; quarantine its new bad rows (always incremental: rows are
    #    judged once, when they arrive); stop before any feature write past the bad-row share
    parsed: dict[str, DataFrame] = {}
    cached: list[DataFrame] = []
    try:
        for source in sources:
            needed: set[dt.date] = set()
            for table, src, _, lookback in outputs:
                if src == source and plan[table]:
                    needed |= {d - dt.timedelta(days=i) for d in plan[table] for i in range(lookback)}
            good, base, new, bad = _read_and_validate(store, system, source, found[source], needed, now=now, run=run_ctx,
                                                      context=context,
                                                      max_bad_share=settings.config.features.max_bad_share)
            if base is not None:
                cached.append(base)
            _refuse_rejected(store, system.name, source, marks[source], settings.config.features.max_bad_share)
            report.new_rows[source], report.bad_rows[source] = new, bad
            if good is not None:
                parsed[source] = good

        # 4. one commit per output
        for table, source, group, lookback in outputs:
            t0 = time.perf_counter()
            affected = sorted(plan[table])
            if not affected:
                report.outputs.append(OutputResult(table, "up to date", store.version(table) if store.exists(table) else None))
                continue
            if source not in parsed:  # no raw rows at all for these days (a backfill before the data starts)
                report.outputs.append(OutputResult(table, "no data", store.version(table) if store.exists(table) else None))
                continue
            lo, hi = affected[0] - dt.timedelta(days=lookback - 1), affected[-1]
            inputs = parsed[source].where((F.col("day") >= F.lit(lo)) & (F.col("day") <= F.lit(hi)))
            evolving = False
            if group is not None:
                name, evolving = _ensure_group_table(store, system, group)
                out = group.transform({source: inputs}, now=now)
                out = _finish(out.where(F.col("day").isin(affected)), keys=group.keys,
                              schema=group.schema(dict(system.key_types)), now=now)
                out = _keep_history(store, name, group.keys, out, affected, now=now, run=run_ctx,
                                    txn_version=None if backfill else versions[source], evolving=evolving)
                stat_cols = ["event_time", *group.feature_names]
            else:
                name = _ensure_labels_table(store, system)
                out = system.labels.transform(inputs, config=settings.config).where(F.col("day").isin(affected))
                out = out.withColumn("ingested_at", F.lit(now).cast("timestamp")).select(*store.schema(name).fieldNames())
                stat_cols = ["prediction_time"]
            out = out.cache()
            stats = _column_stats(out, stat_cols)
            rows = stats[stat_cols[0]]["count"] + stats[stat_cols[0]]["nulls"]
            txn = None if backfill else Txn(f"features:{name}", versions[source])
            # one file per run, sorted by day: tight statistics, so the next replace rewrites few files
            result = store.replace_where(
                name, out.coalesce(1).sortWithinPartitions("day"), Match.of(day=affected), txn=txn,
                watermarks=None if backfill else {source: versions[source]}, inputs={source: versions[source]},
                run=run_ctx, allow_new_columns=evolving,
                metadata={"fti.stats": json.dumps(stats, default=str), "fti.days": f"{affected[0]}..{affected[-1]}",
                          "fti.backfill": backfill},
            )
            out.unpersist()
            if evolving and group is not None:
                store.set_properties(name, {"fti.definition": group.to_json()})
            # skipped here means a concurrent run committed this window first (its txn reached this raw version)
            status = "written" if not result.skipped else "skipped: another run wrote it"
            report.outputs.append(OutputResult(name, status, result.version,
                                               rows, len(affected), affected[0], affected[-1], time.perf_counter() - t0))
            log.info("%s: version %s, %d rows over %d day(s) %s..%s (%.1f s)", name, result.version, rows, len(affected),
                     affected[0], affected[-1], time.perf_counter() - t0)
    finally:
        for df in cached:
            df.unpersist()
    report.seconds = time.perf_counter() - started
    return report
