# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Batch inference
# MAGIC Scores the population of one prediction time with the champion (same code as `fti score`), then monitors.

# COMMAND ----------

dbutils.widgets.text("system", "flights", "System")
dbutils.widgets.text("home", "lakehouse", "Home folder")
dbutils.widgets.text("as_of", "2013-12-01T00:00", "Prediction time (system time zone)")
dbutils.widgets.text("model", "", "Model (NAME@alias or NAME/VERSION; empty: champion)")

# COMMAND ----------

from fti.inference import monitoring
from fti.inference.pipeline import run as score
from fti.notebook import open_session
from fti.timeutil import parse_instant

settings, spark, store = open_session(dbutils.widgets.get("system"), home=dbutils.widgets.get("home"))
as_of = parse_instant(dbutils.widgets.get("as_of"), settings.config.timezone)

# COMMAND ----------

report = score(store, settings, as_of=as_of, model=dbutils.widgets.get("model") or None)
print(f"scored {report.scored} of {report.population} with {report.model}/{report.model_version}")

# COMMAND ----------

result = monitoring.run(store, settings)
for run in result["runs"]:
    print(run["model"], run["as_of"], "drift:", run["drifted"] or "none", "realized AUC:", run.get("realized_auc"))
