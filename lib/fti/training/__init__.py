"""The training pipeline: distributed XGBoost on Ray Train from a pinned training set, into MLflow."""
