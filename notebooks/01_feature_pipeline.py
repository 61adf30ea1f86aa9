# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Feature pipeline
# MAGIC Lands raw data up to a day and runs the incremental feature pipeline (the same code as `fti features`).

# COMMAND ----------

dbutils.widgets.text("system", "flights", "System")
dbutils.widgets.text("home", "lakehouse", "Home folder")
dbutils.widgets.text("through", "2013-01-31", "Land data through (day)")
dbutils.widgets.dropdown("batch", "week", ["day", "week", "month"], "Batch")

# COMMAND ----------

import datetime as dt

from fti.features import pipeline
from fti.notebook import open_session

settings, spark, store = open_session(dbutils.widgets.get("system"), home=dbutils.widgets.get("home"))
through = dt.date.fromisoformat(dbutils.widgets.get("through"))

# COMMAND ----------

if settings.system == "flights":
    from fti.features.flights.replay import replay

    batches = replay(spark, store, settings.system, through=through, batch=dbutils.widgets.get("batch"))
else:
    from fti.features.synthetic.generate import ingest

    batches = ingest(spark, store, settings, through=through, batch=dbutils.widgets.get("batch"))
print(f"landed {len(batches)} batch(es)")

# COMMAND ----------

report = pipeline.run(store, settings, now=batches[-1].now if batches else None)
for out in report.outputs:
    print(out.table, out.status, out.version, out.rows)
