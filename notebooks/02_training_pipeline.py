# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Training pipeline
# MAGIC Builds the point-in-time training set, trains XGBoost on Ray Train, registers it in MLflow (same code as `fti train`).

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

# COMMAND ----------

from fti.notebook import session_from_widgets
from fti.training.pipeline import run as train

settings, spark, store = session_from_widgets(dbutils)

# COMMAND ----------

report = train(store, settings)
print(f"{report.model_name}/{report.version} -> {report.alias}: test {report.metric} "
      f"{report.metrics['test_' + report.metric]:.4f}")
print(report.reason)
