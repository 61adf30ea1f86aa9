# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Feature pipeline
# MAGIC Lands raw data up to a day and runs the incremental feature pipeline (the same code as `fti features`).

# COMMAND ----------

# MAGIC %md
# MAGIC On Databricks, install fti first: build the wheel with `make wheel`, copy it to a volume
# MAGIC (`databricks fs cp dist/fti-0.1.0-py3-none-any.whl dbfs:/Volumes/main/default/fti/`), then run the next cell.
# MAGIC Locally (`make setup`) fti is already installed and that cell is skipped (it is all `# MAGIC` lines).

# COMMAND ----------

# MAGIC %pip install /Volumes/main/default/fti/fti-0.1.0-py3-none-any.whl

# COMMAND ----------

from fti.notebook import declare_widgets

declare_widgets(dbutils)  # system, home (a Unity Catalog volume on Databricks), conf (empty: the shipped one)
dbutils.widgets.text("through", "2013-01-31", "Land data through (day)")
dbutils.widgets.dropdown("batch", "week", ["day", "week", "month"], "Batch")

# COMMAND ----------

import datetime as dt

from fti.features import pipeline
from fti.notebook import session_from_widgets

settings, spark, store = session_from_widgets(dbutils)
through = dt.date.fromisoformat(dbutils.widgets.get("through"))

# COMMAND ----------

from fti.ingest import load_through

batches = load_through(store, settings, through=through, batch=dbutils.widgets.get("batch"))  # the project's loader
print(f"landed {len(batches)} batch(es)")

# COMMAND ----------

report = pipeline.run(store, settings, now=batches[-1].now if batches else None)
for out in report.outputs:
    print(out.table, out.status, out.version, out.rows)
