"""Reading a :class:`~fti.sources.DeltaSource` in place: its changes from the table's own log, its rows at a
version (typed, with the raw columns a parser expects), without copying them into the home.

The feature pipeline asks two things of every source: which days have rows added, changed or removed after a
watermark version (:func:`changes`), and the rows of some days plus the rows added after a version
(:func:`rows`). For an fti raw table the landing batch on each row answers the first; here the log does: the
files data commits added (``dataChange=true``), the files a compaction rewrote them into, and the files data
commits removed, whose rows (read at the version before the removal) name the days to recompute.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.location import Location
from fti.store.delta_log import Changes, DeltaLog

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from fti.sources import DeltaSource

BATCH_PREFIX = "delta:"  # the _batch of a row of a Delta source: the version whose commit added its file


class SourceTable(DeltaLog):
    """The log of one Delta table outside the home (any name addresses it)."""

    def path(self, name: str) -> Location:
        return self.home


def location_of(spark: SparkSession, source: DeltaSource) -> Location:
    """The source table's location: the path or URI as given, or a catalog name's location (``DESCRIBE DETAIL``).

    Raises:
        FtiError: A catalog name Spark does not know, or a location that holds no Delta table.
    """
    text = source.location
    if "/" not in text and ":" not in text:  # a catalog name: bronze.events, main.bronze.events
        try:
            detail = spark.sql(f"DESCRIBE DETAIL {text}").first()
        except Exception as exc:
            raise FtiError(f"source {source.name}: the Spark catalog has no Delta table {text} "
                           f"({str(exc).splitlines()[0][:200]})",
                           hint="check the name (catalog.schema.table), or give the table's path or URI") from None
        text = detail["location"]
    return _located(text)


@lru_cache(maxsize=64)
def _located(text: str) -> Location:
    return Location(text[len("file:"):] if text.startswith("file:") and not text.startswith("file://") else text)


def table(spark: SparkSession, source: DeltaSource) -> SourceTable:
    """The source's log, checked to hold a Delta table."""
    log = SourceTable(location_of(spark, source))
    if not log.exists(source.name):
        raise FtiError(f"source {source.name}: {source.location} holds no Delta table (no _delta_log commits)",
                       hint="write the table first (df.write.format('delta')), or fix the DeltaSource's location")
    return log


def _read(spark: SparkSession, log: SourceTable, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", version).load(log.home.uri)


def _name(path: str) -> str:
    return os.path.basename(path.rstrip("/"))


def changes(spark: SparkSession, source: DeltaSource, log: SourceTable, *, after: int | None,
            upto: int) -> tuple[Changes, list[tuple[dt.date | None, int, int]]]:
    """What commits ``after < version <= upto`` of the source table changed.

    Returns:
        The log's :class:`~fti.store.delta_log.Changes` (``batches``: one per version that added rows), and
        ``(day, version, rows)`` of the rows added (``rows`` > 0) and of the days whose rows a version removed
        or rewrote (``rows`` 0: nothing new, but the day changed).

    Raises:
        FtiError: A removed file that can no longer be read (vacuumed): the days it touched are unknown.
    """
    from pyspark.sql import functions as F

    found = log.changes(source.name, after=after, upto=upto)
    landed: dict[tuple[dt.date | None, int], int] = {}
    if found.files:
        by_name = {_name(p): v for p, v in found.files.items()}
        counts = (_read(spark, log, upto).where(F.col("_metadata.file_name").isin(list(by_name)))
                  .groupBy(source.day().alias("d"), F.col("_metadata.file_name").alias("f")).count().collect())
        for r in counts:
            key = (r["d"], by_name[r["f"]])
            landed[key] = landed.get(key, 0) + r["count"]
    by_version: dict[int, list[str]] = {}
    for path, version in found.removed.items():
        by_version.setdefault(version, []).append(_name(path))
    for version, names in sorted(by_version.items()):
        try:
            gone = (_read(spark, log, version - 1).where(F.col("_metadata.file_name").isin(names))
                    .select(source.day().alias("d")).distinct().collect())
        except Exception as exc:
            raise FtiError(
                f"source {source.name} ({log.home}): version {version} removed or rewrote rows of {len(names)} file(s) "
                f"that can no longer be read at version {version - 1} ({str(exc).splitlines()[0][:160]}): the days "
                "whose features changed are unknown; nothing was written",
                hint="recompute the days the change touched with a backfill (fti features --start DAY --end DAY), "
                     "or all of them; keep the source's VACUUM retention longer than the feature runs' interval") from None
        for r in gone:
            landed.setdefault((r["d"], version), 0)
    batches = {f"{BATCH_PREFIX}{v}": v for v in sorted({v for v in found.files.values()})}
    return Changes(found.files, batches, found.base, None, found.removed), \
        [(d, v, n) for (d, v), n in sorted(landed.items(), key=lambda kv: (kv[0][1], str(kv[0][0])))]


def rows(spark: SparkSession, source: DeltaSource, log: SourceTable, *, version: int, days: set[dt.date],
         files: dict[str, int]) -> DataFrame | None:
    """The rows of ``days`` and the rows of ``files`` (path -> the version that added it, the rows to judge), at
    ``version``, shaped as a raw table's rows for the parser: the source's columns (typed), ``ingested_at`` (the
    file's modification time), ``_source``, ``_batch`` and ``land_day``; ``_raw_version`` is set on the rows of
    ``files``. None when there are none to read."""
    from pyspark.sql import functions as F

    files = {_name(p): v for p, v in files.items()}
    if not days and not files:
        return None
    df = _read(spark, log, version)
    missing = [c for c in source.columns if c not in df.columns]
    if missing:
        raise FtiError(f"source {source.name}: the Delta table {log.home} (version {version}) has no column(s) "
                       f"{', '.join(missing)}", hint=f"the table's columns: {', '.join(df.columns)}; fix the "
                                                   "DeltaSource's columns")
    day = source.day()
    keep = F.lit(False)
    if days:
        keep = keep | day.isin(sorted(days))
    if files:
        keep = keep | F.col("_metadata.file_name").isin(list(files))
    tags = spark.createDataFrame(list(files.items()) or [("", -1)], "_f string, _raw_version bigint")
    out = (df.where(keep)
           .select(*[F.col(f"`{c}`") for c in source.columns], day.alias("land_day"),
                   F.col("_metadata.file_modification_time").alias("ingested_at"),
                   F.col("_metadata.file_name").alias("_f"))
           .join(F.broadcast(tags), "_f", "left")
           .withColumn("_source", F.lit(str(log.home)))
           .withColumn("_batch", F.when(F.col("_raw_version").isNotNull(),
                                        F.concat(F.lit(BATCH_PREFIX), F.col("_raw_version").cast("string"))))
           .drop("_f"))
    return out

