"""Parsing and validation of raw flights and weather rows, declared as rules (:class:`fti.authoring.Validation`).

Each parser returns every input row with the parsed columns and ``_reason``: null for a good row, else why it is
quarantined. The rules: null/empty keys, values that do not parse, non-finite or fractional numbers, values outside
plausible ranges, timestamps before 1970 or after the run's clock, a UTC ``time_hour`` that disagrees with the
local ``year/month/day/hour`` (this is what resolves the repeated DST hour), and duplicates (the later landing of a
flight wins; earlier copies are quarantined). Every rule has the ``fail`` policy: past ``features.max_bad_share``
the batch is rejected. The one step SQL cannot say, the arrival clock in the destination's zone, is the
flights validation's ``transform``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Mapping

from fti.authoring import Check, Field, Unique, Validation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TZ = "America/New_York"
TIME_HOUR = Field("time_hour", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss'Z'", expected="YYYY-MM-DDTHH:MM:SSZ",
                  key=True, between=("1970-01-01", None), not_in_future=True,
                  description="the scheduled departure hour, UTC")
RANGES = {"dep_delay": (-1440, 2880), "arr_delay": (-1440, 2880), "air_time": (1, 1440), "distance": (1, 10000)}
WEATHER_FLOATS = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
WEATHER_RANGES = {"temp": (-80, 140), "wind_speed": (0, 300), "precip": (0, 20), "visib": (0, 100),
                  "pressure": (850, 1100), "humid": (0, 100)}


def _local_clock(key: bool = True) -> tuple[Field, ...]:
    """The local calendar columns a row states (named local_* here: ``day`` and ``month`` are derived outputs)."""
    return (Field("local_year", "int", column="year", key=key, between=(1970, 2100)),
            Field("local_month", "int", column="month", key=key, between=(1, 12)),
            Field("local_day", "int", column="day", key=key, between=(1, 31)),
            Field("local_hour", "int", column="hour", key=key, between=(0, 23)))


# the local clock a UTC time_hour must agree with (the repeated DST hour has two UTC hours: only one agrees)
AGREES = Check(" AND ".join(f"{fn}(from_utc_timestamp(time_hour, '{TZ}')) = local_{part}" for fn, part in
                            (("year", "year"), ("month", "month"), ("dayofmonth", "day"), ("hour", "hour"))),
               "time_hour disagrees with the local year/month/day/hour")


def _arrival(df: DataFrame, *, now: dt.datetime, airport_zones: Mapping[str, str], **_: object) -> DataFrame:
    """The actual arrival in UTC: the local ``arr_time`` on the day of the departure at the destination (the next
    day when that is before the departure), in the destination airport's zone."""
    from pyspark.sql import functions as F

    columns = [c for c in df.columns if c != "arr_time"]
    columns.insert(columns.index("actual_dep_utc") + 1, "actual_arr_utc")
    # the zones as a broadcast lookup table: ~1,500 airports as map literals would make every plan built on
    # these rows slow to analyze
    zones = df.sparkSession.createDataFrame(sorted(airport_zones.items()) or [("", None)],
                                            "_zone_faa string, _dest_tz string")
    df = df.join(F.broadcast(zones), df["dest"] == zones["_zone_faa"], "left").drop("_zone_faa")
    dest_tz = F.col("_dest_tz")
    df = df.withColumns({"_dep_at_dest": F.from_utc_timestamp(F.col("actual_dep_utc"), dest_tz),
                         "_arr_minutes": F.expr("try_cast(floor(arr_time / 100) * 60 + arr_time % 100 as int)")})
    df = df.withColumn("_cand_local", F.expr("timestampadd(MINUTE, _arr_minutes, to_timestamp(to_date(_dep_at_dest)))"))
    cand_utc = F.to_utc_timestamp(F.col("_cand_local"), dest_tz)
    next_day = F.to_utc_timestamp(F.expr("timestampadd(DAY, 1, _cand_local)"), dest_tz)
    arrival = F.when(cand_utc < F.col("actual_dep_utc"), next_day).otherwise(cand_utc)
    df = df.withColumn("actual_arr_utc", F.when(F.col("arr_time").isNotNull() & dest_tz.isNotNull()
                                                & F.col("actual_dep_utc").isNotNull(), arrival))
    return df.select(*columns)


FLIGHTS = Validation(
    fields=(Field("carrier", key=True), Field("flight", "int", key=True), Field("origin", key=True),
            Field("dest", key=True), *_local_clock()[:3],
            Field("sched_dep_time", "int", key=True), *_local_clock()[3:],
            Field("minute", "int", key=True, between=(0, 59)), TIME_HOUR,
            Field("tailnum"), Field("dep_time", "int"), Field("arr_time", "int"), Field("sched_arr_time", "int"),
            *[Field(c, "double", whole=c != "distance", between=RANGES[c]) for c in RANGES]),
    derive={
        "sched_dep_utc": "timestampadd(MINUTE, minute, time_hour)",
        "flight_id": "concat_ws('-', date_format(sched_dep_utc, \"yyyyMMdd'T'HHmm'Z'\"), carrier, cast(flight as string))",
        "_local": f"from_utc_timestamp(sched_dep_utc, '{TZ}')",
        "day": "to_date(_local)", "sched_dep_hour": "hour(_local)", "day_of_week": "dayofweek(_local)",
        "month": "month(_local)",
        "actual_dep_utc": "CASE WHEN dep_delay IS NOT NULL THEN timestampadd(MINUTE, cast(dep_delay as int), sched_dep_utc) END",
        "cancelled": "actual_dep_utc IS NULL",
    },
    checks=(AGREES, Check("local_hour * 100 + minute = sched_dep_time", "sched_dep_time disagrees with hour/minute")),
    unique=Unique(key=("flight_id",)),
    policy="fail",
    keep=("flight_id", "day", "carrier", "flight", "tailnum", "origin", "dest", "sched_dep_utc", "sched_dep_hour",
          "day_of_week", "month", "dep_delay", "arr_delay", "air_time", "distance", "arr_time", "actual_dep_utc",
          "cancelled"),
    transform=_arrival,
)

WEATHER = Validation(
    fields=(Field("origin", key=True), *_local_clock(), TIME_HOUR,
            *[Field(c, "double", between=WEATHER_RANGES.get(c)) for c in WEATHER_FLOATS]),
    derive={"event_time": "time_hour", "day": f"to_date(from_utc_timestamp(time_hour, '{TZ}'))"},
    checks=(AGREES,),
    unique=Unique(key=("origin", "time_hour")),
    policy="fail",
    keep=("origin", "event_time", "day", *WEATHER_FLOATS),
)


def parse_flights(raw: DataFrame, *, now: dt.datetime, airport_zones: Mapping[str, str]) -> DataFrame:
    """Parse raw flights rows (text columns, ``ingested_at``, ``_batch``): ``flight_id``, ``day`` (New York scheduled
    date), ``sched_dep_utc``, ``actual_dep_utc``, ``actual_arr_utc``, typed values, ``cancelled`` and ``_reason``."""
    return FLIGHTS(raw, now=now, airport_zones=airport_zones)


def parse_weather(raw: DataFrame, *, now: dt.datetime) -> DataFrame:
    """Parse raw hourly weather rows: ``origin``, ``event_time`` (UTC observation), values, ``_reason``."""
    return WEATHER(raw, now=now)
