"""``insert(df)``: rows a user's own Spark job or notebook computed, handed to fti.

Two targets, as in Hopsworks' ``fg.insert(df)`` and Databricks' ``write_table(mode="merge")``:

- **a source**: the rows land as one new raw version with a landing batch, exactly like ``fti ingest --file``
  (the columns checked, typed values kept as the raw contract's text, a forgotten entity's rows dropped); the
  next ``fti features`` run parses, quarantines and featurizes them like any landed rows;
- **an inserted feature group** (a :class:`~fti.authoring.FeatureGroup` declared with no sources and no
  transform: the user computes its rows): the rows are checked against the group's definition (every column,
  types, keys and ``event_time`` not null, one row per key and ``event_time``, the features' ``min``/``max``)
  and merged by (keys, ``event_time``) into the group's table in ONE commit that carries the run, the days and
  the statistics observed in the same pass; rows they replace move to the group's history first, so
  bi-temporal reads and time travel work as for a computed group.

A refused insert commits nothing and says which column, how many rows and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.features.definitions import FeatureGroup
from fti.features.spec import Project
from fti.forget import forgotten, without_forgotten
from fti.projects import load_project
from fti.store import Match, RunContext, new_run_id
from fti.timeutil import UTC

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from fti.config import Settings
    from fti.sources import Source
    from fti.store import TableStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InsertResult:
    """What an insert committed.

    Attributes:
        table: The table written (the source's raw table, or the group's table).
        version: Its new version.
        rows: Rows inserted (a forgotten entity's rows are not).
        replaced: Rows of the group the insert replaced (moved to history; 0 for a source).
        days: ``(first, last)`` day the rows describe (groups only).
        run_id: The insert's run id (in the commit).
    """

    table: str
    version: int
    rows: int
    replaced: int = 0
    days: tuple[dt.date, dt.date] | None = None
    run_id: str = ""


def insert(store: TableStore, settings: Settings, target: str, df: DataFrame, *, now: dt.datetime | None = None,
           project: Project | None = None) -> InsertResult:
    """Insert a DataFrame into a source or an inserted feature group of the project.

    Args:
        store: The home's table store.
        settings: The project's settings.
        target: A source name (the rows land as a batch) or an inserted feature group's name.
        df: The rows: a source's columns (any types: kept as text, as landed files are), or a group's keys,
            ``event_time`` and features (``day`` optional: the local day of ``event_time`` by default).
        now: The insert's clock (``ingested_at``), default the wall clock.
        project: The project's definitions (default: loaded from ``settings``).

    Returns:
        The commit.

    Raises:
        FtiError: An unknown target, a computed group, or rows that do not fit (nothing is committed).

    Example::

        from fti.features.insert import insert
        insert(store, settings, "events", spark.table("bronze.events"))           # lands a batch
        insert(store, settings, "customer_scores", scores_df)                     # merges into the group
    """
    project = project or load_project(settings)
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    if target in project.sources:
        return _insert_source(store, project, project.sources[target], df, now=now)
    groups = {g.name: g for g in project.groups}
    if target not in groups:
        raise FtiError(f"project {project.name} has no source or feature group {target!r}",
                       hint=f"sources: {', '.join(project.sources)}; groups: {', '.join(groups)}")
    group = groups[target]
    if group.sources:
        raise FtiError(f"feature group {target} is computed by fti from source(s) {', '.join(group.sources)}: every "
                       "feature run replaces its days, so inserted rows would not last; nothing was written",
                       hint=f"insert the raw rows into its source ({group.sources[0]}), or declare a group with no "
                            "sources and no transform for rows you compute yourself")
    return _insert_group(store, settings, project, group, df, now=now)


def _insert_source(store: TableStore, project: Project, source: Source, df: DataFrame, *,
                   now: dt.datetime) -> InsertResult:
    from fti.ingest import _as_text, land

    where = f"insert into source '{source.name}' of project {project.name}"
    missing = [c for c in source.columns if c not in df.columns]
    extra = [c for c in df.columns if c not in source.columns]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + \
                ([f"unknown column(s) {', '.join(extra)}"] if extra else [])
        raise FtiError(f"{where}: " + "; ".join(parts) + "; nothing was landed",
                       hint=f"select exactly the source's columns: {', '.join(source.columns)}")
    text = df.select(*[_as_text(store.spark, df.schema[c]) for c in source.columns])
    run = RunContext(run_id=new_run_id("insert"), pipeline="ingest")
    result = land(store, project.name, source, text, ingested_at=now, source_label="insert", run=run)
    if result.rows == 0:
        log.warning("%s: no rows landed", where)
    log.info("%s: %d row(s) landed as %s version %d", where, result.rows, source.table(project.name), result.version)
    return InsertResult(source.table(project.name), result.version, result.rows, run_id=run.run_id)


def _checked(df: DataFrame, group: FeatureGroup, schema, *, where: str, tz: str) -> DataFrame:
    """The rows cast to the group's schema with ``day`` set; refused with the column and row count otherwise."""
    from pyspark.sql import functions as F

    wanted = [*group.keys, "event_time", *group.feature_names]
    missing = [c for c in wanted if c not in df.columns]
    extra = [c for c in df.columns if c not in wanted and c != "day"]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + \
                ([f"unknown column(s) {', '.join(extra)}"] if extra else [])
        raise FtiError(f"{where}: " + "; ".join(parts) + "; nothing was written",
                       hint=f"the group's columns: {', '.join(wanted)} (and optionally day)")
    types = {f.name: f.dataType for f in schema.fields}
    # try_cast: a value that is not of the column's type becomes null, counted below (a cast fails the job in ANSI)
    day = F.col("day").try_cast("date") if "day" in df.columns else \
        F.to_date(F.from_utc_timestamp(F.col("event_time").try_cast("timestamp"), tz))
    cast = df.select(*[F.col(f"`{c}`").try_cast(types[c]).alias(c)
                       for c in wanted], day.alias("day"),
                     *[F.col(f"`{c}`").isNotNull().alias(f"_given_{i}") for i, c in enumerate(wanted)])
    checks = [F.count(F.lit(1)).alias("rows")]
    for i, c in enumerate(wanted):
        checks.append(F.sum((F.col(f"_given_{i}") & F.col(f"`{c}`").isNull()).cast("int")).alias(f"bad_type:{c}"))
    for c in [*group.keys, "event_time"]:
        checks.append(F.sum(F.col(f"`{c}`").isNull().cast("int")).alias(f"null:{c}"))
    for f in group.features:
        if f.min is not None:
            checks.append(F.sum((F.col(f"`{f.name}`") < f.min).cast("int")).alias(f"below:{f.name}"))
        if f.max is not None:
            checks.append(F.sum((F.col(f"`{f.name}`") > f.max).cast("int")).alias(f"above:{f.name}"))
    dupes = cast.groupBy(*group.keys, "event_time").count().where("count > 1")
    found = cast.agg(*checks).first().asDict()
    duplicated = dupes.agg(F.coalesce(F.sum("count"), F.lit(0))).first()[0]
    total = found.pop("rows")
    problems = []
    for check, n in found.items():
        if n:
            what, column = check.split(":", 1)
            if what == "bad_type":
                problems.append(f"{n} value(s) of {column} are not {types[column].simpleString()}")
            elif what == "null":
                problems.append(f"{n} row(s) have no {column}")
            else:
                bound = next(getattr(f, "min" if what == "below" else "max") for f in group.features if f.name == column)
                problems.append(f"{n} value(s) of {column} are {what} its {'min' if what == 'below' else 'max'} {bound:g}")
    if duplicated:
        problems.append(f"{duplicated} row(s) share their keys and event_time with another row")
    if problems:
        raise FtiError(f"{where}: {'; '.join(problems)} (of {total} row(s)); nothing was written",
                       hint="fix or drop those rows and insert again (one row per key and event time)")
    return cast.drop(*[c for c in cast.columns if c.startswith("_given_")])


def _insert_group(store: TableStore, settings: Settings, project: Project, group: FeatureGroup, df: DataFrame, *,
                  now: dt.datetime) -> InsertResult:
    from fti.features.pipeline import _ensure_group_table, _finish, _keep_history, _observe_stats, _read_days

    where = f"insert into feature group '{group.name}' of project {project.name}"
    schema = group.schema(dict(project.key_types))
    rows = _checked(df, group, schema, where=where, tz=settings.config.timezone)
    run = RunContext(run_id=new_run_id("insert"), pipeline="insert")
    with store.system_lock(project.name, what=f"insert {run.run_id} into {group.name}"):  # forget excludes it
        rows = without_forgotten(rows, forgotten(store, project.name)).localCheckpoint(eager=True)
        days = sorted(r["day"] for r in rows.select("day").distinct().collect())
        if not days:
            raise FtiError(f"{where}: no rows to insert (every row's entity was forgotten, or the DataFrame is empty); "
                           "nothing was written", hint="check the DataFrame handed over")
        name, evolving = _ensure_group_table(store, project, group)
        new = _finish(rows, keys=group.keys, schema=schema, now=now)
        match = [*group.keys, "event_time"]
        existing = _read_days(store, name, days)
        replaced = 0
        if existing is not None:  # a merge: the days' other rows stay, rows of the same key and time are replaced
            kept = existing.join(new.select(*match), match, "left_anti")
            replaced = existing.count() - kept.count()
            merged = kept.select(*new.columns).unionByName(new)
        else:
            merged = new
        out = _keep_history(store, name, group.keys, merged, days, now=now, run=run, txn_version=None, evolving=evolving)
        out, stats = _observe_stats(out, ["event_time", *group.feature_names])
        result = store.replace_where(
            name, out.coalesce(1).sortWithinPartitions("day"), Match.of(day=days), run=run, allow_new_columns=evolving,
            metadata=lambda: {"fti.stats": json.dumps(stats(), default=str), "fti.days": f"{days[0]}..{days[-1]}",
                              "fti.insert": True})
        if evolving:
            store.set_properties(name, {"fti.definition": group.to_json()})
    inserted = rows.count()
    log.info("%s: %d row(s) over %d day(s) %s..%s, %d replaced (version %d)", where, inserted, len(days), days[0],
             days[-1], replaced, result.version)
    return InsertResult(name, result.version, inserted, replaced, (days[0], days[-1]), run.run_id)
