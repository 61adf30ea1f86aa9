"""fti: feature, training and inference pipelines that meet only in Delta Lake and MLflow."""

__version__ = "0.1.0"
