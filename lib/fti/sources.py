"""Raw sources: the columns a system's raw data arrives with, landed as text into raw Delta tables.

Raw tables keep every source column as a string exactly as it arrived (``NA`` and empty become null),
plus ``ingested_at`` (the landing clock), ``_source`` (file or generator), ``_batch`` (the landing run's id,
also recorded in the landing commit: how a feature run finds exactly the rows added since its watermark, even
after a compaction rewrote their files) and ``land_day`` (the calendar day the row belongs to, derived from
the row when it parses, else null). Values are parsed by the feature
pipeline, which quarantines the rows that do not parse: landing never loses a row because of a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

RAW_EXTRA = ("ingested_at", "_source", "_batch", "land_day")


@dataclass(frozen=True)
class Source:
    """A raw source of a system.

    Attributes:
        name: Source name; its table is ``<system>/<name>``.
        columns: Source columns, in order.
        description: What the source is.
        day: Column expression (over the text columns) giving the row's calendar day, or None.
        required: Columns that must be present in a landed file (default: all).
    """

    name: str
    columns: tuple[str, ...]
    description: str
    day: Callable[[], Column] | None = None

    def table(self, system: str) -> str:
        return f"{system}/{self.name}"

    def schema(self) -> StructType:
        from pyspark.sql import types as T

        return T.StructType(
            [T.StructField(c, T.StringType(), True) for c in self.columns]
            + [T.StructField("ingested_at", T.TimestampType(), False),
               T.StructField("_source", T.StringType(), False),
               T.StructField("_batch", T.StringType(), False),
               T.StructField("land_day", T.DateType(), True)]
        )

    def to_raw(self, df: DataFrame, *, ingested_at: object, source_label: str, batch: str) -> DataFrame:
        """Shape text columns into the raw table's schema (adds ``ingested_at``, ``_source``, ``_batch``,
        ``land_day``)."""
        from pyspark.sql import functions as F

        cols = [F.when(F.trim(F.col(c)).isin("", "NA"), None).otherwise(F.col(c).cast("string")).alias(c)
                for c in self.columns]
        out = df.select(*cols)
        day = self.day() if self.day else F.lit(None).cast("date")
        return out.select(*self.columns, F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
                          F.lit(source_label).alias("_source"), F.lit(batch).alias("_batch"), day.alias("land_day"))


@dataclass(frozen=True)
class DeltaSource(Source):
    """A source that is an existing Delta table, read in place by its own versions (nothing is copied or landed).

    A feature run reads the rows of the files that commits with ``dataChange=true`` added since its watermark
    (the source table's version); a compaction (``OPTIMIZE``, ``dataChange=false``) adds nothing; a commit that
    removes or rewrites rows (``DELETE``, ``UPDATE``, ``MERGE``, an overwrite) is found in the log, the days of the
    rows it removed are read from the version before it, and those days are recomputed from the current version.
    Rows keep their types (the parser gets them typed, plus ``land_day``, ``ingested_at`` (the data file's
    modification time), ``_source`` and ``_batch``). ``fti forget`` never writes to a user's table: a forgotten
    entity's rows are left out of every run, and stay in the table until its owner deletes them.

    Attributes:
        location: The table: a path or URI (``/data/bronze/events``, ``s3a://lake/bronze/events``), or a name in
            the Spark catalog (``bronze.events``, ``main.bronze.events``).
        day: Required: the calendar day a row belongs to, over the table's columns (``lambda: F.to_date("ts")``):
            what a run recomputes when rows of that day arrive, change or go.

    Example::

        EVENTS = DeltaSource(name="events", location="/lake/bronze/events", columns=("user_id", "ts", "amount"),
                             description="Payments, written by the payments team's job",
                             day=lambda: F.to_date("ts"))
    """

    location: str = ""

    def __post_init__(self) -> None:
        if not self.location:
            raise ValueError(f"DeltaSource {self.name}: a location (a path, URI or catalog name) is required")
        if self.day is None:
            raise ValueError(f"DeltaSource {self.name}: day (the calendar day of a row) is required")
