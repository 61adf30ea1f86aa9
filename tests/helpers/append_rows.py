"""Subprocess helper: write rows to a store table (used by kill, race and concurrency tests).

Usage: python append_rows.py HOME TABLE TAG N BACKEND [--txn APP_ID:VERSION] [--replace-day YYYY-MM-DD]
                              [--inputs SOURCE=VERSION]
Writes N rows (k = f"{TAG}-{i}") with a local Spark session: appended, or replacing the rows of one day
(every row then falls on that day). FTI_FAULT arms the store's fault points. Prints ``committed V`` or
``skipped V``; on an fti error prints ``error <class>: <message>`` and exits 3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from fti.config import load_config
from fti.errors import FtiError
from fti.spark import get_spark
from fti.store import Match, RunContext, Txn, open_store


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("home", "table", "tag"):
        parser.add_argument(name)
    parser.add_argument("n", type=int)
    parser.add_argument("backend")
    parser.add_argument("--txn")
    parser.add_argument("--replace-day", type=dt.date.fromisoformat)
    parser.add_argument("--inputs", help="SOURCE=VERSION: the raw version the rows were computed from")
    args = parser.parse_args()
    settings = load_config("flights", home=args.home)
    spark = get_spark(settings, ui=False, extra_conf={"spark.master": "local[1]", "spark.sql.shuffle.partitions": "2"})
    store = open_store(spark, settings, backend=args.backend)
    day = args.replace_day
    rows = [(f"{args.tag}-{i}", dt.datetime(2013, 1, 1, i % 24), day or dt.date(2013, 1, 1 + i % 2), float(i))
            for i in range(args.n)]
    df = spark.createDataFrame(rows, store.schema(args.table))
    txn = Txn(args.txn.rsplit(":", 1)[0], int(args.txn.rsplit(":", 1)[1])) if args.txn else None
    run = RunContext(pipeline=f"proc-{args.tag}")
    inputs = dict([args.inputs.split("=")]) if args.inputs else None
    inputs = {k: int(v) for k, v in inputs.items()} if inputs else None
    try:
        if day:
            result = store.replace_where(args.table, df, Match.of(d=[day]), txn=txn, inputs=inputs, run=run)
        else:
            result = store.append(args.table, df, txn=txn, inputs=inputs, run=run)
    except FtiError as err:
        print(f"error {type(err).__name__}: {err}")
        return 3
    print(f"{'skipped' if result.skipped else 'committed'} {result.version}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
