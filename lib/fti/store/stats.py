"""Per-file Delta statistics (numRecords, min, max, nullCount) read from parquet footers on the driver.

Only footers are read, never the data. Timestamps are stored to the millisecond (Delta's stats format):
the minimum is rounded down and the maximum rounded up, so data skipping never drops a matching file.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from typing import Any


from fti.location import Location

_MAX_STRING_STAT = 64


def _format(value: Any, *, upper: bool) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        micros = value.microsecond
        floor = value.replace(microsecond=(micros // 1000) * 1000)
        if upper and micros % 1000:
            floor = floor + dt.timedelta(milliseconds=1)
        return floor.strftime("%Y-%m-%dT%H:%M:%S.") + f"{floor.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return None
    if isinstance(value, str):
        return value if len(value) <= _MAX_STRING_STAT else None
    return value


def parquet_file_stats(path: str | Location) -> tuple[int, str]:
    """Read a parquet footer and build the Delta ``stats`` JSON for it.

    Args:
        path: The parquet file (local, or on the home's object store).

    Returns:
        ``(row_count, stats_json)``.
    """
    meta = Location(path).parquet_metadata()
    schema = meta.schema.to_arrow_schema()
    names = [f.name for f in schema]
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    usable = {n: True for n in names}
    col_index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    for name in names:
        idx = col_index.get(name)
        if idx is None:  # nested column: no top-level stats
            usable[name] = False
            continue
        for rg in range(meta.num_row_groups):
            col = meta.row_group(rg).column(idx)
            st = col.statistics
            if st is None:
                usable[name] = False
                break
            if st.has_null_count:
                nulls[name] = nulls.get(name, 0) + st.null_count
            if not st.has_min_max:
                if meta.row_group(rg).num_rows > (st.null_count or 0):
                    usable[name] = False
                continue
            lo, hi = st.min, st.max
            if name not in mins or lo < mins[name]:
                mins[name] = lo
            if name not in maxs or hi > maxs[name]:
                maxs[name] = hi
    min_values = {}
    max_values = {}
    for name in names:
        if not usable[name] or name not in mins:
            continue
        lo, hi = _format(mins[name], upper=False), _format(maxs[name], upper=True)
        if lo is not None and hi is not None:
            min_values[name] = lo
            max_values[name] = hi
    stats = {"numRecords": meta.num_rows, "minValues": min_values, "maxValues": max_values, "nullCount": nulls}
    return meta.num_rows, json.dumps(stats, separators=(",", ":"))
