"""Subprocess helper: append rows to a store table (used by kill and concurrency tests).

Usage: python append_rows.py HOME TABLE TAG N BACKEND
Writes N rows (k = f"{TAG}-{i}") with a local Spark session; FTI_FAULT arms the store's fault points.
"""

from __future__ import annotations

import datetime as dt
import sys

from fti.config import load_config
from fti.spark import get_spark
from fti.store import RunContext, open_store


def main() -> None:
    home, table, tag, n, backend = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    settings = load_config("flights", home=home)
    spark = get_spark(settings, ui=False, extra_conf={"spark.master": "local[1]", "spark.sql.shuffle.partitions": "2"})
    store = open_store(spark, settings, backend=backend)
    rows = [(f"{tag}-{i}", dt.datetime(2013, 1, 1, i % 24), dt.date(2013, 1, 1 + i % 2), float(i)) for i in range(n)]
    df = spark.createDataFrame(rows, store.schema(table))
    result = store.append(table, df, run=RunContext(pipeline=f"proc-{tag}"))
    print(f"committed {result.version}")
    spark.stop()


if __name__ == "__main__":
    main()
