# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Training pipeline
# MAGIC Builds the point-in-time training set, trains XGBoost on Ray Train, registers it in MLflow (same code as `fti train`).

# COMMAND ----------

dbutils.widgets.text("system", "flights", "System")
dbutils.widgets.text("home", "lakehouse", "Home folder")

# COMMAND ----------

from fti.notebook import open_session
from fti.training.pipeline import run as train

settings, spark, store = open_session(dbutils.widgets.get("system"), home=dbutils.widgets.get("home"))

# COMMAND ----------

report = train(store, settings)
print(f"{report.model_name}/{report.version} -> {report.alias}: test AUC {report.metrics['test_auc']:.4f}")
print(report.reason)
