"""Parsing and validation of raw flights and weather rows (DataFrame -> DataFrame, no I/O).

Each function returns every input row with the parsed columns and ``_reason``: null for a good row,
else why it is quarantined. Checks: null/empty keys, values that do not parse, non-finite numbers,
values outside plausible ranges, timestamps before 1970 or after the run's clock, a UTC ``time_hour``
that disagrees with the local ``year/month/day/hour`` (this is what resolves the repeated DST hour),
and duplicates (the later landing of a flight wins; earlier copies are quarantined).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TZ = "America/New_York"
INT_COLS = ("year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
            "arr_delay", "flight", "air_time", "hour", "minute")
FLOAT_COLS = ("distance",)
RANGES = {"dep_delay": (-1440, 2880), "arr_delay": (-1440, 2880), "air_time": (1, 1440), "distance": (1, 10000),
          "month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59), "year": (1970, 2100)}
WEATHER_FLOATS = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
WEATHER_RANGES = {"temp": (-80, 140), "wind_speed": (0, 300), "precip": (0, 20), "visib": (0, 100),
                  "pressure": (850, 1100), "humid": (0, 100)}


def _passthrough(df: DataFrame) -> list[str]:
    """Columns the caller attached (``_raw_*``) travel through parsing unchanged."""
    return [c for c in df.columns if c.startswith("_raw_")]


def _first_reason(checks: list[tuple[Column, Column]]) -> Column:
    from pyspark.sql import functions as F

    expr = None
    for cond, reason in reversed(checks):
        expr = F.when(cond, reason) if expr is None else F.when(cond, reason).otherwise(expr)
    return expr if expr is not None else F.lit(None).cast("string")


def _parse_number_checks(df: DataFrame, ints: tuple[str, ...], floats: tuple[str, ...],
                         ranges: Mapping[str, tuple[float, float]]) -> tuple[DataFrame, list]:
    from pyspark.sql import functions as F

    checks = []
    # one projection for all columns (a withColumn per column re-analyzes the whole plan each time)
    df = df.withColumns({f"_{col}": F.expr(f"try_cast(trim(`{col}`) as double)") for col in ints + floats})
    for col in ints + floats:
        kind = "int" if col in ints else "double"
        value = F.col(f"_{col}")
        finite = ~F.isnan(value) & (F.abs(value) != float("inf"))
        checks.append((F.col(col).isNotNull() & value.isNull(),
                       F.concat(F.lit(f"unparseable {col}: '"), F.col(col), F.lit("'"))))
        checks.append((~finite, F.lit(f"{col} is not a finite number")))
        if kind == "int":
            checks.append(((value % 1) != 0, F.lit(f"{col} is not a whole number")))
        if col in ranges:
            lo, hi = ranges[col]
            checks.append(((value < lo) | (value > hi),
                           F.concat(F.lit(f"{col} out of range [{lo}, {hi}]: "), F.col(col))))
    # Later arithmetic (ANSI mode) must never see NaN, infinities or values too large for an int.
    df = df.withColumns({f"_{col}": F.when(~F.isnan(F.col(f"_{col}")) & (F.abs(F.col(f"_{col}")) <= 1e9), F.col(f"_{col}"))
                         for col in ints + floats})
    return df, checks


def _time_hour_checks(df: DataFrame, now: dt.datetime) -> tuple[DataFrame, list]:
    from pyspark.sql import functions as F

    df = df.withColumn("_time_hour", F.expr("try_to_timestamp(time_hour, \"yyyy-MM-dd'T'HH:mm:ss'Z'\")"))
    local = F.from_utc_timestamp(F.col("_time_hour"), TZ)
    checks = [
        (F.col("_time_hour").isNull(), F.concat(F.lit("unparseable time_hour: '"), F.col("time_hour"),
                                                 F.lit("' (expected YYYY-MM-DDTHH:MM:SSZ)"))),
        (F.col("_time_hour") < F.lit("1970-01-01 00:00:00").cast("timestamp"), F.lit("time_hour before 1970")),
        (F.col("_time_hour") > F.lit(now).cast("timestamp"),
         F.lit(f"time_hour after the run's clock ({now.isoformat()})")),
        ((F.year(local) != F.col("_year")) | (F.month(local) != F.col("_month"))
         | (F.dayofmonth(local) != F.col("_day")) | (F.hour(local) != F.col("_hour")),
         F.lit("time_hour disagrees with the local year/month/day/hour")),
    ]
    return df, checks


def _dedupe_reason(df: DataFrame, key: list[str], columns: tuple[str, ...]) -> Column:
    """Among rows with the same key, the latest landed wins; the others are duplicates or superseded."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    content = F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)
    order = Window.partitionBy(*key).orderBy(F.col("ingested_at").desc(), F.col("_batch").desc(), content.desc())
    df_rank = F.row_number().over(order)
    latest_content = F.first(content).over(order)
    return F.when(df_rank > 1, F.when(content == latest_content, F.lit("duplicate row"))
                  .otherwise(F.lit("superseded by a later landing of the same key")))


def parse_flights(raw: DataFrame, *, now: dt.datetime, airport_zones: Mapping[str, str]) -> DataFrame:
    """Parse raw flights rows.

    Args:
        raw: Rows of ``raw_flights`` (text columns, ``ingested_at``, ``_batch``).
        now: The run's clock (rows scheduled after it are in the future: quarantined).
        airport_zones: Destination airport -> IANA zone (for the local arrival clock).

    Returns:
        Rows with ``flight_id``, ``day`` (New York scheduled date), ``sched_dep_utc``, ``actual_dep_utc``,
        ``actual_arr_utc``, typed values, ``cancelled`` and ``_reason``.
    """
    from pyspark.sql import functions as F
    from .sources import FLIGHTS

    df, checks = _parse_number_checks(raw, INT_COLS, FLOAT_COLS, RANGES)
    key_checks = [(F.col(c).isNull() | (F.trim(F.col(c)) == ""), F.lit(f"null or empty key: {c}"))
                  for c in ("carrier", "flight", "origin", "dest", "year", "month", "day", "sched_dep_time",
                            "hour", "minute", "time_hour")]
    df, time_checks = _time_hour_checks(df, now)
    sched_dep = F.expr("timestampadd(MINUTE, try_cast(_minute as int), _time_hour)")
    df = df.withColumn("sched_dep_utc", sched_dep)
    consistency = [((F.col("_hour") * 100 + F.col("_minute")) != F.col("_sched_dep_time"),
                    F.lit("sched_dep_time disagrees with hour/minute"))]
    reason = _first_reason(key_checks + checks + time_checks + consistency)
    df = df.withColumn("_reason", reason)
    flight_id = F.concat_ws("-", F.date_format("sched_dep_utc", "yyyyMMdd'T'HHmm'Z'"), F.trim("carrier"),
                            F.expr("try_cast(_flight as int)").cast("string"))
    df = df.withColumn("flight_id", F.when(F.col("_reason").isNull(), flight_id))
    df = df.withColumn("_reason", F.coalesce(F.col("_reason"), _dedupe_reason(df, ["flight_id"], FLIGHTS.columns)))

    # the zones as a broadcast lookup table: ~1,500 airports as map literals would make every plan built on
    # these rows slow to analyze
    zones = raw.sparkSession.createDataFrame(sorted(airport_zones.items()) or [("", None)],
                                             "_zone_faa string, _dest_tz string")
    df = df.join(F.broadcast(zones), df["dest"] == zones["_zone_faa"], "left").drop("_zone_faa")
    dest_tz = F.col("_dest_tz")
    actual_dep = F.expr("timestampadd(MINUTE, try_cast(_dep_delay as int), sched_dep_utc)")
    df = df.withColumn("actual_dep_utc", F.when(F.col("_dep_delay").isNotNull(), actual_dep))
    dep_at_dest = F.from_utc_timestamp(F.col("actual_dep_utc"), dest_tz)
    arr_minutes = F.expr("try_cast(floor(_arr_time / 100) * 60 + _arr_time % 100 as int)")
    cand_local = F.expr("timestampadd(MINUTE, _arr_minutes, to_timestamp(to_date(_dep_at_dest)))")
    df = df.withColumn("_dep_at_dest", dep_at_dest).withColumn("_arr_minutes", arr_minutes)
    df = df.withColumn("_cand_local", cand_local)
    cand_utc = F.to_utc_timestamp(F.col("_cand_local"), dest_tz)
    next_day = F.to_utc_timestamp(F.expr("timestampadd(DAY, 1, _cand_local)"), dest_tz)
    arrival = F.when(cand_utc < F.col("actual_dep_utc"), next_day).otherwise(cand_utc)
    df = df.withColumn("actual_arr_utc", F.when(F.col("_arr_time").isNotNull() & dest_tz.isNotNull()
                                                & F.col("actual_dep_utc").isNotNull(), arrival))
    local_sched = F.from_utc_timestamp(F.col("sched_dep_utc"), TZ)
    return df.select(
        "flight_id",
        F.to_date(local_sched).alias("day"),
        F.trim("carrier").alias("carrier"),
        F.expr("try_cast(_flight as int)").alias("flight"),
        F.when(F.trim("tailnum") != "", F.trim("tailnum")).alias("tailnum"),
        F.trim("origin").alias("origin"),
        F.trim("dest").alias("dest"),
        "sched_dep_utc",
        F.hour(local_sched).alias("sched_dep_hour"),
        F.dayofweek(local_sched).alias("day_of_week"),
        F.month(local_sched).alias("month"),
        F.col("_dep_delay").alias("dep_delay"),
        F.col("_arr_delay").alias("arr_delay"),
        F.col("_air_time").alias("air_time"),
        F.col("_distance").alias("distance"),
        "actual_dep_utc",
        "actual_arr_utc",
        F.col("actual_dep_utc").isNull().alias("cancelled"),
        "ingested_at",
        "_reason",
        *_passthrough(raw),
    )


def parse_weather(raw: DataFrame, *, now: dt.datetime) -> DataFrame:
    """Parse raw hourly weather rows: ``origin``, ``event_time`` (UTC observation), values, ``_reason``."""
    from pyspark.sql import functions as F

    from .sources import WEATHER

    df, checks = _parse_number_checks(raw, ("year", "month", "day", "hour"), WEATHER_FLOATS,
                                      {**WEATHER_RANGES, **{k: RANGES[k] for k in ("year", "month", "day", "hour")}})
    key_checks = [(F.col(c).isNull() | (F.trim(F.col(c)) == ""), F.lit(f"null or empty key: {c}"))
                  for c in ("origin", "year", "month", "day", "hour", "time_hour")]
    df, time_checks = _time_hour_checks(df, now)
    df = df.withColumn("_reason", _first_reason(key_checks + checks + time_checks))
    df = df.withColumn("_obs_key", F.when(F.col("_reason").isNull(),
                                          F.concat_ws("@", F.trim("origin"), F.col("time_hour"))))
    df = df.withColumn("_reason", F.coalesce(F.col("_reason"), _dedupe_reason(df, ["_obs_key"], WEATHER.columns)))
    return df.select(
        F.trim("origin").alias("origin"),
        F.col("_time_hour").alias("event_time"),
        F.to_date(F.from_utc_timestamp(F.col("_time_hour"), TZ)).alias("day"),
        *[F.col(f"_{c}").alias(c) for c in WEATHER_FLOATS],
        "ingested_at",
        "_reason",
        *_passthrough(raw),
    )
