"""The flights feature groups and the labels table (transforms: DataFrame -> DataFrame, no I/O).

``event_time`` is when a row's values became KNOWN: for a trailing delay aggregate, the latest actual
departure (or arrival) among the flights it covers; so a flight that leaves after midnight makes its
day's aggregate known only after midnight, never at a fixed midnight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from fti.authoring import Feature, FeatureGroup, parse_duration, prediction_time_col

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from fti.authoring import ProjectConfig

TZ = "America/New_York"
LATE = 15  # minutes: the delay that counts as "delayed"


def delay_partials(flights: DataFrame, *, keys: Sequence[str], time_col: str, delay_col: str) -> DataFrame:
    """Per key and scheduled day: flights with a known delay (``_n``), those later than 15 min (``_late``), the
    summed delay (``_delay``: whole minutes, so sums are exact in any order) and when the last became known."""
    from pyspark.sql import functions as F

    known = flights.where(F.col(time_col).isNotNull() & F.col(delay_col).isNotNull())
    return known.groupBy(*keys, "day").agg(
        F.count(F.lit(1)).alias("_n"),
        F.sum((F.col(delay_col) > LATE).cast("long")).alias("_late"),
        F.sum(F.col(delay_col)).alias("_delay"),
        F.max(time_col).alias("_known"),
    )


def delay_windows(daily: DataFrame, *, keys: Sequence[str], windows: tuple[int, ...], prefix: str) -> DataFrame:
    """From :func:`delay_partials` rows: share of flights later than 15 min, flight count and mean delay over
    trailing windows of calendar days (the day itself and the days before it); ``event_time`` is the latest
    known time the longest window covers."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    daily = daily.withColumn("_daynum", F.datediff(F.col("day"), F.lit("1970-01-01").cast("date")))
    out = []
    for w in windows:
        win = Window.partitionBy(*keys).orderBy("_daynum").rangeBetween(-(w - 1), 0)
        n = F.sum("_n").over(win)
        out += [(F.sum("_late").over(win) / n).alias(f"{prefix}_delay_rate_{w}d"), n.alias(f"flights_{w}d"),
                (F.sum("_delay").over(win) / n).alias(f"mean_{prefix}_delay_{w}d")]
    longest = Window.partitionBy(*keys).orderBy("_daynum").rangeBetween(-(max(windows) - 1), 0)
    return daily.select(*keys, "day", F.max("_known").over(longest).alias("event_time"), *out)


def trailing_delay(flights: DataFrame, *, keys: list[str], time_col: str, delay_col: str, windows: tuple[int, ...],
                   prefix: str) -> DataFrame:
    """Per key and scheduled day: share of flights later than 15 min, flight count and mean delay over
    trailing windows of calendar days (the day itself and the days before it).

    Args:
        flights: Parsed good flights.
        keys: Grouping keys (``carrier``; ``origin``; ``origin, dest``).
        time_col: When a flight's delay became known (``actual_dep_utc`` or ``actual_arr_utc``).
        delay_col: ``dep_delay`` or ``arr_delay``.
        windows: Window lengths in days.
        prefix: ``dep`` or ``arr`` (column names).

    Returns:
        keys, ``day``, ``event_time`` (latest ``time_col`` covered by the longest window) and the features.
    """
    return delay_windows(delay_partials(flights, keys=keys, time_col=time_col, delay_col=delay_col), keys=keys,
                         windows=windows, prefix=prefix)


def _delay_group(keys: list[str], time_col: str, delay_col: str, windows: tuple[int, ...], prefix: str) -> dict:
    """A trailing delay group's transform and its two halves (per-day partials, windows over them)."""
    def transform(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
        return trailing_delay(inputs["raw_flights"], keys=keys, time_col=time_col, delay_col=delay_col,
                              windows=windows, prefix=prefix)

    def daily(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
        return delay_partials(inputs["raw_flights"], keys=keys, time_col=time_col, delay_col=delay_col)

    def combine(partials: DataFrame, **_: object) -> DataFrame:
        return delay_windows(partials, keys=keys, windows=windows, prefix=prefix)

    return {"transform": transform, "daily": daily, "combine": combine, "lookback_days": max(windows)}


CARRIER_DELAY = _delay_group(["carrier"], "actual_dep_utc", "dep_delay", (7, 28), "dep")
ORIGIN_DELAY = _delay_group(["origin"], "actual_dep_utc", "dep_delay", (7,), "dep")
ROUTE_DELAY = _delay_group(["origin", "dest"], "actual_arr_utc", "arr_delay", (28,), "arr")
carrier_delay, origin_delay, route_delay = (g["transform"] for g in (CARRIER_DELAY, ORIGIN_DELAY, ROUTE_DELAY))


def origin_weather(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
    """One row per airport and observed hour, known at the observation time (UTC)."""
    return inputs["raw_weather"].select("origin", "day", "event_time", "temp", "wind_speed", "precip", "visib",
                                        "pressure")


def aircraft_legs(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
    """One row per flown leg of an aircraft: its departure and arrival delay and the legs flown that day
    so far, known when the leg arrived (or departed, when the arrival is unknown)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    legs = inputs["raw_flights"].where(F.col("tailnum").isNotNull() & F.col("actual_dep_utc").isNotNull())
    order = Window.partitionBy("tailnum", "day").orderBy("actual_dep_utc", "flight_id")
    legs = legs.select(
        "tailnum", "day",
        F.coalesce("actual_arr_utc", "actual_dep_utc").alias("event_time"),
        F.col("dep_delay").alias("prev_dep_delay"),
        F.col("arr_delay").alias("prev_arr_delay"),
        F.row_number().over(order).cast("int").alias("legs_today"),
    )
    # Two legs of one aircraft known at the same instant (bad data): keep the later leg.
    last = Window.partitionBy("tailnum", "event_time").orderBy(F.col("legs_today").desc())
    return legs.withColumn("_r", F.row_number().over(last)).where("_r = 1").drop("_r")


def labels(flights: DataFrame, *, config: ProjectConfig) -> DataFrame:
    """The labels table (the training spine): every flight with its prediction time and, unless it was
    cancelled, whether it left more than 15 minutes late."""
    from pyspark.sql import functions as F

    pt = prediction_time_col(F.col("sched_dep_utc"), lead=parse_duration(config.prediction.lead),
                             interval=parse_duration(config.prediction.batch_interval), tz=config.timezone)
    return flights.select(
        "flight_id", "day", pt.alias("prediction_time"), "sched_dep_utc", "carrier", "flight", "tailnum", "origin",
        "dest", "sched_dep_hour", "day_of_week", "month", "distance", "cancelled",
        F.when(~F.col("cancelled"), (F.col("dep_delay") > LATE).cast("int")).alias("delayed"),
        F.col("actual_dep_utc").alias("label_time"),
    )


def _rate(name: str, what: str) -> Feature:
    return Feature(name, "double", what, 0.0, 1.0)


def _departure_window(days: int, whose: str, rate_text: str) -> tuple[Feature, ...]:
    """The three features ``trailing_delay`` gives for one departure window."""
    return (
        _rate(f"dep_delay_rate_{days}d", rate_text),
        Feature(f"flights_{days}d", "bigint", f"departures {whose} in the last {days} days", 0, None),
        Feature(f"mean_dep_delay_{days}d", "double", f"mean departure delay (min) over {days} days", -1440, 2880),
    )


GROUPS = (
    FeatureGroup(
        name="carrier_delay", keys=("carrier",), sources=("raw_flights",), **CARRIER_DELAY,
        ttl_seconds=7 * 86400, description="Trailing departure delay of each carrier's NYC flights",
        features=_departure_window(7, "of the carrier",
                                   "share of the carrier's departures in the last 7 days that left > 15 min late")
        + _departure_window(28, "of the carrier", "share of departures > 15 min late over 28 days"),
    ),
    FeatureGroup(
        name="origin_delay", keys=("origin",), sources=("raw_flights",), **ORIGIN_DELAY,
        ttl_seconds=7 * 86400, description="Trailing departure delay at each NYC airport",
        features=_departure_window(7, "from the airport",
                                   "share of the airport's departures in the last 7 days > 15 min late"),
    ),
    FeatureGroup(
        name="route_delay", keys=("origin", "dest"), sources=("raw_flights",), **ROUTE_DELAY,
        ttl_seconds=28 * 86400, description="Trailing arrival delay of each route",
        features=(
            _rate("arr_delay_rate_28d", "share of the route's arrivals in 28 days > 15 min late"),
            Feature("flights_28d", "bigint", "arrivals on the route in the last 28 days", 0, None),
            Feature("mean_arr_delay_28d", "double", "mean arrival delay (min) over 28 days", -1440, 2880),
        ),
    ),
    FeatureGroup(
        name="origin_weather", keys=("origin",), sources=("raw_weather",), transform=origin_weather,
        lookback_days=1, ttl_seconds=86400, description="Hourly weather observed at each NYC airport",
        features=(
            Feature("temp", "double", "temperature (F)", -80, 140),
            Feature("wind_speed", "double", "wind speed (mph)", 0, 300),
            Feature("precip", "double", "precipitation (inches)", 0, 20),
            Feature("visib", "double", "visibility (miles)", 0, 100),
            Feature("pressure", "double", "sea level pressure (millibars)", 850, 1100),
        ),
    ),
    FeatureGroup(
        name="aircraft_legs", keys=("tailnum",), sources=("raw_flights",), transform=aircraft_legs, lookback_days=1,
        ttl_seconds=2 * 86400, description="The aircraft's latest flown leg and its legs so far that day",
        features=(
            Feature("prev_dep_delay", "double", "departure delay (min) of the aircraft's latest leg", -1440, 2880),
            Feature("prev_arr_delay", "double", "arrival delay (min) of the aircraft's latest leg", -1440, 2880),
            Feature("legs_today", "int", "legs the aircraft has flown that day up to this one", 1, 100),
        ),
    ),
)
