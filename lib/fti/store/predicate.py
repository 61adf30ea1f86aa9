"""Which rows a replace covers: ``column IN (values) AND ...``, as SQL, as a Spark column, and against a
data file's partition values and statistics (to know which files a replace must rewrite)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from pyspark.sql import Column

_MS = dt.timedelta(milliseconds=1)


def sql_literal(value: Any) -> str:
    """A Python value as a Spark SQL literal (strings quoted and escaped, timestamps in UTC)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value} has no time zone")
        return "TIMESTAMP'" + value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"cannot use {value!r} ({type(value).__name__}) in a replace predicate")


def _comparable(stat: Any, value: Any) -> tuple[Any, Any]:
    """Bring a file statistic and a predicate value to one type (dates may come back as datetimes)."""
    if isinstance(value, dt.datetime) and isinstance(stat, dt.datetime):
        return (stat if stat.tzinfo else stat.replace(tzinfo=dt.timezone.utc)), value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime) and isinstance(stat, dt.datetime):
        return stat.date(), value
    if isinstance(value, dt.date) and isinstance(stat, str):
        return dt.date.fromisoformat(stat[:10]), value
    return stat, value


@dataclass(frozen=True)
class Match:
    """Rows where every column takes one of its values: ``{"day": [d1, d2], "source": ["raw_flights"]}``.

    Attributes:
        values: Column -> the values it may take (non-empty).
    """

    values: Mapping[str, tuple[Any, ...]]

    @classmethod
    def of(cls, **columns: Iterable[Any]) -> Match:
        values = {c: tuple(sorted(set(v), key=repr)) for c, v in columns.items()}
        empty = [c for c, v in values.items() if not v]
        if not values or empty:
            raise ValueError(f"a replace needs at least one value per column (none for {empty or 'any column'})")
        return cls(values)

    def sql(self) -> str:
        """The predicate as Spark SQL (``replaceWhere``)."""
        terms = []
        for col, vals in self.values.items():
            in_list = [v for v in vals if v is not None]
            parts = [f"`{col}` IN ({', '.join(sql_literal(v) for v in in_list)})"] if in_list else []
            if len(in_list) != len(vals):
                parts.append(f"`{col}` IS NULL")
            terms.append("(" + " OR ".join(parts) + ")")
        return " AND ".join(terms)

    def column(self) -> Column:
        """The predicate as a Spark column (true exactly for the covered rows, never null)."""
        from pyspark.sql import functions as F

        cond = F.lit(True)
        for col, vals in self.values.items():
            in_list = [v for v in vals if v is not None]
            term = F.col(f"`{col}`").isin(in_list) if in_list else F.lit(False)
            if len(in_list) != len(vals):
                term = term | F.col(f"`{col}`").isNull()
            cond = cond & F.coalesce(term, F.lit(False))
        return cond

    def may_hold(self, file: Mapping[str, Any]) -> bool:
        """Whether a data file (a :meth:`~fti.store.delta_log.DeltaLog.file_actions` entry with stats of
        these columns) can hold covered rows. Unknown statistics mean yes."""
        from fti.store.records import format_partition_value

        for col, vals in self.values.items():
            if col in file["partition"]:
                if file["partition"][col] not in {format_partition_value(v) for v in vals}:
                    return False
                continue
            lo, hi = file["min"].get(col), file["max"].get(col)
            if lo is None or hi is None:
                continue  # no statistics (or only nulls): the file may hold covered rows
            try:
                hit = False
                for v in vals:
                    if v is None:
                        hit = True  # null counts are not checked: assume the file may hold nulls
                        break
                    a, b = _comparable(lo, v)
                    c, _ = _comparable(hi, v)
                    if isinstance(c, dt.datetime):
                        c = c + _MS  # timestamp statistics are truncated to the millisecond
                    if a <= b <= c:
                        hit = True
                        break
            except TypeError:
                hit = True
            if not hit:
                return False
        return True
