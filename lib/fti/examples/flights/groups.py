"""The flights feature groups and the labels table (transforms: DataFrame -> DataFrame, no I/O).

``event_time`` is when a row's values became KNOWN: for a trailing delay aggregate, the latest actual
departure (or arrival) among the flights it covers; so a flight that leaves after midnight makes its
day's aggregate known only after midnight, never at a fixed midnight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fti.authoring import Aggregation, Feature, FeatureGroup, parse_duration, prediction_time_col

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from fti.authoring import ProjectConfig

TZ = "America/New_York"
LATE = 15  # minutes: the delay that counts as "delayed"


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


def _delay_window(days: int, prefix: str, rate_text: str, count_text: str, mean_text: str) -> tuple[Aggregation, ...]:
    """A trailing delay window declared: the share of flights later than 15 min, their count and the mean delay
    (whole minutes, so the sums are exact in any order) over the day and the ``days - 1`` before it."""
    window, delay = f"{days}d", f"{prefix}_delay"
    return (
        Aggregation(f"CAST({delay} > {LATE} AS BIGINT)", "mean", window, name=f"{delay}_rate_{{window}}",
                    description=rate_text, min=0.0, max=1.0),
        Aggregation(delay, "count", window, name=f"flights_{{window}}", description=count_text),
        Aggregation(delay, "mean", window, name=f"mean_{delay}_{{window}}", description=mean_text, min=-1440, max=2880),
    )


def _departure_window(days: int, whose: str, rate_text: str) -> tuple[Aggregation, ...]:
    return _delay_window(days, "dep", rate_text, f"departures {whose} in the last {days} days",
                         f"mean departure delay (min) over {days} days")


# A flight counts once its delay is known: the group's event_time is the latest departure (or arrival) its
# longest window covers.
DEPARTED = {"sources": ("raw_flights",), "time_column": "actual_dep_utc", "where": "dep_delay IS NOT NULL"}
ARRIVED = {"sources": ("raw_flights",), "time_column": "actual_arr_utc", "where": "arr_delay IS NOT NULL"}

GROUPS = (
    FeatureGroup(
        name="carrier_delay", keys=("carrier",), **DEPARTED,
        ttl_seconds=7 * 86400, description="Trailing departure delay of each carrier's NYC flights",
        aggregations=_departure_window(7, "of the carrier",
                                       "share of the carrier's departures in the last 7 days that left > 15 min late")
        + _departure_window(28, "of the carrier", "share of departures > 15 min late over 28 days"),
    ),
    FeatureGroup(
        name="origin_delay", keys=("origin",), **DEPARTED,
        ttl_seconds=7 * 86400, description="Trailing departure delay at each NYC airport",
        aggregations=_departure_window(7, "from the airport",
                                       "share of the airport's departures in the last 7 days > 15 min late"),
    ),
    FeatureGroup(
        name="route_delay", keys=("origin", "dest"), **ARRIVED,
        ttl_seconds=28 * 86400, description="Trailing arrival delay of each route",
        aggregations=_delay_window(28, "arr", "share of the route's arrivals in 28 days > 15 min late",
                                   "arrivals on the route in the last 28 days", "mean arrival delay (min) over 28 days"),
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
