"""The small table the store tests write: a key, a timestamp, a day (the replace column) and a value."""

from __future__ import annotations

from pyspark.sql import types as T

SCHEMA = T.StructType([
    T.StructField("k", T.StringType(), False),
    T.StructField("ts", T.TimestampType(), True),
    T.StructField("d", T.DateType(), True),
    T.StructField("v", T.DoubleType(), True),
])
