"""Parser, feature groups and labels of the synthetic example project (DataFrame -> DataFrame, no I/O)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from fti.authoring import Aggregation, Feature, FeatureGroup, Labels, Project, parse_duration, prediction_time_col

from .generate import EVENTS, load

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from fti.authoring import ProjectConfig


def parse_events(raw: DataFrame, *, now: dt.datetime, **_: object) -> DataFrame:
    """Typed events with ``_reason`` for the bad ones (null keys, bad timestamps or amounts, duplicates)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts = F.expr("try_to_timestamp(event_ts, \"yyyy-MM-dd'T'HH:mm:ss'Z'\")")
    amount = F.expr("try_cast(amount as double)")
    df = raw.withColumn("_ts", ts).withColumn("_amount", amount)
    reason = (F.when(F.col("entity_id").isNull() | (F.trim("entity_id") == ""), F.lit("null or empty key: entity_id"))
              .when(F.col("_ts").isNull(), F.concat(F.lit("unparseable event_ts: '"), F.coalesce("event_ts", F.lit("")), F.lit("'")))
              .when(F.col("_ts") > F.lit(now).cast("timestamp"), F.lit("event_ts after the run's clock"))
              .when(F.col("_ts") < F.lit("1970-01-01").cast("timestamp"), F.lit("event_ts before 1970"))
              .when(~F.col("kind").isin("activity", "purchase"), F.concat(F.lit("unknown kind: "), F.coalesce("kind", F.lit("null"))))
              .when(F.col("_amount").isNull() | F.isnan("_amount") | (F.col("_amount") < 0) | (F.col("_amount") > 1e7),
                    F.concat(F.lit("amount not a plausible number: "), F.coalesce("amount", F.lit("null")))))
    df = df.withColumn("_reason", reason)
    content = F.sha2(F.to_json(F.struct(*EVENTS.columns)), 256)
    order = Window.partitionBy(content).orderBy(F.col("ingested_at").desc(), F.col("_batch").desc())
    df = df.withColumn("_reason", F.coalesce("_reason", F.when(F.row_number().over(order) > 1, F.lit("duplicate row"))))
    return df.select(F.col("entity_id"), F.col("_ts").alias("event_time"), F.to_date("_ts").alias("day"), "kind",
                     F.col("_amount").alias("amount"), "ingested_at", "_reason",
                     *[c for c in raw.columns if c.startswith("_raw_")])


def canary(inputs: dict[str, DataFrame], **_: object) -> DataFrame:
    """LEAKAGE CANARY: the day's purchase count, published at the end of the day (after the label)."""
    from pyspark.sql import functions as F

    ev = inputs["raw_events"]
    per_day = ev.groupBy("entity_id", "day").agg(F.sum((F.col("kind") == "purchase").cast("long")).alias("purchases_today"))
    end_of_day = F.expr("timestampadd(SECOND, 86399, cast(day as timestamp))")
    return per_day.select("entity_id", "day", end_of_day.alias("event_time"), "purchases_today")


def labels(events: DataFrame, *, config: ProjectConfig) -> DataFrame:
    """One spine row per entity alive on a day (it had events): did it purchase that day?"""
    from pyspark.sql import functions as F

    per_day = events.groupBy("entity_id", "day").agg(F.max((F.col("kind") == "purchase").cast("int")).alias("purchased"))
    # the day's start: floor(start of day + 1 s - lead, interval) = start of day for lead 0 and a 1 d interval
    pt = prediction_time_col(F.expr("timestampadd(SECOND, 1, cast(day as timestamp))"), lead=parse_duration(config.prediction.lead),
                             interval=parse_duration(config.prediction.batch_interval), tz=config.timezone)
    return per_day.select("entity_id", "day", pt.alias("prediction_time"), "purchased")


GROUPS = (
    # amounts are summed as decimals: a double sum depends on the order Spark adds the rows in, and a rerun
    # must give the same bits as the first run
    FeatureGroup(name="activity", keys=("entity_id",), sources=("raw_events",), where="kind = 'activity'",
                 aggregations=(Aggregation(None, "count", "7d", name="events_{window}",
                                           description="activity events in the last 7 days"),
                               Aggregation("CAST(amount AS DECIMAL(20,6))", "mean", "7d", name="mean_amount_{window}",
                                           description="mean activity amount over 7 days", min=0)),
                 ttl_seconds=7 * 86400, description="Trailing 7-day activity of each entity"),
    FeatureGroup(name="canary", keys=("entity_id",), sources=("raw_events",), transform=canary, lookback_days=1,
                 ttl_seconds=2 * 86400, description="LEAKAGE CANARY: purchases of the day, known at the end of the day",
                 features=(Feature("purchases_today", "bigint", "purchases that day (leaks the label if joined "
                                   "on the same day)", 0, None),)),
)


def build() -> Project:
    """The synthetic project's definitions."""
    return Project(
        sources={"raw_events": EVENTS},
        parsers={"raw_events": parse_events},
        groups=GROUPS,
        labels=Labels(source="raw_events", transform=labels,
                          description="Entity-days with whether the entity purchased that day",
                          schema_ddl="entity_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                                     "purchased int, ingested_at timestamp NOT NULL"),
        load=load,
    )
