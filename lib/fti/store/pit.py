"""The point-in-time join: for each spine row and each feature group, the feature ROW with the same keys
and the greatest ``event_time <= spine time`` (optionally within a TTL and a bi-temporal cutoff).

Algorithm (no range join, no correlated subquery, nothing collected to the driver; O(n log n)):

1. Spine rows get a row id ``_sid``; feature rows become ONE struct ``(event_time, ingested_at, features...)``
   so that a matched row's own nulls stay null (carrying columns one by one would fill them from older rows).
2. Spine and feature rows are unioned on the group's keys and an ordering time: ``event_time`` (or, with
   the bi-temporal cutoff, ``greatest(event_time, ingested_at)``, the moment the row was both true and
   stored). At equal times feature rows sort first, so a feature at exactly the prediction time is used.
3. Time is cut into buckets; per (keys, bucket) a running ``max(struct)`` gives, at each spine row, the
   feature row with the greatest event_time seen so far in that bucket. Structs compare field by field,
   event_time first, so ``max`` picks the latest event (also among late-stored rows in bi-temporal mode).
4. Each (keys, bucket)'s max is carried into later buckets with a window over the small (keys, bucket)
   table. A hot entity is therefore spread over as many tasks as it has buckets, instead of one task.
5. The TTL drops a match older than ``spine time - ttl`` (inclusive bound); results join back on ``_sid``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import FtiError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


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
    """

    name: str
    rows: DataFrame
    keys: Mapping[str, str]
    columns: Mapping[str, str]
    ttl: dt.timedelta | None = None
    event_time: str = "event_time"


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
    feats = join.rows.select(*[F.col(f"`{g}`").alias(k) for g, k in zip(group_keys, knames)],
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
    return matched


def point_in_time_join(spine: DataFrame, joins: Sequence[GroupJoin], *, spine_time: str, bitemporal: bool = False,
                       algorithm: str = "cogroup", buckets: int | None = None,
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
                                   buckets=buckets or int(spine.sparkSession.conf.get("spark.sql.shuffle.partitions")))
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
                  spine_time: str, bitemporal: bool, buckets: int) -> DataFrame:
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
        rows = join.rows.select(*[F.col(f"`{join.keys[k]}`").cast(key_types[k]).alias(kn) for k, kn in zip(keys, knames)],
                                F.col(f"`{join.event_time}`").alias("_et"), F.col("ingested_at").alias("_ia"),
                                *[F.col(f"`{src}`").alias(c) for c, src in cols.items()], F.lit(gi).alias("_g"))
        feats = rows if feats is None else feats.unionByName(rows, allowMissingColumns=True)
        specs.append({"g": gi, "columns": dict(zip(join.columns, cols)),
                      "ttl": None if join.ttl is None else int(join.ttl.total_seconds() * 1_000_000)})
        for out, c in zip(join.columns, cols):
            out_fields.append(StructField(out, rows.schema[c].dataType, True))
        out_fields += [StructField(f"_m{gi}", BooleanType(), False), StructField(f"_age{gi}", DoubleType(), True),
                       StructField(f"_ttlx{gi}", BooleanType(), False), StructField(f"_btx{gi}", BooleanType(), False)]
    bucket = F.pmod(F.hash(*[F.col(f"`{k}`") for k in keys]), F.lit(buckets))
    left = spine.withColumn("_b", bucket)
    right = feats.withColumn("_b", F.pmod(F.hash(*[F.col(k) for k in knames]), F.lit(buckets)))
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
                             ttl_micros=spec["ttl"], bitemporal=bitemporal, report_index=spec["g"])
        return out

    return left.groupBy("_b").cogroup(right.groupBy("_b")).applyInArrow(merge, schema=schema)
