# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Exploration
# MAGIC Feature distributions of the latest training set, and the champion's quality on its test window.

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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow

from fti.notebook import session_from_widgets
from fti.registry import ModelRef, client, manifest_of_model

settings, spark, store = session_from_widgets(dbutils)
model_name = settings.config.training.model_name
manifest = manifest_of_model(settings, ModelRef(model_name, alias="champion"))
features = manifest.feature_columns
frame = store.read(manifest.output.table).select(*features, manifest.spine.label).toPandas()

# COMMAND ----------

fig, axes = plt.subplots((len(features) + 3) // 4, 4, figsize=(16, 3 * ((len(features) + 3) // 4)))
for ax, name in zip(axes.ravel(), features):
    frame[name].astype("float64").plot.hist(ax=ax, bins=30, title=name)
fig.tight_layout()
display_path = store.home / settings.system / "exploration_features.png"
fig.savefig(display_path)
print("feature distributions:", display_path)

# COMMAND ----------

champion = client(settings).get_model_version_by_alias(model_name, "champion")
run = client(settings).get_run(champion.run_id)
print({k: round(v, 4) for k, v in run.data.metrics.items() if k.startswith("test_")})
print("plots logged with the run:", [a.path for a in client(settings).list_artifacts(champion.run_id, "plots")])

# COMMAND ----------

# MAGIC %md
# MAGIC Every fti table is registered by name in this session (`<system>.<table>`), so SQL works as on Databricks:
# MAGIC `%sql SELECT * FROM flights.carrier_delay` in a SQL cell, or `spark.sql(...)` / `spark.table(...)` here.

# COMMAND ----------

latest_labels = spark.sql(
    f"SELECT day, count(*) AS rows FROM {settings.system}.labels GROUP BY day ORDER BY day DESC LIMIT 5"
).collect()
print(latest_labels)
