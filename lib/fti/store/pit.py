"""The point-in-time join: for each spine row and each feature group, the feature ROW with the same keys
and the greatest ``event_time <= spine time`` (optionally within a TTL and a bi-temporal cutoff).

Two algorithms, the same answer (both property-tested against pandas ``merge_asof`` on the same data):

``cogroup`` (default): ONE shuffle per key set.
    The spine and the rows of every group that joins on the same spine columns are hash-bucketed on the keys
    alike; ``cogroup(...).applyInArrow`` hands each bucket's spine rows and feature rows to a vectorized as-of
    merge (:mod:`fti.store.asof`: factorized keys, dense time ranks, one ``searchsorted``, TTL mask, ``take``)
    that returns the spine rows with their feature columns: no row id, no join back. Groups with other keys
    are a further pass on the enriched spine. Skew: a key with more than ``split_rows`` feature rows (found by
    one aggregate over the key and time columns, skipped when the Delta log's row counts say no key can be
    that big) is split into time ranges, each its own merge call, SEEDED with the winner of every earlier
    range (an exact carry: the greatest ``(event_time, ingested_at)`` available before the range starts). One
    merge call then holds about ``split_rows`` feature rows of a hot key, or a hash bucket's share
    (all rows / buckets) of the others, plus its spine rows.

``window`` (the pure-JVM fallback, ``pit.algorithm: window``):
    spine rows get a row id; feature rows become ONE struct ``(event_time, ingested_at, features...)`` (so a
    matched row's own nulls stay null); spine and feature rows are unioned on the keys and an ordering time
    (``greatest(event_time, ingested_at)`` with the bi-temporal cutoff; feature rows first at equal times);
    time is cut into buckets and a running ``max(struct)`` per (keys, bucket), carried into later buckets with
    a window over the small (keys, bucket) table, gives each spine row its row; results join back on the id.

Both: the TTL drops a match older than ``spine time - ttl`` (inclusive bound); a spine row with a null key
matches nothing; every spine row comes out exactly once (duplicates kept).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import FtiError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


log = logging.getLogger(__name__)

_MAX_HOT_KEYS = 256  # keys split by time in one key set (the rest stay in their hash bucket)
_MAX_RANGES = 64  # time ranges of one hot key


@dataclass(frozen=True)
class GroupJoin:
    """One feature group to join onto the spine.

    Attributes:
        name: Group name (for the report and error messages).
        rows: The group's rows (at a pinned version): keys, ``event_time``, ``ingested_at``, features.
        keys: Spine column -> group key column.
        columns: Output column -> group feature column.
        ttl: Maximum age of a matched row at the spine time (None: no limit).
        event_time: The group's event-time column.
        row_count: The group's row count if known (from the Delta log): a key set with no more rows than
            ``split_rows`` in all needs no hot-key scan.
        until: The column of ``rows`` saying when a row was replaced (history rows of a bi-temporal read; null
            for current rows): a replaced row is a candidate only while it was current.
    """

    name: str
    rows: DataFrame
    keys: Mapping[str, str]
    columns: Mapping[str, str]
    ttl: dt.timedelta | None = None
    event_time: str = "event_time"
    row_count: int | None = None
    until: str | None = None


# the column of a bi-temporal read's history rows that says when a recompute replaced them (null: current row)
UNTIL = "_until"


@dataclass
class PitResult:
    """The joined DataFrame (spine columns + features) and the per-group statistics columns it carries.

    ``report()`` computes the leakage report (one Spark job) and ``frame`` is the result without helpers.
    """

    joined: DataFrame
    groups: list[str]
    spine_time: str
    bitemporal: bool
    helper_columns: list[str] = field(default_factory=list)

    @property
    def frame(self) -> DataFrame:
        return self.joined.drop(*self.helper_columns)

    def report(self) -> dict[str, dict[str, Any]]:
        """Per group: share of spine rows matched, median and max feature age (s), rows excluded by the TTL
        and by the bi-temporal cutoff."""
        from pyspark.sql import functions as F

        aggs = [F.count(F.lit(1)).alias("_n")]
        for i, _ in enumerate(self.groups):
            aggs += [F.sum(F.col(f"_m{i}").cast("long")).alias(f"m{i}"),
                     F.percentile_approx(F.col(f"_age{i}"), 0.5, 10000).alias(f"med{i}"),
                     F.max(F.col(f"_age{i}")).alias(f"max{i}"),
                     F.sum(F.col(f"_ttlx{i}").cast("long")).alias(f"ttl{i}"),
                     F.sum(F.col(f"_btx{i}").cast("long")).alias(f"bt{i}")]
        row = self.joined.agg(*aggs).collect()[0]
        n = row["_n"] or 0
        out = {}
        for i, name in enumerate(self.groups):
            out[name] = {
                "matched": round((row[f"m{i}"] or 0) / n, 6) if n else 0.0,
                "median_age_s": None if row[f"med{i}"] is None else int(row[f"med{i}"]),
                "max_age_s": None if row[f"max{i}"] is None else int(row[f"max{i}"]),
                "ttl_excluded": int(row[f"ttl{i}"] or 0),
                "bitemporal_excluded": int(row[f"bt{i}"] or 0),
            }
        return out


def _asof_struct(spine: DataFrame, join: GroupJoin, spine_time: str, *, bitemporal: bool,
                 bucket_seconds: int) -> DataFrame:
    """``_sid`` -> the matched feature struct ``_row`` (or null) for one group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spine_keys = list(join.keys)
    group_keys = [join.keys[k] for k in spine_keys]
    knames = [f"_k{i}" for i in range(len(spine_keys))]
    fields = [F.col(join.event_time).alias("event_time"), F.col("ingested_at").alias("ingested_at")]
    fields += [F.col(f"`{src}`").alias(f"_f{j}") for j, src in enumerate(join.columns.values())]
    feat_time = F.greatest(F.col(join.event_time), F.col("ingested_at")) if bitemporal else F.col(join.event_time)
    current, replaced = join.rows, None
    if join.until:  # history rows: candidates only while current (bi-temporal), never in a plain read
        current = join.rows.where(F.col(f"`{join.until}`").isNull())
        replaced = join.rows.where(F.col(f"`{join.until}`").isNotNull()) if bitemporal else None
    feats = current.select(*[F.col(f"`{g}`").alias(k) for g, k in zip(group_keys, knames)],
                             feat_time.alias("_ts"), F.lit(0).alias("_kind"), F.lit(None).cast("long").alias("_sid"),
                             F.struct(*fields).alias("_row"))
    not_null = F.lit(True)
    for k in spine_keys:
        not_null = not_null & F.col(f"`{k}`").isNotNull()
    spines = spine.where(not_null).select(*[F.col(f"`{s}`").alias(k) for s, k in zip(spine_keys, knames)],
                                          F.col(f"`{spine_time}`").alias("_ts"), F.lit(1).alias("_kind"), "_sid",
                                          F.lit(None).cast(feats.schema["_row"].dataType).alias("_row"))
    union = feats.unionByName(spines).withColumn("_b", F.floor(F.unix_micros("_ts") / (bucket_seconds * 1_000_000)))
    inside = Window.partitionBy(*knames, "_b").orderBy("_ts", "_kind").rowsBetween(Window.unboundedPreceding, 0)
    union = union.withColumn("_run", F.max("_row").over(inside))
    per_bucket = union.groupBy(*knames, "_b").agg(F.max("_row").alias("_bmax"))
    earlier = Window.partitionBy(*knames).orderBy("_b").rowsBetween(Window.unboundedPreceding, -1)
    per_bucket = per_bucket.select(*knames, "_b", F.max("_bmax").over(earlier).alias("_prev"))
    matched = (union.where(F.col("_kind") == 1).join(per_bucket, [*knames, "_b"], "left")
               .select("_sid", F.greatest("_run", "_prev").alias("_row")))
    if replaced is not None:  # each replaced row for the spine rows of its key inside [available, replaced_at)
        old = replaced.select(*[F.col(f"`{g}`").alias(k) for g, k in zip(group_keys, knames)],
                              feat_time.alias("_avail"), F.col(f"`{join.until}`").alias("_until"),
                              F.struct(*fields).alias("_old"))
        known = (spines.select(*knames, "_ts", "_sid").join(old, knames)
                 .where((F.col("_avail") <= F.col("_ts")) & (F.col("_ts") < F.col("_until")))
                 .groupBy("_sid").agg(F.max("_old").alias("_old")))
        matched = matched.join(known, "_sid", "left").select("_sid", F.greatest("_row", "_old").alias("_row"))
    return matched


def point_in_time_join(spine: DataFrame, joins: Sequence[GroupJoin], *, spine_time: str, bitemporal: bool = False,
                       algorithm: str = "cogroup", buckets: int | None = None, split_rows: int | None = None,
                       bucket: dt.timedelta = dt.timedelta(days=7)) -> PitResult:
    """Join the feature groups onto the spine as of each spine row's time.

    Args:
        spine: Spine rows: join keys, the prediction time, label and any other columns (kept as they are,
            duplicates included).
        joins: Feature groups with their key and column mappings and TTLs.
        spine_time: The spine's time column (the prediction time).
        bitemporal: Only rows with ``ingested_at <= spine time`` are candidates.
        algorithm: ``cogroup`` (default: one shuffle per key set, a vectorized merge per hash bucket) or
            ``window`` (the pure-JVM union + running-max fallback).
        buckets: Hash buckets of the co-grouped join (default: the session's shuffle partitions).
        split_rows: Co-grouped join: a key with more feature rows than this (in one key set) is split by time
            into ranges of about this many rows, each its own merge call seeded with the winner before it, so
            that no call holds a hot key's whole timeline (None: no split, no hot-key scan).
        bucket: Time-bucket length of the window join (an entity's timeline split over tasks).

    Returns:
        The joined rows (exactly one per spine row) with the report's helper columns.

    Raises:
        FtiError: Missing key or feature columns, or output columns that collide.
    """
    from pyspark.sql import functions as F

    taken = {c: "the spine" for c in spine.columns}
    for join in joins:
        missing = [c for c in list(join.keys.values()) + list(join.columns.values()) + [join.event_time, "ingested_at"]
                   if c not in join.rows.columns]
        missing += [c for c in join.keys if c not in spine.columns]
        if missing:
            raise FtiError(f"point-in-time join of group {join.name}: column(s) {', '.join(sorted(set(missing)))} missing")
        for out in join.columns:
            if out in taken:
                raise FtiError(
                    f"output column '{out}' of group {join.name} collides with {taken[out]}",
                    hint="give the group a prefix in the feature view (prefix: carrier_)",
                )
            taken[out] = f"group {next(j.name for j in joins if out in j.columns)}"
    if algorithm == "cogroup":
        result = spine
        for keys, indices in _key_sets(joins):
            result = _cogroup_pass(result, joins, indices, keys, spine_time=spine_time, bitemporal=bitemporal,
                                   buckets=buckets or int(spine.sparkSession.conf.get("spark.sql.shuffle.partitions")),
                                   split_rows=split_rows)
        helpers = [f"_{h}{i}" for i in range(len(joins)) for h in ("m", "age", "ttlx", "btx")]
        return PitResult(joined=result, groups=[j.name for j in joins], spine_time=spine_time,
                         bitemporal=bitemporal, helper_columns=helpers)
    if algorithm != "window":
        raise ValueError(f"pit algorithm must be cogroup or window, not {algorithm!r}")
    with_id = spine.withColumn("_sid", F.monotonically_increasing_id())
    time_us = F.unix_micros(F.col(f"`{spine_time}`"))
    result = with_id
    helpers = ["_sid"]
    for i, join in enumerate(joins):
        bucket_s = int(bucket.total_seconds())
        row = _asof_struct(with_id, join, spine_time, bitemporal=bitemporal, bucket_seconds=bucket_s)
        row = row.withColumnRenamed("_row", f"_r{i}")
        if bitemporal:
            plain = _asof_struct(with_id, join, spine_time, bitemporal=False, bucket_seconds=bucket_s)
            row = row.join(plain.withColumnRenamed("_row", f"_p{i}"), "_sid", "left")
        result = result.join(row, "_sid", "left")
        struct = F.col(f"_r{i}")
        age = (time_us - F.unix_micros(struct["event_time"])) / 1_000_000
        if join.ttl is not None:
            fresh = age <= join.ttl.total_seconds()
            result = result.withColumn(f"_ttlx{i}", struct.isNotNull() & ~fresh)
            result = result.withColumn(f"_r{i}", F.when(fresh, struct))
        else:
            result = result.withColumn(f"_ttlx{i}", F.lit(False))
        struct = F.col(f"_r{i}")
        if bitemporal:
            plain_struct = F.col(f"_p{i}")
            plain_age = (time_us - F.unix_micros(plain_struct["event_time"])) / 1_000_000
            plain_ok = plain_struct.isNotNull() & (plain_age <= join.ttl.total_seconds() if join.ttl else F.lit(True))
            differs = struct.isNull() | (struct["event_time"] < plain_struct["event_time"])
            result = result.withColumn(f"_btx{i}", plain_ok & differs).drop(f"_p{i}")
        else:
            result = result.withColumn(f"_btx{i}", F.lit(False))
        result = result.withColumn(f"_m{i}", struct.isNotNull())
        result = result.withColumn(f"_age{i}", (time_us - F.unix_micros(struct["event_time"])) / 1_000_000)
        for j, out in enumerate(join.columns):
            result = result.withColumn(out, struct[f"_f{j}"])
        result = result.drop(f"_r{i}")
        helpers += [f"_m{i}", f"_age{i}", f"_ttlx{i}", f"_btx{i}"]
    return PitResult(joined=result, groups=[j.name for j in joins], spine_time=spine_time, bitemporal=bitemporal,
                     helper_columns=helpers)


def leaky_same_day_join(spine: DataFrame, joins: Sequence[GroupJoin], *, spine_time: str, day_column: str = "day") -> DataFrame:
    """A deliberately WRONG join (equality on the calendar day), used only to show what leakage looks like."""
    from pyspark.sql import functions as F

    out = spine
    for join in joins:
        rows = join.rows
        picked = rows.select(*[F.col(f"`{g}`").alias(f"_lk_{g}") for g in join.keys.values()],
                             F.col(day_column).alias("_lk_day"),
                             *[F.col(f"`{src}`").alias(o) for o, src in join.columns.items()])
        picked = picked.dropDuplicates([f"_lk_{g}" for g in join.keys.values()] + ["_lk_day"])
        cond = [out[s] == picked[f"_lk_{g}"] for s, g in join.keys.items()] + [out[day_column] == picked["_lk_day"]]
        out = out.join(picked, cond, "left").drop(*[c for c in picked.columns if c.startswith("_lk_")])
    return out


def _key_sets(joins: Sequence[GroupJoin]) -> list[tuple[tuple[str, ...], list[int]]]:
    """Groups by the spine columns they join on (in first-seen order): one co-grouped pass per key set."""
    sets: dict[tuple[str, ...], list[int]] = {}
    for i, join in enumerate(joins):
        sets.setdefault(tuple(sorted(join.keys)), []).append(i)
    return list(sets.items())


def _cogroup_pass(spine: DataFrame, joins: Sequence[GroupJoin], indices: Sequence[int], keys: Sequence[str], *,
                  spine_time: str, bitemporal: bool, buckets: int, split_rows: int | None) -> DataFrame:
    """One shuffle for a key set: spine and the groups' rows hash-bucketed alike, merged per bucket in Arrow."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, StructField, StructType

    from fti.store.asof import asof_merge

    knames = [f"_k{j}" for j in range(len(keys))]
    key_types = {k: spine.schema[k].dataType for k in keys}
    feats = None
    specs = []
    out_fields = [f for f in spine.schema.fields]
    for gi in indices:
        join = joins[gi]
        cols = {f"_c{gi}_{j}": src for j, src in enumerate(join.columns.values())}
        until = F.col(f"`{join.until}`") if join.until else F.lit(None)
        rows = join.rows.select(*[F.col(f"`{join.keys[k]}`").cast(key_types[k]).alias(kn) for k, kn in zip(keys, knames)],
                                F.col(f"`{join.event_time}`").alias("_et"), F.col("ingested_at").alias("_ia"),
                                until.cast("timestamp").alias("_ut"),
                                *[F.col(f"`{src}`").alias(c) for c, src in cols.items()], F.lit(gi).alias("_g"))
        feats = rows if feats is None else feats.unionByName(rows, allowMissingColumns=True)
        specs.append({"g": gi, "columns": dict(zip(join.columns, cols)),
                      "ttl": None if join.ttl is None else int(join.ttl.total_seconds() * 1_000_000)})
        for out, c in zip(join.columns, cols):
            out_fields.append(StructField(out, rows.schema[c].dataType, True))
        out_fields += [StructField(f"_m{gi}", BooleanType(), False), StructField(f"_age{gi}", DoubleType(), True),
                       StructField(f"_ttlx{gi}", BooleanType(), False), StructField(f"_btx{gi}", BooleanType(), False)]
    rows = [joins[gi].row_count for gi in indices]
    if any(joins[gi].until for gi in indices):  # a replaced row's interval may span split ranges: no split
        split_rows = None
    hot = [] if split_rows is None or (None not in rows and sum(rows) <= split_rows) else \
        _hot_keys(feats, knames, bitemporal=bitemporal, split_rows=split_rows, buckets=buckets)
    left = spine.withColumn("_b", _bucket_of(hot, [F.col(f"`{k}`") for k in keys], F.col(f"`{spine_time}`"),
                                             buckets))
    right = _split_features(feats, hot, knames, bitemporal=bitemporal, buckets=buckets)
    schema = StructType(out_fields)
    spine_cols = spine.columns

    def merge(spine_rows, feature_rows):  # runs on the executors, once per bucket
        import pyarrow.compute as pc

        out = spine_rows.select(spine_cols)
        for spec in specs:
            group_rows = feature_rows.filter(pc.equal(feature_rows.column("_g"), spec["g"])) \
                if feature_rows.num_rows else feature_rows
            out = asof_merge(out, group_rows, spine_keys=list(keys), feature_keys=knames, spine_time=spine_time,
                             event_time="_et", ingested_at="_ia", columns=spec["columns"],
                             ttl_micros=spec["ttl"], bitemporal=bitemporal, report_index=spec["g"], until="_ut")
        return out

    return left.groupBy("_b").cogroup(right.groupBy("_b")).applyInArrow(merge, schema=schema)


@dataclass(frozen=True)
class HotKey:
    """A key whose feature rows are split over ``len(bounds) + 1`` time ranges, each its own merge call.

    Range ``j`` holds the spine rows with ``bounds[j-1] <= time < bounds[j]`` and the feature rows that
    became available in it, plus, as its SEED, each earlier range's winner (the row with the greatest
    ``(event_time, ingested_at)`` available before the range starts): exactly the rows the merge needs.
    """

    values: tuple[Any, ...]
    rows: int
    bounds: tuple[int, ...]  # range starts in unix microseconds, ascending
    first_bucket: int


def _hot_keys(feats: DataFrame, knames: Sequence[str], *, bitemporal: bool, split_rows: int,
              buckets: int) -> list[HotKey]:
    """Keys with more than ``split_rows`` feature rows (one aggregate job over the key columns; the time span of
    the keys it finds is a second, filtered one), each split into equal time ranges of about ``split_rows``
    rows (exact for evenly spread rows; else a range holds the key's busiest stretch), numbered after the
    ``buckets`` hash buckets."""
    from pyspark.sql import functions as F

    not_null = F.col(knames[0]).isNotNull() if len(knames) == 1 else \
        F.expr(" AND ".join(f"{k} IS NOT NULL" for k in knames))
    counts = (feats.where(not_null).groupBy(*knames).agg(F.count(F.lit(1)).alias("n"))  # the key column only
              .where(F.col("n") > split_rows).orderBy(F.desc("n")).limit(_MAX_HOT_KEYS).collect())
    if not counts:
        return []
    key_cols = [F.col(k) for k in knames]
    hot_rows = None
    for row in counts:
        cond = _is_key(tuple(row[k] for k in knames), key_cols)
        hot_rows = cond if hot_rows is None else hot_rows | cond
    avail = F.greatest("_et", "_ia") if bitemporal else F.col("_et")
    found = (feats.where(hot_rows).groupBy(*knames)
             .agg(F.count(F.lit(1)).alias("n"), F.min(F.unix_micros("_et")).alias("lo"),
                  F.max(F.unix_micros(avail)).alias("hi"))
             .orderBy(F.desc("n")).collect())
    hot, offset = [], buckets
    for row in found:
        ranges = max(1, min(-(-row["n"] // split_rows), _MAX_RANGES))
        width = (row["hi"] - row["lo"]) / ranges
        bounds = tuple(sorted({int(row["lo"] + width * j) for j in range(1, ranges)}))
        if bounds:
            hot.append(HotKey(values=tuple(row[k] for k in knames), rows=row["n"], bounds=bounds, first_bucket=offset))
            offset += len(bounds) + 1
    if hot:
        log.info("point-in-time join: %d hot key(s) split by time (%s)", len(hot),
                 ", ".join(f"{h.values}: {h.rows} rows, {len(h.bounds) + 1} ranges" for h in hot[:5]))
    return hot


def _range_of(bounds: Sequence[int], micros):
    """The time range index of a unix-microsecond column: the number of range starts at or before it."""
    from pyspark.sql import functions as F

    return sum((micros >= F.lit(b)).cast("int") for b in bounds)


def _bucket_of(hot: Sequence[HotKey], key_cols, time_col, buckets: int, *, time_micros=None):
    """The merge call of a row: a hash bucket, or for a hot key ``buckets + its ranges' offset + range``."""
    from pyspark.sql import functions as F

    out = F.pmod(F.hash(*key_cols), F.lit(buckets))
    micros = F.unix_micros(time_col) if time_micros is None else time_micros
    for h in reversed(hot):
        out = F.when(_is_key(h.values, key_cols), F.lit(h.first_bucket) + _range_of(h.bounds, micros)).otherwise(out)
    return out


def _is_key(values: Sequence[Any], key_cols):
    from pyspark.sql import functions as F

    cond = None
    for col, value in zip(key_cols, values):
        part = col == F.lit(value)
        cond = part if cond is None else cond & part
    return cond


def _split_features(feats: DataFrame, hot: Sequence[HotKey], knames: Sequence[str], *, bitemporal: bool,
                    buckets: int) -> DataFrame:
    """Feature rows with their merge call ``_b``; a hot key's rows go to their time range (a row stored after
    its event time, bi-temporally, to every range from its event time's to its storage time's, so that both
    the bi-temporal and the plain winner of a range are in it), plus each hot range's seed rows."""
    from pyspark.sql import functions as F

    keys = [F.col(k) for k in knames]
    if not hot:
        return feats.withColumn("_b", F.pmod(F.hash(*keys), F.lit(buckets)))
    et = F.unix_micros("_et")
    avail = F.unix_micros(F.greatest("_et", "_ia")) if bitemporal else et
    first = _bucket_of(hot, keys, None, buckets, time_micros=et)
    if bitemporal:
        last = _bucket_of(hot, keys, None, buckets, time_micros=avail)
        rows = feats.withColumn("_b", F.explode(F.sequence(first, last)))
    else:
        rows = feats.withColumn("_b", first)
    # seeds: per hot key, group and range (of availability), the winner; copied to every later range
    is_hot = None
    for h in hot:
        is_hot = _is_key(h.values, keys) if is_hot is None else is_hot | _is_key(h.values, keys)
    payload = [c for c in feats.columns if c not in (*knames, "_g")]
    ranked = feats.where(is_hot).withColumn("_r", _bucket_of(hot, keys, None, buckets, time_micros=avail))
    winners = ranked.groupBy(*knames, "_g", "_r").agg(F.max(F.struct(*payload)).alias("_w"))
    last_of = None
    for h in hot:
        end = F.lit(h.first_bucket + len(h.bounds))
        last_of = F.when(_is_key(h.values, keys), end) if last_of is None else last_of.when(_is_key(h.values, keys), end)
    seeds = winners.where(F.col("_r") < last_of).select(
        *knames, "_g", "_w.*", F.explode(F.sequence(F.col("_r") + 1, last_of)).alias("_b"))
    return rows.unionByName(seeds.select(*rows.columns))
