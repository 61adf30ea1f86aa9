"""Declared trailing-window aggregations: a feature group written as data, incremental by construction.

A group declares ``Aggregation(column, function, windows)`` items over ONE source, per entity key. fti compiles them
into the three functions a trailing-window group needs (see :class:`fti.features.definitions.FeatureGroup`):

* ``daily``: per (keys, ``day``) partial aggregates of every aggregation (counts, sums, extremes, the latest value
  with its time, mergeable HLL sketches, per-day moments), kept in the group's state table;
* ``combine``: the features from partials over each trailing window of calendar days (the day itself and the
  ``window - 1`` days before it), on the days the key has rows;
* ``transform``: ``combine(daily(inputs))``, the recompute from raw.

So a run recomputes the partials of the days whose raw rows changed and combines them with the stored ones; users
write no partial or combine step. ``event_time`` (when a row's values became KNOWN) is the latest ``time_column`` of
the rows the LONGEST window covers, as for a hand-written trailing group.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "variance", "last", "count_distinct")
COUNTS = ("count", "count_distinct")
HLL_LG_K = 12  # the HLL sketches' size (4096 buckets, about 1.6% relative error; exact for small cardinalities)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def window_days(window: str | int) -> int:
    """``"7d"`` (or ``7``) -> 7: trailing windows are whole calendar days (the state's unit).

    Raises:
        ValueError: Not a positive whole number of days.
    """
    text = str(window).strip().lower()
    match = re.fullmatch(r"(\d+)\s*(d|days?)?", text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"window {window!r}: a trailing window is a whole number of days such as '1d', '7d', '28d'")
    return int(match.group(1))


@dataclass(frozen=True)
class Aggregation:
    """One declared aggregation of a source column over trailing windows, per entity.

    Attributes:
        column: The column (or a Spark SQL expression over the source's parsed columns) aggregated; None with
            ``count`` counts rows.
        function: One of ``count`` (non-null values), ``sum``, ``mean``, ``min``, ``max``, ``stddev`` and
            ``variance`` (sample), ``last`` (the value of the latest row by the group's ``time_column``; ties: the
            largest value), ``count_distinct`` (approximate: HLL sketches, mergeable across days).
        windows: Trailing windows in days: ``"7d"`` or ``("1d", "7d", "28d")``; one feature per window.
        name: The feature's name, a template with ``{window}`` (``7d``) and ``{bucket}``; default
            ``{function}_{column}_{window}`` (``_{bucket}`` appended when bucketed).
        where: Only rows where this Spark SQL condition holds count.
        bucket_by: A column whose values split the aggregation: one feature per value in ``buckets`` (rows
            where ``bucket_by = value``).
        buckets: The values of ``bucket_by`` that get a feature.
        type: The feature's Spark SQL type (default ``bigint`` for the counts, ``double`` otherwise).
        description: What the feature means (a template like ``name``); default from the declaration.
        min: Lowest plausible value (validation), if any (counts: 0).
        max: Highest plausible value (validation), if any.
    """

    column: str | None
    function: str
    windows: tuple[str, ...] | str = ("1d",)
    name: str | None = None
    where: str | None = None
    bucket_by: str | None = None
    buckets: tuple[Any, ...] = ()
    type: str | None = None
    description: str = ""
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        windows = (self.windows,) if isinstance(self.windows, (str, int)) else tuple(self.windows)
        object.__setattr__(self, "windows", tuple(f"{window_days(w)}d" for w in windows))
        object.__setattr__(self, "buckets", tuple(self.buckets))
        what = f"aggregation {self.function}({self.column or '*'})"
        if self.function not in FUNCTIONS:
            raise ValueError(f"{what}: unknown function; use one of {', '.join(FUNCTIONS)}")
        if self.column is None and self.function != "count":
            raise ValueError(f"{what}: only count may leave the column out (it counts rows)")
        if not self.windows:
            raise ValueError(f"{what}: give at least one window such as '7d'")
        if bool(self.bucket_by) != bool(self.buckets):
            raise ValueError(f"{what}: bucket_by and buckets go together (the column and the values that get a feature)")
        if self.name is None and self.column is not None and not _NAME.match(self.column):
            raise ValueError(f"{what}: an expression needs a name template such as 'late_share_{{window}}'")
        if self.name is not None and "{window}" not in self.name and len(self.windows) > 1:
            raise ValueError(f"{what}: the name {self.name!r} needs {{window}} to tell its {len(self.windows)} "
                             "windows apart")
        if self.name is not None and self.buckets and "{bucket}" not in self.name:
            raise ValueError(f"{what}: the name {self.name!r} needs {{bucket}} to tell its buckets apart")

    @property
    def feature_type(self) -> str:
        return self.type or ("bigint" if self.function in COUNTS else "double")

    def outputs(self) -> list[tuple[str, Any, str, int]]:
        """``(feature name, bucket value or None, description, window days)`` of every feature, window-major within
        a bucket."""
        out = []
        for bucket in self.buckets or (None,):
            for window in self.windows:
                default = f"{self.function}_{self.column or 'rows'}_{{window}}" + ("_{bucket}" if bucket is not None else "")
                fmt = {"window": window, "bucket": bucket}
                name = (self.name or default).format(**fmt)
                if not _NAME.match(name):
                    raise ValueError(f"aggregation {self.function}({self.column or '*'}): {name!r} is not a column name")
                described = (self.description.format(**fmt) if self.description else
                             f"{self.function} of {self.column or 'rows'} over {window}"
                             + (f" where {self.where}" if self.where else "")
                             + (f" ({self.bucket_by} = {bucket})" if bucket is not None else ""))
                out.append((name, bucket, described, window_days(window)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "function": self.function, "windows": list(self.windows), "name": self.name,
                "where": self.where, "bucket_by": self.bucket_by, "buckets": list(self.buckets), "type": self.type}


@dataclass(frozen=True)
class _Unit:
    """One aggregation of one bucket: the partial columns it keeps per day (named ``_a<digest>_...``)."""

    agg: Aggregation
    bucket: Any
    features: list[tuple[str, int]] = field(default_factory=list)  # (feature name, window days)

    def prefix(self) -> str:
        """Named by what it aggregates (not its place in the declaration): a state rebuilt for a changed
        declaration adds the new aggregations' columns and never retypes a column of the old one."""
        what = json.dumps([self.agg.to_dict(), self.bucket], sort_keys=True, default=str)
        return "_a" + hashlib.sha256(what.encode()).hexdigest()[:10]

    def value(self) -> Column:
        """The aggregated value, null where the row does not count (``where``, the bucket)."""
        from pyspark.sql import functions as F

        agg = self.agg
        value = F.lit(1) if agg.column is None else F.expr(agg.column)
        conditions = ([F.expr(agg.where)] if agg.where else []) + (
            [F.col(agg.bucket_by) == F.lit(self.bucket)] if agg.bucket_by else [])
        for condition in conditions:
            value = F.when(condition, value)
        return value

    def partials(self, time_column: str) -> list[Column]:
        from pyspark.sql import functions as F

        x, p, fn = self.value(), self.prefix(), self.agg.function
        if fn == "count":
            return [F.count(x).alias(f"{p}_n")]
        if fn == "sum":
            return [F.sum(x).alias(f"{p}_s")]
        if fn == "mean":
            return [F.sum(x).alias(f"{p}_s"), F.count(x).alias(f"{p}_n")]
        if fn in ("min", "max"):
            return [getattr(F, fn)(x).alias(f"{p}_{fn}")]
        if fn in ("stddev", "variance"):  # per-day moments, merged over the window with Chan's formula
            xd = x.cast("double")
            return [F.count(xd).alias(f"{p}_n"), F.avg(xd).alias(f"{p}_mean"),
                    (F.var_pop(xd) * F.count(xd)).alias(f"{p}_m2")]
        if fn == "last":
            latest = F.when(x.isNotNull(), F.struct(F.col(time_column).alias("t"), x.alias("v")))
            return [F.max(latest).alias(f"{p}_last")]
        # count_distinct: a mergeable HLL sketch of the day's values
        return [F.hll_sketch_agg(F.when(x.isNotNull(), x.cast("string")), HLL_LG_K).alias(f"{p}_hll")]

    def combined(self, col: Callable[[str], Column], over: Callable[[Column], Column]) -> Column:
        """The feature over one trailing window: ``col(name)`` is a partial column as the window sees it, ``over``
        makes an aggregate of those the window's value (a window function, or the aggregate of a group)."""
        from pyspark.sql import functions as F

        p, fn = self.prefix(), self.agg.function
        if fn == "count":
            return over(F.sum(col(f"{p}_n")))
        if fn == "sum":
            return over(F.sum(col(f"{p}_s")))
        if fn == "mean":
            n = over(F.sum(col(f"{p}_n")))
            return F.when(n > 0, over(F.sum(col(f"{p}_s"))).cast("double") / n)
        if fn in ("min", "max"):
            return over(getattr(F, fn)(col(f"{p}_{fn}")))
        if fn in ("stddev", "variance"):
            # merged in day order: the same bits whichever order the rows arrive in (a join's groups have none)
            days = F.array_sort(over(F.collect_list(F.when(col(f"{p}_n") > 0, F.struct(
                col("_daynum").alias("d"), col(f"{p}_n").alias("n"), col(f"{p}_mean").alias("mean"),
                col(f"{p}_m2").alias("m2"))))))
            start = F.struct(F.lit(0).cast("bigint").alias("n"), F.lit(0.0).alias("mean"), F.lit(0.0).alias("m2"))

            def merge(acc: Column, day: Column) -> Column:
                n = acc["n"] + day["n"]
                delta = day["mean"] - acc["mean"]
                return F.struct(n.alias("n"), (acc["mean"] + delta * day["n"] / n).alias("mean"),
                                (acc["m2"] + day["m2"] + delta * delta * acc["n"] * day["n"] / n).alias("m2"))

            total = F.aggregate(days, start, merge)
            variance = F.when(total["n"] > 1, total["m2"] / (total["n"] - 1))
            return variance if fn == "variance" else F.sqrt(variance)
        if fn == "last":
            return over(F.max(col(f"{p}_last")))["v"]
        return F.hll_sketch_estimate(over(F.hll_union_agg(col(f"{p}_hll"))))


def _units(aggregations: Sequence[Aggregation]) -> list[_Unit]:
    units = []
    for agg in aggregations:
        by_bucket: dict[Any, _Unit] = {}
        for name, bucket, _, days in agg.outputs():
            if bucket not in by_bucket:
                by_bucket[bucket] = _Unit(agg, bucket)
                units.append(by_bucket[bucket])
            by_bucket[bucket].features.append((name, days))
    return units


@dataclass(frozen=True)
class Compiled:
    """What a declaration compiles to: the group's features, look-back and its three functions."""

    features: list[tuple[str, str, str, float | None, float | None]]  # name, type, description, min, max
    lookback_days: int
    daily: Callable[..., DataFrame]
    combine: Callable[..., DataFrame]
    transform: Callable[..., DataFrame]


def compile_aggregations(*, group: str, keys: Sequence[str], source: str, aggregations: Sequence[Aggregation],
                         time_column: str, where: str | None) -> Compiled:
    """Compile a group's declared aggregations (see the module's docstring).

    Raises:
        ValueError: Two features of the same name.
    """
    units = _units(aggregations)
    features: list[tuple[str, str, str, float | None, float | None]] = []
    for agg in aggregations:
        for name, _, described, _ in agg.outputs():
            low = agg.min if agg.min is not None else (0 if agg.function in COUNTS else None)
            features.append((name, agg.feature_type, described, low, agg.max))
    names = [f[0] for f in features]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"feature group {group}: the aggregations name {', '.join(repeated)} more than once; give "
                         "them distinct name templates")
    types = {f[0]: f[1] for f in features}
    lookback = max(days for unit in units for _, days in unit.features)
    keys = list(keys)

    def daily(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
        """Per key and day: each aggregation's partials and ``_known`` (the latest time a row became known)."""
        from pyspark.sql import functions as F

        rows = inputs[source].where(F.col(time_column).isNotNull())
        if where:
            rows = rows.where(F.expr(where))
        partials = [c for unit in units for c in unit.partials(time_column)]
        return rows.groupBy(*keys, "day").agg(F.max(time_column).alias("_known"), *partials)

    def combine(partials: DataFrame, *, days: Sequence[Any] | None = None, **_: object) -> DataFrame:
        """The features over each trailing window from :func:`daily` rows, on the days a key has rows (only on
        ``days`` when given: then each of those rows aggregates the partials its windows cover, so the cost is
        the rows written times the window, not every partial read times the window)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        partials = partials.withColumn("_daynum", F.datediff(F.col("day"), F.lit("1970-01-01").cast("date")))
        if days is None:
            def trailing(n: int) -> Any:
                return Window.partitionBy(*keys).orderBy("_daynum").rangeBetween(-(n - 1), 0)

            out = {name: unit.combined(F.col, lambda agg, n=n: agg.over(trailing(n))).cast(types[name]).alias(name)
                   for unit in units for name, n in unit.features}
            return partials.select(*keys, "day", F.max("_known").over(trailing(lookback)).alias("event_time"),
                                   *[out[name] for name in names])
        targets = partials.where(F.col("day").isin(list(days))).select(
            *[F.col(k).alias(f"_t{i}") for i, k in enumerate(keys)], F.col("day").alias("_tday"),
            F.col("_daynum").alias("_tnum"))
        on = [targets[f"_t{i}"].eqNullSafe(partials[k]) for i, k in enumerate(keys)] + [
            partials["_daynum"].between(targets["_tnum"] - (lookback - 1), targets["_tnum"])]
        joined = targets.join(partials, on).withColumn("_age", F.col("_tnum") - F.col("_daynum"))

        def within(n: int) -> Callable[[str], Column]:
            return lambda name: F.when(F.col("_age") < n, F.col(name))

        out = {name: unit.combined(within(n), lambda agg: agg).cast(types[name]).alias(name)
               for unit in units for name, n in unit.features}
        grouped = joined.groupBy(*[f"_t{i}" for i in range(len(keys))], "_tday").agg(
            F.max("_known").alias("event_time"), *[out[name] for name in names])
        return grouped.select(*[F.col(f"_t{i}").alias(k) for i, k in enumerate(keys)], F.col("_tday").alias("day"),
                              "event_time", *names)

    def transform(inputs: dict[str, DataFrame], **context: object) -> DataFrame:
        """The group's rows recomputed from raw: the partials of every day, combined."""
        return combine(daily(inputs, **context), **context)

    for fn in (daily, combine, transform):
        fn.fti_declared = True  # type: ignore[attr-defined]  # a copy of the group (dataclasses.replace) recompiles
    return Compiled(features, lookback, daily, combine, transform)


def describe(aggregations: Sequence[Aggregation], *, time_column: str, where: str | None) -> dict[str, Any]:
    """The declaration as stored in the group's definition (a changed declaration rebuilds the state)."""
    return {"aggregations": [a.to_dict() for a in aggregations], "time_column": time_column, "where": where,
            "hll_lg_k": HLL_LG_K}

