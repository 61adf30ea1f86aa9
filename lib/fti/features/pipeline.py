"""The incremental feature pipeline: raw versions in, one Delta commit per output out.

A run is a plan, then an executor:

1. **plan**: each output (a feature group, or the labels: :class:`GroupOutput`, :class:`LabelsOutput`) gets an
   :class:`OutputPlan`: the days whose rows change, from the raw rows landed since ITS watermark (found by their
   landing batch in the Delta log, whatever their event times), widened forward by its look-back
   (:func:`widen`, the one look-back arithmetic); an output whose watermark is the current raw version is
   "up to date". A trailing-window group whose state table (per-day partial aggregates) is usable reads only
   the days with new rows (``OutputPlan.from_state``);
2. **parse**: each source's raw rows are read and parsed ONCE into a checkpoint (:class:`ParsedSource`, the
   sources at once): the days the plans need plus the rows landed since the quarantine's watermark, whose bad
   rows go to the quarantine (:mod:`fti.features.quarantine`, which commits and stops the run before any feature
   write past ``features.max_bad_share``);
3. **execute**: each output's rows of its planned days replace those days in ONE commit that also records
   the new watermark, a transaction id (retries are skipped) and the statistics observed in the same pass
   (:func:`_execute`); ``features.parallel_outputs`` outputs at once.

``--start/--end`` backfills: the same code over explicit days, watermarks untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from fti.errors import FtiError
from fti.features import delta_source, quarantine
from fti.features.definitions import FeatureGroup
from fti.forget import forgotten, without_forgotten
from fti.features.spec import Project
from fti.store import Match, RunContext, TableStore, Txn, new_run_id
from fti.spark import job_description, release
from fti.sources import DeltaSource
from fti.store.delta_log import Changes
from fti.timeutil import UTC, days
from fti.projects import load_project

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from fti.config import Settings

log = logging.getLogger(__name__)
# a declared combine joins when the written days that hold data, times this, are at most the look-back
JOIN_SHARE = 4


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
    quarantined: int = 0  # rows the group's own checks kept out of the table (in the quarantine)
    warned: dict[str, int] = field(default_factory=dict)  # rows kept although a warn check broke, by reason
    input_days: int = 0  # days of raw rows the run read for it
    from_state: bool = False  # stored per-day partials served the rest of its look-back
    joined_days: int = 0  # days whose rows a declared combine computed by a join (0: by window functions)


@dataclass
class FeatureRunReport:
    """The outcome of a feature run (printed by the CLI)."""

    run_id: str
    now: dt.datetime
    raw_versions: dict[str, int]
    new_rows: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, int] = field(default_factory=dict)
    # source -> rows kept although a warn rule broke, by reason
    warned_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: list[OutputResult] = field(default_factory=list)
    seconds: float = 0.0
    # source -> (land_day, raw version, rows, operation) of rows another writer added without a land_day
    unattributed: dict[str, list[tuple[dt.date | None, int, int, str]]] = field(default_factory=dict)

    @property
    def up_to_date(self) -> bool:
        return all(o.status == "up to date" for o in self.outputs) and not any(self.new_rows.values()) \
            and not any(self.unattributed.values())

    def unattributed_hints(self, system: str) -> list[str]:
        """What to tell the user about rows no incremental run sees (empty when there are none)."""
        lines = []
        for source, found in sorted(self.unattributed.items()):
            if not found:
                continue
            versions = sorted({v for _, v, _, _ in found})
            operations = ", ".join(sorted({op for _, _, _, op in found}))
            rows = sum(n for _, _, n, _ in found)
            lines.append(f"warning: {rows} raw row(s) of {source} (no land_day) were added by raw version(s) "
                         f"{', '.join(map(str, versions))} ({operations}), a writer other than fti ingest, without the "
                         "day they belong to: no incremental run can place them, so none featurizes them")
            lines.append(f"hint: give them their day (UPDATE {source} SET land_day = DATE'YYYY-MM-DD' WHERE land_day "
                         f"IS NULL): the next `fti features --system {system}` featurizes them; land raw rows with "
                         f"`fti ingest --source {source} --file PATH`, which sets it")
        return lines


def labels_table(system: str) -> str:
    return f"{system}/labels"


def _observe_stats(df: DataFrame, columns: Sequence[str]) -> tuple[DataFrame, Callable[[], dict[str, dict[str, Any]]]]:
    """Gather count, nulls, min, max, mean and quantiles of each column IN the pass that writes ``df`` (an
    :class:`~pyspark.sql.Observation`: no job of its own).

    Returns:
        ``df`` observed, and a function that gives the statistics once an action on it has run.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    numeric = {f.name for f in df.schema.fields
               if f.dataType.typeName() in ("double", "float", "long", "integer", "short", "decimal")}
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for c in columns:
        aggs += [F.count(F.col(f"`{c}`")).alias(f"{c}__count"), F.min(F.col(f"`{c}`")).alias(f"{c}__min"),
                 F.max(F.col(f"`{c}`")).alias(f"{c}__max")]
        if c in numeric:
            aggs += [F.avg(F.col(f"`{c}`")).alias(f"{c}__mean"),
                     F.percentile_approx(F.col(f"`{c}`").cast("double"), [0.05, 0.5, 0.95], 1000).alias(f"{c}__q")]
    observation = Observation(f"fti-stats-{uuid.uuid4().hex}")  # unique: outputs are written concurrently

    def stats() -> dict[str, dict[str, Any]]:
        row = observation.get
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

    return df.observe(observation, *aggs), stats


def stat_value(value: Any) -> Any:
    """A statistic as JSON text. PySpark's ``collect()`` gives timestamps as naive datetimes in the PROCESS's
    local zone (not the session's): they are converted from local time to UTC, so that freshness is right on
    hosts not set to UTC."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class DefinitionChange:
    """How a group's definition compares with its table: ``create`` (no table yet), ``same``, ``additive`` (the
    definition adds ``columns``; older rows read them as null) or ``breaking`` (``problems``: a changed type, a
    removed column)."""

    kind: str
    columns: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def definition_change(store: TableStore, system: Project, group: FeatureGroup) -> DefinitionChange:
    """What a run would do to the group's table for its definition (it changes nothing)."""
    name = group.table(system.name)
    if not store.exists(name):
        return DefinitionChange("create")
    current = {f.name: f.dataType for f in store.schema(name).fields}
    wanted = {f.name: f.dataType for f in group.schema(dict(system.key_types)).fields}
    problems = tuple([f"column '{c}' is {current[c].simpleString()} in the table, {wanted[c].simpleString()} in the "
                      "definition" for c in current if c in wanted and wanted[c] != current[c]]
                     + [f"column '{c}' was removed" for c in current if c not in wanted])
    if problems:
        return DefinitionChange("breaking", problems=problems)
    added = tuple(c for c in wanted if c not in current)
    return DefinitionChange("additive", columns=added) if added else DefinitionChange("same")


def breaking_hint(group: FeatureGroup) -> str:
    return (f"a breaking change is a new group version: name it {group.name}_v2 and keep {group.name} for the models "
            "that pin it")


def _ensure_group_table(store: TableStore, system: Project, group: FeatureGroup) -> tuple[str, bool]:
    """Create the group's table, or accept an additive change of its definition.

    Returns:
        ``(table name, evolving)``: evolving is True when the definition adds columns to an existing table
        (the write adds them: a new version where older rows read as null).

    Raises:
        FtiError: A breaking change (a changed type or key): that needs a new group version (``name_v2``).
    """
    name = group.table(system.name)
    change = definition_change(store, system, group)
    if change.kind == "create":
        store.create_table(name, group.schema(dict(system.key_types)), kind="feature_group",
                           description=group.description,
                           properties={"fti.definition": group.to_json(), "fti.feature_group": group.name})
        return name, False
    if change.kind == "breaking":
        raise FtiError(f"feature group {group.name} changed incompatibly with its table {name}: "
                       + "; ".join(change.problems), hint=breaking_hint(group))
    return name, change.kind == "additive"


def _ensure_labels_table(store: TableStore, system: Project) -> str:
    name = labels_table(system.name)
    store.create_table(name, system.labels_schema(), kind="labels", description=system.labels.description,
                       properties={"fti.sources": json.dumps([system.labels.source])})
    return name


@dataclass
class SourceChanges:
    """The raw rows of one source added since the oldest watermark among the tables that read it.

    Attributes:
        version: The raw version this run reads.
        changes: The files and landing batches of those rows (None when every reader is up to date).
        landed: ``(land_day, raw version, rows)`` of the new rows (one small Spark job per source).
        unattributed: ``(land_day, raw version, rows, operation)`` of live rows that commits of another writer
            (no fti run id) added without a ``land_day``: no incremental run can place them on a day.
    """

    version: int
    changes: Changes | None = None
    landed: list[tuple[dt.date | None, int, int]] = field(default_factory=list)
    unattributed: list[tuple[dt.date | None, int, int, str]] = field(default_factory=list)

    def touched_days(self, mark: int | None) -> set[dt.date]:
        """Days with rows landed after raw version ``mark``, whatever their event times (late rows too)."""
        return {d for d, v, _ in self.landed if d is not None and (mark is None or v > mark)}

    def new_rows(self, mark: int | None) -> int:
        return sum(n for _, v, n in self.landed if mark is None or v > mark)

    def batches_after(self, mark: int | None) -> dict[str, int]:
        batches = self.changes.batches if self.changes else {}
        return {b: v for b, v in batches.items() if mark is None or v > mark}


def _file_key(spark_path: str) -> str:
    """Spark's ``input_file_name()`` (a URI, percent-encoded) as the log's file keys (a local path, or a URI)."""
    from urllib.parse import unquote

    path = unquote(spark_path)
    if path.startswith("file:"):
        path = path[len("file:"):]
        path = "/" + path.lstrip("/")
    return path


def _delta_source_changes(store: TableStore, src: DeltaSource, version: int,
                          marks: Sequence[int | None]) -> SourceChanges:
    """:func:`_source_changes` of a Delta table read in place: its log says which files data commits added and
    removed after the oldest of ``marks`` (see :mod:`fti.features.delta_source`)."""
    if all(m is not None and m >= version for m in marks):
        return SourceChanges(version)
    lowest = None if any(m is None for m in marks) else min(m for m in marks if m is not None)
    log_ = delta_source.table(store.spark, src)
    changes, landed = delta_source.changes(store.spark, src, log_, after=lowest, upto=version)
    return SourceChanges(version, changes, landed)


def _source_changes(store: TableStore, raw: str, version: int, marks: Sequence[int | None]) -> SourceChanges:
    """Find the rows of ``raw`` landed after the oldest of ``marks`` by content lineage: the landing run id
    each raw row carries (``_batch``), looked up in the files added since (compactions included).

    After Delta's log cleanup the batches of the rows live at the first remaining version are read from the rows
    themselves and dated to that version. Rows that another writer added (no fti run id on the commit) count as
    landed by that commit, under whatever ``_batch`` they carry; those without a ``land_day`` (no day to
    recompute) are counted in ``unattributed``.
    """
    import dataclasses

    from pyspark.sql import functions as F

    if all(m is not None and m >= version for m in marks):
        return SourceChanges(version)
    lowest = None if any(m is None for m in marks) else min(m for m in marks if m is not None)
    changes = store.changes(raw, after=lowest, upto=version)
    foreign = changes.foreign_files()
    if not changes.files or not (changes.batches or changes.base is not None or foreign):
        return SourceChanges(version, changes)
    rows = store.read_files(raw, sorted(changes.files), version=version)
    by_file = changes.base is not None or bool(foreign)
    if by_file:
        counts = [{**r.asDict(), "_file": _file_key(r["_file"])} for r in
                  rows.groupBy("land_day", "_batch", F.input_file_name().alias("_file")).count().collect()]
    else:
        counts = [{**r.asDict(), "_file": None} for r in rows.where(F.col("_batch").isin(list(changes.batches)))
                  .groupBy("land_day", "_batch").count().collect()]
    batches = dict(changes.batches)
    if changes.base is not None:  # the log no longer says when these landed: at the first version it has
        for r in counts:
            if r["_batch"] is not None and r["_batch"] not in batches and changes.files.get(r["_file"]) == changes.base:
                batches[r["_batch"]] = changes.base
    landed: dict[tuple[dt.date | None, int], int] = {}
    odd: dict[tuple[dt.date | None, int, str], int] = {}
    for r in counts:
        if r["_batch"] not in batches and r["_file"] in foreign and r["land_day"] is not None:
            # another writer's rows (a Spark SQL INSERT INTO): landed like a batch, at the version that added them
            batches[r["_batch"]] = foreign[r["_file"]]
        if r["_batch"] in batches:
            key = (r["land_day"], batches[r["_batch"]])
            landed[key] = landed.get(key, 0) + r["count"]
        elif r["_file"] in foreign:  # no day to recompute: reported on every run until an output moves past it
            v = foreign[r["_file"]]
            key3 = (r["land_day"], v, changes.foreign.get(v, "?") if changes.foreign else "?")
            odd[key3] = odd.get(key3, 0) + r["count"]
    changes = dataclasses.replace(changes, batches=batches)
    return SourceChanges(version, changes, [(d, v, n) for (d, v), n in landed.items()],
                         [(d, v, n, op) for (d, v, op), n in sorted(odd.items(), key=lambda kv: (kv[0][1], str(kv[0][0])))])


@dataclass
class ParsedSource:
    """One source read and parsed once for a run.

    Attributes:
        good: Its good rows on the days the outputs need (None when no output needs any).
        parse: The checkpointed parse (every row, ``_reason`` and ``_raw_version`` set), released at the end.
        new_rows: Rows landed since the quarantine's watermark.
        bad_rows: Bad rows among those (quarantined).
        first: The first raw version whose rows this run judges (None: no new rows).
        warned: Rows among those kept although a ``warn`` rule broke, by reason.
    """

    good: DataFrame | None = None
    parse: DataFrame | None = None
    new_rows: int = 0
    bad_rows: int = 0
    first: int | None = None
    warned: dict[str, int] = field(default_factory=dict)


def _parse_source(store: TableStore, system: Project, source: str, found: SourceChanges, needed: set[dt.date],
                  *, judged: int | None, now: dt.datetime, context: dict[str, Any]) -> ParsedSource:
    """Read the raw rows a run needs ONCE and parse them (no commit: sources are parsed at once).

    The rows read are those of the days the outputs need, plus the rows landed after raw version ``judged``
    (see :func:`quarantine.judged_through`) and the other rows of their days (duplicates are judged among all
    rows of a day).
    """
    from pyspark.sql import functions as F

    spark = store.spark
    version = found.version
    src = system.sources[source]
    raw = src.table(system.name)
    fresh = found.batches_after(judged)
    wanted_days = needed | found.touched_days(judged)
    paths = set(found.changes.files) if fresh and found.changes else set()
    if isinstance(src, DeltaSource):  # in place: the days' rows and the new files' rows, _raw_version set
        new_files = {p: v for p, v in (found.changes.files.items() if fresh and found.changes else [])
                     if v in set(fresh.values())}
        rows = delta_source.rows(spark, src, delta_source.table(spark, src), version=version, days=wanted_days,
                                 files=new_files)
        if rows is None:
            return ParsedSource()
    else:
        if wanted_days:
            paths |= {f["path"] for f in store.files_holding(raw, Match.of(land_day=wanted_days), version=version)}
        if not paths:
            return ParsedSource()
        rows = store.read_files(raw, sorted(paths), version=version)
        tags = spark.createDataFrame(list(fresh.items()) or [("", -1)], "_batch string, _raw_version bigint")
        rows = rows.join(F.broadcast(tags), "_batch", "left")
    rows = (rows
            .withColumns({"_raw_row": F.to_json(F.struct(*[F.col(c) for c in src.columns])),
                          "_raw_ingested_at": F.col("ingested_at"), "_raw_land_day": F.col("land_day")}))
    # parsed once and checkpointed: the quarantine and every output read these rows, and plans built on a
    # checkpoint stay small (a cached parse keeps its whole plan, analyzed again by every output)
    parsed = system.parsers[source](rows, now=now, **context).localCheckpoint(eager=True)
    # a forgotten entity never comes back through a recompute, a backfill or rows landed before its deletion
    good = without_forgotten(parsed.where(F.col("_reason").isNull()).drop("_reason", "_policy", "_warning"), forgotten(store, system.name)) \
        if needed else None
    return ParsedSource(good, parsed, found.new_rows(judged), 0, (judged if judged is not None else -1) + 1 if fresh else None)


def _judge(store: TableStore, system: Project, source: str, parsed: ParsedSource, *, version: int,
           now: dt.datetime, run: RunContext, max_bad_share: float) -> None:
    """Quarantine the bad rows among a source's new rows (one commit when there are any).

    Raises:
        TooManyBadRows: Past ``max_bad_share`` (after the quarantine commit).
    """
    if parsed.first is None or parsed.parse is None:
        return
    src = system.sources[source]
    parsed.bad_rows = quarantine.record(store, system.name, source,
                                        src.location if isinstance(src, DeltaSource) else src.table(system.name),
                                        parsed.parse, first=parsed.first, version=version, new_rows=parsed.new_rows,
                                        now=now, run=run, max_bad_share=max_bad_share)
    parsed.warned = quarantine.warnings(parsed.parse)
    for reason, rows in sorted(parsed.warned.items()):
        log.warning("%s: %d new row(s) kept although a warn rule broke: %s", source, rows, reason)


def _read_days(store: TableStore, table: str, days: Iterable[dt.date]) -> DataFrame | None:
    """The rows of ``days`` of a table, read from only the files whose ``day`` statistics may hold them (found in
    the log, no Spark job); None when no file may."""
    from pyspark.sql import functions as F

    days = sorted(days)
    if not days:
        return None
    version = store.version(table)
    files = [f["path"] for f in store.files_holding(table, Match.of(day=days), version=version)]
    if not files:
        return None
    return store.read_files(table, files, version=version).where(F.col("day").isin(days))


def widen(days: Iterable[dt.date], lookback: int, *, forward: bool) -> set[dt.date]:
    """The ONE look-back arithmetic. A trailing window of ``lookback`` days ends on a day and covers it and the
    ``lookback - 1`` days before. Forward: the days whose window covers any of ``days`` (the rows that change when
    those days change). Backward: the days the windows ending on ``days`` read (the input rows they need)."""
    step = dt.timedelta(days=1 if forward else -1)
    return {d + i * step for d in days for i in range(lookback)}


def _plan(store: TableStore, output: Output, found: SourceChanges) -> OutputPlan:
    """An incremental run's plan for one output: the days whose rows change (each day with rows landed after the
    output's watermark, widened forward by the look-back), and whether stored partials serve the rest."""
    mark = store.watermark(output.table, output.source) if store.exists(output.table) else None
    if mark is not None and mark >= found.version:
        return OutputPlan(output, ())
    touched = found.touched_days(mark)
    affected = widen(touched, output.lookback, forward=True)
    from_state = bool(affected) and output.state_usable(store, mark, affected)
    return OutputPlan(output, tuple(sorted(affected)), tuple(sorted(touched)), from_state)


class Output:
    """One output table of a run: where its rows come from and how they are computed (no I/O but its table)."""

    table: str
    source: str
    lookback: int
    stat_columns: list[str]

    def ensure(self, store: TableStore) -> bool:
        """Create the table if needed; True when this run adds columns to it (an additive definition change)."""
        raise NotImplementedError

    def state_usable(self, store: TableStore, mark: int | None, days: Iterable[dt.date]) -> bool:
        """Whether stored per-day partials may serve the look-back of ``days`` (only trailing-window groups)."""
        return False

    def rows(self, store: TableStore, inputs: DataFrame, plan: OutputPlan, *, now: dt.datetime,
             run: RunContext, raw_version: int, backfill: bool, evolving: bool) -> DataFrame:
        """The rows of the plan's days, computed from ``inputs`` (the source's good rows of its input days)."""
        raise NotImplementedError

    def after_write(self, store: TableStore, evolving: bool) -> None:
        """What follows a committed write (a feature group records its new definition)."""


class GroupOutput(Output):
    """A feature group: its transform, one row per key and event time, history kept."""

    def __init__(self, system: Project, group: FeatureGroup, *, max_bad_share: float = 0.0) -> None:
        self.system, self.group, self.max_bad_share = system, group, max_bad_share
        self.table, self.source, self.lookback = group.table(system.name), group.sources[0], group.lookback_days
        self.stat_columns = ["event_time", *group.feature_names]
        self.joined_days = 0  # the days the last run's declared combine computed by a join (0: window functions)
        self.quarantined, self.warned = 0, {}  # what the last run's checks did (see _check_rows)

    def ensure(self, store: TableStore) -> bool:
        return _ensure_group_table(store, self.system, self.group)[1]

    def state_usable(self, store: TableStore, mark: int | None, days: Iterable[dt.date]) -> bool:
        """Whether a run rewriting ``days`` may take the partials of the days it does not recompute from the
        state table: the group keeps state, its state covers at least the group's watermark, was written by
        this definition, and holds complete partials back to the first day the windows read."""
        if not self.group.keeps_state or mark is None:
            return False
        name = state_table(self.table)
        if not store.exists(name):
            return False
        covered = store.watermark(name, self.source)
        props = store.properties(name)
        first = props.get("fti.state.complete_from")
        needed = widen(days, self.lookback, forward=False)
        return (covered is not None and covered >= mark and props.get("fti.definition") == self.state_definition()
                and first is not None and bool(needed) and min(needed) >= dt.date.fromisoformat(first))

    def join_targets(self, store: TableStore, days: Sequence[dt.date], recompute: Sequence[dt.date]
                     ) -> list[dt.date] | None:
        """The days a declared combine computes by joining their rows with the partials their windows cover, or
        None: window functions over every partial read. A join costs the rows written times the look-back, window
        functions every partial read (the look-back plus the days written) with a sort per window, so the join
        pays when the written days that hold data are few against the look-back (measured on 2 cores: one new
        day of a 28-day look-back 1.75x faster by the join, a month of new days 1.2x slower). A written day that
        was not recomputed holds data only where a stored state file may hold it (the log's statistics: no Spark
        job)."""
        fresh = set(recompute)
        others = [d for d in days if d not in fresh]
        stored: list[dt.date] = []
        if others and store.exists(state_table(self.table)):
            files = store.files_holding(state_table(self.table), Match.of(day=others))
            stored = [d for d in others if any(Match.of(day=[d]).may_hold(f) for f in files)]
        written = sorted({d for d in days if d in fresh} | set(stored))
        return written if written and len(written) * JOIN_SHARE <= self.lookback else None

    def state_definition(self) -> str:
        """What the state's partials depend on: the group's definition AND its ``daily``/``combine`` code (changed
        code must not combine with partials the old code wrote)."""
        return json.dumps({"group": json.loads(self.group.to_json()),
                           "code": _code_digest(self.group.daily, self.group.combine)}, sort_keys=True)

    def rows(self, store: TableStore, inputs: DataFrame, plan: OutputPlan, *, now: dt.datetime,
             run: RunContext, raw_version: int, backfill: bool, evolving: bool) -> DataFrame:
        from pyspark.sql import functions as F

        group, days = self.group, list(plan.days)
        self.joined_days = 0
        if group.keeps_state:
            recompute = sorted(plan.recompute if plan.from_state else plan.input_days)
            fresh = self._write_state(store, inputs, recompute, run=run, raw_version=raw_version, backfill=backfill)
        if plan.from_state:  # the recomputed days' partials and the stored ones of the rest of the look-back
            stored = _read_days(store, state_table(self.table), widen(days, self.lookback, forward=False) - set(recompute))
            partials = fresh if stored is None else fresh.unionByName(stored.select(*fresh.columns))
            if getattr(group.combine, "fti_declared", False):
                targets = self.join_targets(store, days, recompute)
                self.joined_days = len(targets or ())
                out = group.combine(partials, days=targets)
            else:  # a hand-written combine gets the partials
                out = group.combine(partials)
        else:  # the look-back's raw rows
            out = group.transform({self.source: inputs}, now=now)
        out = _finish(out.where(F.col("day").isin(days)), keys=group.keys,
                      schema=group.schema(dict(self.system.key_types)), now=now)
        if group.checks:
            out = self._check_rows(store, out, days, now=now, run=run, raw_version=raw_version)
        return _keep_history(store, self.table, group.keys, out, days, now=now, run=run,
                             txn_version=None if backfill else raw_version, evolving=evolving)

    def _check_rows(self, store: TableStore, out: DataFrame, days: Sequence[dt.date], *, now: dt.datetime,
                    run: RunContext, raw_version: int) -> DataFrame:
        """Judge the computed rows by the group's checks (see :class:`FeatureGroup`) before anything of the group
        is written: the broken rows of ``days`` replace the group's earlier ones in the quarantine (ONE commit, none
        when there is nothing to add or replace), then a ``fail`` share past ``max_bad_share`` refuses the write.

        Returns:
            The rows to write (every row no ``quarantine``/``fail`` check refused).

        Raises:
            TooManyBadRows: More than ``max_bad_share`` of the rows broke a ``fail`` check (the table is unchanged).
        """
        from pyspark.sql import functions as F

        from fti.features.rules import POLICY_COL, WARNING_COL, add_rules

        none = F.lit(None).cast("string")
        rules = [(~F.coalesce(F.expr(c.condition), F.lit(True)), F.lit(c.reason), c.policy or "quarantine")
                 for c in self.group.checks]
        judged = add_rules(out.withColumns({"_reason": none, POLICY_COL: none, WARNING_COL: none}), rules) \
            .localCheckpoint(eager=True)
        counts = judged.groupBy("_reason", POLICY_COL, WARNING_COL).count().collect()
        total = sum(r["count"] for r in counts)
        bad = {r["_reason"]: r["count"] for r in counts if r["_reason"] is not None}
        gated = sum(r["count"] for r in counts if r[POLICY_COL] == "fail")
        self.quarantined = sum(bad.values())
        self.warned = {r[WARNING_COL]: r["count"] for r in counts if r["_reason"] is None and r[WARNING_COL]}
        for reason, rows in sorted(self.warned.items()):
            log.warning("%s: %d row(s) kept although a warn check broke: %s", self.table, rows, reason)
        qname = quarantine.quarantine_table(self.system.name)
        where = Match.of(source=[self.table], land_day=days)
        if bad or store.files_holding(qname, where):
            row = F.to_json(F.struct(*[F.col(f"`{c}`") for c in out.columns if c != "ingested_at"]))
            store.replace_where(qname, judged.where(F.col("_reason").isNotNull()).select(
                F.lit(self.table).alias("source"), F.lit(raw_version).cast("bigint").alias("raw_version"),
                F.lit(run.run_id).alias("run_id"), F.col("_reason").alias("reason"), row.alias("raw_row"),
                "ingested_at", F.lit(now).cast("timestamp").alias("detected_at"), F.col("day").alias("land_day"),
            ).coalesce(1), where, run=run, metadata={"fti.quarantined_rows": self.quarantined, "fti.group": self.table})
        if total and gated / total > self.max_bad_share:
            broken = ", ".join(f"{reason}: {rows}" for reason, rows in sorted(bad.items()))
            raise quarantine.TooManyBadRows(
                f"{gated} of {total} rows {self.table} computed for {days[0]}..{days[-1]} broke a fail check "
                f"({100.0 * gated / total:.1f}% > {100.0 * self.max_bad_share:.1f}%; {broken}): {self.table} was not "
                f"changed",
                hint=f"inspect them with `fti sql \"SELECT reason, raw_row FROM {qname.replace('/', '.')} WHERE "
                     f"source = '{self.table}'\"`; fix the input or the check, or raise features.max_bad_share "
                     f"above {100.0 * gated / total:.1f}%, and run again")
        return judged.where(F.col("_reason").isNull()).select(*out.columns)

    def _write_state(self, store: TableStore, inputs: DataFrame, recompute: Sequence[dt.date], *, run: RunContext,
                     raw_version: int, backfill: bool) -> DataFrame:
        """Recompute the per-day partials of ``recompute`` from raw and replace those days of the state table in
        ONE commit, made before the group's with the same watermark (not when the state was written by another
        definition). Returns the recomputed partials."""
        from pyspark.sql import functions as F

        group, name = self.group, state_table(self.table)
        definition = self.state_definition()
        fresh = group.daily({self.source: inputs.where(F.col("day").isin(list(recompute)))}).localCheckpoint(eager=True)
        if not store.exists(name):
            store.create_table(name, fresh.schema, kind="feature_state",
                               description=f"Per-day partial aggregates of {self.table} (runs combine them over the "
                                           "look-back instead of re-reading raw rows)",
                               properties={"fti.definition": definition,
                                           "fti.state.complete_from": recompute[0].isoformat()})
        common = dict(txn=None if backfill else Txn(f"state:{self.table}", raw_version),
                      watermarks=None if backfill else {self.source: raw_version}, inputs={self.source: raw_version},
                      run=run, metadata={"fti.days": f"{recompute[0]}..{recompute[-1]}", "fti.backfill": backfill})
        if self._state_in_sync(store, definition):
            store.replace_where(name, fresh.coalesce(1).sortWithinPartitions("day"), Match.of(day=recompute), **common)
            return fresh
        # written by another definition or code, or behind the group (runs that did not write it): its other days
        # may be missing or stale, so it starts over from the days recomputed now (complete from the first of them)
        log.info("%s: the state is not in step with the group (definition, code or watermark): rebuilt from %s",
                 name, recompute[0])
        store.set_properties(name, {"fti.state.complete_from": "9999-12-31"}, run=run)  # unusable until rebuilt
        # another definition's partials may be other columns: new ones are added, the old ones read as null
        gone = [f for f in store.schema(name).fields if f.name not in fresh.columns]
        rebuilt = fresh.select("*", *[F.lit(None).cast(f.dataType).alias(f.name) for f in gone])
        store.overwrite(name, rebuilt.coalesce(1).sortWithinPartitions("day"), allow_new_columns=True, **common)
        store.set_properties(name, {"fti.definition": definition, "fti.state.complete_from": recompute[0].isoformat()},
                             run=run)
        return fresh

    def _state_in_sync(self, store: TableStore, definition: str) -> bool:
        """The state holds this definition's partials of every day up to the group's watermark: written by this
        definition and code, by every run that wrote the group (its watermark is not behind the group's)."""
        name = state_table(self.table)
        if store.properties(name).get("fti.definition") != definition:
            return False
        if not store.exists(self.table):
            return True
        group_mark = store.watermark(self.table, self.source)
        state_mark = store.watermark(name, self.source)
        return group_mark is None or (state_mark is not None and state_mark >= group_mark)

    def after_write(self, store: TableStore, evolving: bool) -> None:
        if evolving:
            store.set_properties(self.table, {"fti.definition": self.group.to_json()})


class LabelsOutput(Output):
    """The labels table (the training spine): the system's label transform over its source."""

    def __init__(self, system: Project, settings: Settings) -> None:
        self.system, self.settings = system, settings
        self.table, self.source, self.lookback = labels_table(system.name), system.labels.source, 1
        self.stat_columns = ["prediction_time"]

    def ensure(self, store: TableStore) -> bool:
        _ensure_labels_table(store, self.system)
        return False

    def rows(self, store: TableStore, inputs: DataFrame, plan: OutputPlan, *, now: dt.datetime,
             run: RunContext, raw_version: int, backfill: bool, evolving: bool) -> DataFrame:
        from pyspark.sql import functions as F

        out = self.system.labels.transform(inputs, config=self.settings.config).where(F.col("day").isin(list(plan.days)))
        return out.withColumn("ingested_at", F.lit(now).cast("timestamp")).select(*store.schema(self.table).fieldNames())


@dataclass(frozen=True)
class OutputPlan:
    """What a run does to one output: the days it rewrites (sorted; none: up to date).

    Attributes:
        recompute: The days with rows landed since the output's watermark.
        from_state: The output combines stored per-day partials (its state table) with those of ``recompute``,
            so it reads only those days' raw rows.
    """

    output: Output
    days: tuple[dt.date, ...]
    recompute: tuple[dt.date, ...] = ()
    from_state: bool = False

    @property
    def input_days(self) -> set[dt.date]:
        """The days of source rows the rewritten days read."""
        if self.from_state:
            return set(self.recompute)
        return widen(self.days, self.output.lookback, forward=False)


def _code_digest(*functions: Callable[..., Any] | None) -> str:
    """A digest of functions' code: their source where Python has it, else their bytecode and constants."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    for fn in functions:
        if fn is None:
            digest.update(b"-")
            continue
        try:
            digest.update(inspect.getsource(fn).encode())
        except (OSError, TypeError):
            code = getattr(fn, "__code__", None)
            digest.update(code.co_code + repr(code.co_consts).encode() if code is not None else repr(fn).encode())
    return digest.hexdigest()[:16]


def state_table(table: str) -> str:
    """Where a trailing-window group keeps its per-day partial aggregates: ``flights/carrier_delay`` ->
    ``flights/state/carrier_delay``."""
    system, _, group = table.partition("/")
    return f"{system}/state/{group}"


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
    existing = _read_days(store, name, affected)  # a run that only adds new days reads no file
    if existing is None:
        return out
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


def _execute(store: TableStore, plan: OutputPlan, good: DataFrame | None, *, now: dt.datetime, run: RunContext,
             backfill: bool, raw_version: int) -> OutputResult:
    """Compute one output's rows for its planned days and commit them in ONE replace of those days (with the
    source's watermark and a transaction id, unless a backfill)."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    output, affected = plan.output, list(plan.days)
    if not affected:
        return OutputResult(output.table, "up to date", store.version(output.table) if store.exists(output.table) else None)
    if good is None:  # no raw rows at all for these days (a backfill before the data starts)
        return OutputResult(output.table, "no data", store.version(output.table) if store.exists(output.table) else None)
    needed = plan.input_days
    inputs = good.where((F.col("day") >= F.lit(min(needed))) & (F.col("day") <= F.lit(max(needed))))
    evolving = output.ensure(store)
    name, source = output.table, output.source
    out = output.rows(store, inputs, plan, now=now, run=run, raw_version=raw_version, backfill=backfill,
                      evolving=evolving)
    # the statistics come from the write's own pass; one file per run, sorted by day: tight statistics, so
    # the next replace rewrites few files
    out, stats = _observe_stats(out, output.stat_columns)
    result = store.replace_where(
        name, out.coalesce(1).sortWithinPartitions("day"), Match.of(day=affected),
        txn=None if backfill else Txn(f"features:{name}", raw_version),
        watermarks=None if backfill else {source: raw_version}, inputs={source: raw_version},
        run=run, allow_new_columns=evolving,
        metadata=lambda: {"fti.stats": json.dumps(stats(), default=str), "fti.days": f"{affected[0]}..{affected[-1]}",
                          "fti.backfill": backfill},
    )
    rows = result.rows
    output.after_write(store, evolving)
    # skipped here means a concurrent run committed this window first (its txn reached this raw version)
    status = "written" if not result.skipped else "skipped: another run wrote it"
    seconds = time.perf_counter() - t0
    log.info("%s: version %s, %d rows over %d day(s) %s..%s (%.1f s)", name, result.version, rows, len(affected),
             affected[0], affected[-1], seconds)
    return OutputResult(name, status, result.version, rows, len(affected), affected[0], affected[-1], seconds,
                        input_days=len(needed), from_state=plan.from_state,
                        joined_days=getattr(output, "joined_days", 0), quarantined=getattr(output, "quarantined", 0),
                        warned=dict(getattr(output, "warned", {})))


def _chosen(settings: Settings, system: Project, groups: Sequence[str] | None) -> tuple[list[FeatureGroup], bool]:
    """The groups a run computes (``groups``, else config ``features.groups``, else every computed group) and
    whether it writes the labels (when all groups run)."""
    selected = list(groups or settings.config.features.groups or [g.name for g in system.groups if not g.inserted])
    chosen = [system.group(g) for g in selected]
    inserted = [g.name for g in chosen if g.inserted]
    if inserted:
        raise FtiError(f"feature group(s) {', '.join(inserted)} of {system.name} are inserted (no sources): feature "
                       "runs do not compute them", hint="hand their rows over with insert(); run the computed groups")
    return chosen, groups is None


@dataclass(frozen=True)
class PlannedOutput:
    """What a run would do to one output table (see :func:`plan`).

    Attributes:
        table: The output table.
        source: The source it reads.
        definition: ``create``, ``same``, ``additive: +col, ...`` or ``breaking: ...`` (labels: ``create`` or
            ``same``).
        days: The days the run would rewrite (none: up to date).
        input_days: How many days of raw rows it would read.
        state: For a trailing-window group: ``create``, ``stored partials`` (combined with the recomputed days),
            ``rebuild`` (written by another definition or behind the group), ``recompute`` (the look-back from raw,
            the state rewritten for those days); else empty.
        breaking: The definition cannot be written to the table (the run refuses it).
        hint: What to do about a breaking change.
    """

    table: str
    source: str
    definition: str
    days: tuple[dt.date, ...]
    input_days: int
    state: str = ""
    breaking: bool = False
    hint: str = ""


@dataclass(frozen=True)
class PlannedSource:
    """A source as a run would read it: its version, the oldest watermark of the outputs reading it and the new
    rows and days since then (the versions not yet processed)."""

    source: str
    version: int
    watermark: int | None
    new_rows: int
    days: int
    unattributed_rows: int


@dataclass(frozen=True)
class RunPlan:
    """What ``fti features`` would do now (:func:`plan`): nothing is written to compute it."""

    sources: list[PlannedSource]
    outputs: list[PlannedOutput]

    @property
    def breaking(self) -> list[PlannedOutput]:
        return [o for o in self.outputs if o.breaking]


def plan(store: TableStore, settings: Settings, *, start: dt.date | None = None, end: dt.date | None = None,
         groups: Sequence[str] | None = None, system: Project | None = None) -> RunPlan:
    """What a feature run with the same arguments would do, without doing it: the tables it would create, the groups
    whose definition changed (additive: new columns; breaking: refused, with the versioned-name hint), the state
    tables it would create or rebuild, each source's unprocessed versions and the days each output would rewrite.
    Nothing is written (no table, no quarantine, no lock).

    Raises:
        FtiError: No raw data yet for a source (what to land), a backfill without both days.
    """
    system = system or load_project(settings)
    backfill = start is not None or end is not None
    if backfill and (start is None or end is None or end <= start):
        raise FtiError("a backfill needs --start and --end with start < end", hint="e.g. --start 2013-01-01 --end 2013-02-01")
    chosen, with_labels = _chosen(settings, system, groups)
    planned = _make_plans(store, settings, system=system, chosen=chosen, with_labels=with_labels, start=start,
                          end=end, backfill=backfill)
    sources = []
    for source in planned.sources:
        marks = [m for m in planned.marks[source].values()]
        oldest = None if any(m is None for m in marks) or not marks else min(marks)  # type: ignore[type-var]
        found = planned.found[source]
        sources.append(PlannedSource(source, planned.versions[source], oldest, found.new_rows(oldest),
                                     len(found.touched_days(oldest)), sum(n for _, _, n, _ in found.unattributed)))
    outputs = []
    for p in planned.plans:
        out = p.output
        if isinstance(out, GroupOutput):
            change = definition_change(store, system, out.group)
            text = {"create": "create", "same": "same", "breaking": "breaking: " + "; ".join(change.problems),
                    "additive": "additive: +" + ", +".join(change.columns)}[change.kind]
            state = _planned_state(store, out, p) if out.group.keeps_state else ""
            outputs.append(PlannedOutput(out.table, out.source, text, p.days, len(p.input_days) if p.days else 0,
                                         state, change.kind == "breaking",
                                         breaking_hint(out.group) if change.kind == "breaking" else ""))
        else:
            outputs.append(PlannedOutput(out.table, out.source, "same" if store.exists(out.table) else "create",
                                         p.days, len(p.input_days) if p.days else 0))
    return RunPlan(sources, outputs)


def _planned_state(store: TableStore, output: GroupOutput, p: OutputPlan) -> str:
    if not store.exists(state_table(output.table)):
        return "create"
    if not p.days:
        return "same"
    if p.from_state:
        return "stored partials"
    return "recompute" if output._state_in_sync(store, output.state_definition()) else "rebuild"


def run(store: TableStore, settings: Settings, *, now: dt.datetime | None = None, start: dt.date | None = None,
        end: dt.date | None = None, groups: Sequence[str] | None = None, run_id: str | None = None,
        system: Project | None = None) -> FeatureRunReport:
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

    started = time.perf_counter()
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    system = system or load_project(settings)
    run_ctx = RunContext(run_id=run_id or new_run_id("features"), pipeline="features")
    backfill = start is not None or end is not None
    if backfill and (start is None or end is None or end <= start):
        raise FtiError("a backfill needs --start and --end with start < end", hint="e.g. --start 2013-01-01 --end 2013-02-01")
    chosen, with_labels = _chosen(settings, system, groups)

    # from the first read of raw versions and the forgotten list to the last commit: no deletion between them
    with store.system_lock(system.name, what=f"feature run {run_ctx.run_id}"):
        return _run(store, settings, system=system, chosen=chosen, with_labels=with_labels, now=now, start=start,
                    end=end, backfill=backfill, run_ctx=run_ctx, started=started)


@dataclass
class _Planned:
    """Step 1 of a run (reads only): the sources' versions, their changes since the outputs' watermarks, and the plan
    of each output."""

    sources: list[str]
    versions: dict[str, int]
    found: dict[str, SourceChanges]
    marks: dict[str, dict[str, int | None]]
    judged: dict[str, int | None]
    plans: list[OutputPlan]


def _make_plans(store: TableStore, settings: Settings, *, system: Project, chosen: list[FeatureGroup],
                with_labels: bool, start: dt.date | None, end: dt.date | None, backfill: bool) -> _Planned:
    sources = sorted({s for g in chosen for s in g.sources} | ({system.labels.source} if with_labels else set()))
    versions: dict[str, int] = {}
    for source in sources:
        src = system.sources[source]
        if isinstance(src, DeltaSource):  # read in place: the user's table's own version
            versions[source] = delta_source.table(store.spark, src).version(source)
            continue
        raw = src.table(system.name)
        if not store.exists(raw):
            raise FtiError(f"no raw data for source '{source}' of system {system.name} under {store.home}",
                           hint=f"land data first: fti ingest --system {system.name} ...")
        versions[source] = store.version(raw)

    share = settings.config.features.max_bad_share
    outputs: list[Output] = [GroupOutput(system, g, max_bad_share=share) for g in chosen] + (
        [LabelsOutput(system, settings)] if with_labels else [])
    found: dict[str, SourceChanges] = {}
    marks: dict[str, dict[str, int | None]] = {}
    judged: dict[str, int | None] = {}
    for source in sources:
        raw = system.sources[source].table(system.name)
        marks[source] = {o.table: store.watermark(o.table, source) if store.exists(o.table) else None
                         for o in outputs if o.source == source}
        readers = [] if backfill else list(marks[source].values())
        judged[source] = quarantine.judged_through(store, system.name, source, marks[source].values())
        if isinstance(system.sources[source], DeltaSource):
            found[source] = _delta_source_changes(store, system.sources[source], versions[source],
                                                  readers + [judged[source]])
        else:
            found[source] = _source_changes(store, raw, versions[source], readers + [judged[source]])
        base = found[source].changes.base if found[source].changes else None
        if base is not None and judged[source] is not None and judged[source] < base:
            log.warning("%s: the quarantine judged rows up to raw version %d, but the log before version %d is gone: "
                        "rows landed before it are not judged again (their bad rows stay out of every feature)",
                        raw, judged[source], base)
            judged[source] = base
        for day, version, rows, operation in found[source].unattributed:
            log.warning("%s: %d row(s) (land_day %s), added by version %d (%s, not an fti landing), have no day: "
                        "incremental runs cannot place them", raw, rows, day, version, operation)
    plans = [OutputPlan(o, tuple(sorted(days(start, end)))) if backfill  # type: ignore[arg-type]
             else _plan(store, o, found[o.source]) for o in outputs]
    return _Planned(sources, versions, found, marks, judged, plans)


def _run(store: TableStore, settings: Settings, *, system: Project, chosen: list[FeatureGroup], with_labels: bool,
         now: dt.datetime, start: dt.date | None, end: dt.date | None, backfill: bool, run_ctx: RunContext,
         started: float) -> FeatureRunReport:
    # 1. the plan: which days each output rewrites
    planned = _make_plans(store, settings, system=system, chosen=chosen, with_labels=with_labels, start=start,
                          end=end, backfill=backfill)
    sources, versions, found, marks, judged, plans = (planned.sources, planned.versions, planned.found,
                                                      planned.marks, planned.judged, planned.plans)
    report = FeatureRunReport(run_id=run_ctx.run_id, now=now, raw_versions=dict(versions),
                              unattributed={s: found[s].unattributed for s in sources})
    context = system.reference_data(store)

    # 2. read and parse each source ONCE (the sources at once); quarantine its new bad rows (always
    #    incremental: rows are judged once, when they arrive); stop before any feature write past the bad-row share
    workers = settings.config.features.parallel_outputs
    max_bad_share = settings.config.features.max_bad_share
    quarantine.ensure_table(store, system.name)
    parsed: dict[str, ParsedSource] = {}

    def parse(source: str) -> ParsedSource:
        needed = set().union(*(p.input_days for p in plans if p.output.source == source))
        with job_description(store.spark, f"fti features {system.name}: parse {source}"):
            return _parse_source(store, system, source, found[source], needed, judged=judged[source], now=now,
                                 context=context)

    try:
        with ThreadPoolExecutor(max(1, min(workers, len(sources))), thread_name_prefix="fti-parse") as pool:
            for source, result in zip(sources, pool.map(parse, sources)):
                parsed[source] = result
        for source in sources:
            with job_description(store.spark, f"fti features {system.name}: quarantine {source}"):
                _judge(store, system, source, parsed[source], version=versions[source], now=now, run=run_ctx,
                       max_bad_share=max_bad_share)
            quarantine.refuse_rejected(store, system.name, source, marks[source], max_bad_share)
            report.new_rows[source], report.bad_rows[source] = parsed[source].new_rows, parsed[source].bad_rows
            report.warned_rows[source] = parsed[source].warned

        # 3. one commit per output. The outputs are independent tables: up to features.parallel_outputs of them
        #    are computed and committed at once, so one's driver work (planning, the Delta log) overlaps
        #    another's Spark job
        def execute(plan: OutputPlan) -> OutputResult:
            with job_description(store.spark, f"fti features: {plan.output.table}"):
                return _execute(store, plan, parsed[plan.output.source].good, now=now, run=run_ctx, backfill=backfill,
                                raw_version=versions[plan.output.source])

        with ThreadPoolExecutor(max(1, min(workers, len(plans))), thread_name_prefix="fti-output") as pool:
            report.outputs = list(pool.map(execute, plans))
    finally:
        for p in parsed.values():
            release(p.parse)
    report.seconds = time.perf_counter() - started
    return report
