# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Batch inference
# MAGIC Scores the population of one prediction time with the champion (same code as `fti score`), then monitors.

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
dbutils.widgets.text("as_of", "2013-12-01T00:00", "Prediction time (system time zone)")
dbutils.widgets.text("model", "", "Model (NAME@alias or NAME/VERSION; empty: champion)")

# COMMAND ----------

from fti.inference import monitoring
from fti.inference.pipeline import run as score
from fti.notebook import session_from_widgets
from fti.timeutil import parse_instant

settings, spark, store = session_from_widgets(dbutils)
as_of = parse_instant(dbutils.widgets.get("as_of"), settings.config.timezone)

# COMMAND ----------

report = score(store, settings, as_of=as_of, model=dbutils.widgets.get("model") or None)
print(f"scored {report.scored} of {report.population} with {report.model}/{report.model_version}")

# COMMAND ----------

result = monitoring.run(store, settings)
for run in result["runs"]:
    print(run["model"], run["as_of"], "drift:", run["drifted"] or "none", "realized:", monitoring.realized_text(run))
