"""Parser, feature groups and labels of the synthetic example project (DataFrame -> DataFrame, no I/O)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from fti.authoring import (Aggregation, Feature, FeatureGroup, Field, Labels, Project, Unique, Validation, parse_duration,
                           prediction_time_col)

from .generate import EVENTS, load

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from fti.authoring import ProjectConfig


# typed events; the bad ones (null keys, bad timestamps, kinds or amounts, exact duplicates) are quarantined, and
# past features.max_bad_share the batch is rejected
EVENT_RULES = Validation(
    fields=(Field("entity_id", key=True),
            Field("event_ts", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss'Z'", expected="YYYY-MM-DDTHH:MM:SSZ", between=("1970-01-01", None),
                  not_in_future=True, not_null=True),
            Field("kind", not_null=True, in_set=("activity", "purchase")),
            Field("amount", "double", not_null=True, between=(0, 1e7))),
    derive={"event_time": "event_ts", "day": "to_date(event_ts)"},
    unique=Unique(),
    policy="fail",
    keep=("entity_id", "event_time", "day", "kind", "amount"),
)


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
        parsers={"raw_events": EVENT_RULES},
        groups=GROUPS,
        labels=Labels(source="raw_events", transform=labels,
                          description="Entity-days with whether the entity purchased that day",
                          schema_ddl="entity_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                                     "purchased int, ingested_at timestamp NOT NULL"),
        load=load,
    )
