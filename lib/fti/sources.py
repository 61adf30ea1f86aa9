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
