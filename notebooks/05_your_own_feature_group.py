# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Your own feature group
# MAGIC A project defined in these cells, over data that is already in a Delta table: a source read in place, a
# MAGIC feature group fti computes, a feature group whose rows this notebook computes and inserts, the labels, a
# MAGIC feature view; then features, a training set from a spine DataFrame, a regression model, and scores.

# COMMAND ----------

# MAGIC %md
# MAGIC On Databricks, install fti first: build the wheel with `make wheel`, copy it to a volume
# MAGIC (`databricks fs cp dist/fti-0.1.0-py3-none-any.whl dbfs:/Volumes/main/default/fti/`), then run the next cell.
# MAGIC Locally (`make setup`) fti is already installed and that cell is skipped (it is all `# MAGIC` lines).

# COMMAND ----------

# MAGIC %pip install /Volumes/main/default/fti/fti-0.1.0-py3-none-any.whl

# COMMAND ----------

from fti.notebook import declare_widgets

declare_widgets(dbutils)  # home (a Unity Catalog volume on Databricks); the other widgets are not used here
dbutils.widgets.text("orders", "", "Your Delta table of orders: path, URI or catalog name (empty: a demo table)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## The definitions: what a project module would hold

# COMMAND ----------

from pyspark.sql import functions as F

from fti.authoring import DeltaSource, Feature, FeatureGroup, Labels, Project

home = dbutils.widgets.get("home")
orders_table = dbutils.widgets.get("orders") or f"{home}/demo_bronze/orders"
ORDERS = DeltaSource(name="orders", location=orders_table, columns=("user_id", "ts", "amount"),
                     description="Orders, as the orders team's job writes them", day=lambda: F.to_date("ts"))


def parse_orders(raw, *, now, **_):
    """Typed rows plus _reason (null: good; else why the row is quarantined)."""
    reason = F.when(F.col("user_id").isNull(), F.lit("no user")).when(F.col("amount") < 0, F.lit("negative amount"))
    return raw.select("user_id", F.col("ts").alias("event_time"), F.to_date("ts").alias("day"), "amount",
                      "ingested_at", reason.alias("_reason"), *[c for c in raw.columns if c.startswith("_raw_")])


def spend(inputs, **_):
    """A user's orders of a day, known at the day's last order."""
    return inputs["orders"].groupBy("user_id", "day").agg(F.max("event_time").alias("event_time"),
                                                          F.count(F.lit(1)).alias("orders"),
                                                          F.sum("amount").alias("spent"))


def labels(orders, *, config):
    """The spine: each user and day with orders, predicted at the day's start; the label is what they spend."""
    return orders.groupBy("user_id", "day").agg(F.sum("amount").alias("spent_today")) \
        .select("user_id", "day", F.col("day").cast("timestamp").alias("prediction_time"), "spent_today")


project = Project(
    sources={"orders": ORDERS}, parsers={"orders": parse_orders},
    groups=(FeatureGroup(name="spend", keys=("user_id",), sources=("orders",), transform=spend,
                         description="A user's orders of a day", owner="growth team",
                         features=(Feature("orders", "bigint", "orders that day", 0, None),
                                   Feature("spent", "double", "amount spent that day", 0, None))),
            # no sources, no transform: this notebook computes the rows and inserts them
            FeatureGroup(name="profile", keys=("user_id",), description="A user's segment, from the CRM",
                         features=(Feature("segment_code", "int", "0 basic, 1 plus, 2 pro", 0, 2),))),
    labels=Labels(source="orders", transform=labels, description="What a user spends on a day",
                  schema_ddl="user_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                             "spent_today double, ingested_at timestamp NOT NULL"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## The configuration: what the project's `fti.yaml` would hold

# COMMAND ----------

config = {
    "system": "shop", "timezone": "UTC", "features": {"max_bad_share": 0.2},
    "feature_views": {"spend_v1": {
        "description": "What will a user spend today?",
        "spine": {"table": "shop/labels", "keys": ["user_id"], "event_time": "prediction_time", "label": "spent_today"},
        "groups": [{"group": "spend", "keys": {"user_id": "user_id"}, "features": ["orders", "spent"]},
                   {"group": "profile", "keys": {"user_id": "user_id"}, "features": ["segment_code"]}]}},
    "training": {"model_name": "shop_spend", "feature_view": "spend_v1", "objective": "regression",
                 "train": {"start": "2024-02-02", "end": "2024-02-20"},
                 "validation": {"start": "2024-02-20", "end": "2024-02-25"},
                 "test": {"start": "2024-02-25", "end": "2024-03-01"}, "num_boost_round": 40},
}

from fti.notebook import open_project

settings, spark, store = open_project(project, config, home=home)

# COMMAND ----------

import datetime as dt

import numpy as np

from delta.tables import DeltaTable

rng = np.random.default_rng(3)
segments = {f"u{i:02d}": int(rng.integers(0, 3)) for i in range(25)}
if not dbutils.widgets.get("orders") and not DeltaTable.isDeltaTable(spark, orders_table):
    # a stand-in for the orders team's table: plain Spark, nothing of fti
    rows = [(user, dt.datetime(2024, 2, 1, 8, tzinfo=dt.timezone.utc) + dt.timedelta(days=d, hours=int(rng.integers(0, 14))),
             round(float(10 * (segment + 1) + rng.normal(0, 3)), 2))
            for user, segment in segments.items() for d in range(30) for _ in range(rng.poisson(0.8 + segment))]
    spark.createDataFrame(rows, "user_id string, ts timestamp, amount double").write.format("delta").save(orders_table)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Features: the inserted group, then a feature run over the Delta table

# COMMAND ----------

from fti.features import pipeline
from fti.features.insert import insert

profiles = spark.createDataFrame(
    [(user, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), segment) for user, segment in segments.items()],
    "user_id string, event_time timestamp, segment_code int")
inserted = insert(store, settings, "profile", profiles)
print(f"inserted {inserted.rows} rows into {inserted.table} (version {inserted.version})")

report = pipeline.run(store, settings)  # the cells' definitions: open_project made them the project's
for out in report.outputs:
    print(f"{out.table}: {out.status}, {out.rows} rows over {out.days} day(s)")

# COMMAND ----------

# time travel: any version of a feature table, as training sets pin them (here: the insert's own version)
as_inserted = store.read("shop/profile", version=inserted.version)
print(as_inserted.count(), "rows of shop/profile at version", inserted.version)

# COMMAND ----------

# MAGIC %md
# MAGIC ## A training set from a spine DataFrame, a model, scores

# COMMAND ----------

from fti.store.feature_store import FeatureStore

spine = store.read("shop/labels").where("day >= '2024-02-20'").select("user_id", "prediction_time", "spent_today")
training_set = FeatureStore(store, settings).get_training_set(spine, "spend_v1")
spine_rows = training_set.df.count()
print(f"{spine_rows} point-in-time rows; features {training_set.feature_columns}")

# COMMAND ----------

from fti.inference.pipeline import run as score
from fti.training.pipeline import run as train

trained = train(store, settings)
print(f"{trained.model_name}/{trained.version} -> {trained.alias}: test {trained.metric} "
      f"{trained.metrics['test_' + trained.metric]:.3f}")
scored = score(store, settings, as_of=dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc))
print(f"scored {scored.scored} users of {scored.population} with {scored.model}/{scored.model_version}")
