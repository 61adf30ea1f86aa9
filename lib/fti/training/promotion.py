"""The promotion gate and the alias moves (promote, rollback), with the reason recorded as tags."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fti.errors import FtiError
from fti.registry import ModelMetadata

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from fti.config import Settings

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Decision:
    alias: str
    reason: str
    champion_auc: float | None


def _score(mlflow_client: MlflowClient, name: str, version: str, test: pd.DataFrame, label: str) -> float | None:
    """Re-score a registered version on the same test rows (None when the rows lack its features)."""
    import mlflow.xgboost
    import xgboost
    from sklearn.metrics import roc_auc_score

    features = ModelMetadata.of(mlflow_client.get_model_version(name, version)).features
    if not features or any(f not in test.columns for f in features):
        return None
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
    scores = booster.predict(xgboost.DMatrix(test[features], feature_names=features))
    return float(roc_auc_score(test[label], scores))


def _move(mlflow_client: MlflowClient, name: str, alias: str, version: int, reason: str, previous: Any) -> None:
    mlflow_client.set_registered_model_alias(name, alias, str(version))
    mlflow_client.set_model_version_tag(name, str(version), f"fti.{alias}_reason", reason)
    if previous is not None and alias == CHAMPION:
        mlflow_client.set_model_version_tag(name, str(version), "fti.previous_champion", str(previous))


def gate(mlflow_client: MlflowClient, name: str, version: int, *, new_auc: float, test: pd.DataFrame, label: str,
         margin: float) -> Decision:
    """Make ``version`` champion only if it beats the current champion, re-scored on the same test rows."""
    from mlflow.exceptions import MlflowException

    try:
        current = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        reason = f"first model: test AUC {new_auc:.4f}"
        _move(mlflow_client, name, CHAMPION, version, reason, None)
        return Decision(CHAMPION, reason, None)
    champ_auc = _score(mlflow_client, name, str(current.version), test, label)
    if champ_auc is None:
        champ_auc = ModelMetadata.of(current).test_auc
        basis = "its recorded test AUC (its features are not in this training set)"
    else:
        basis = "re-scored on the same test rows"
    if new_auc >= champ_auc + margin:
        reason = (f"test AUC {new_auc:.4f} beats champion v{current.version} ({champ_auc:.4f}, {basis}) "
                  f"by >= {margin}")
        _move(mlflow_client, name, CHAMPION, version, reason, current.version)
        return Decision(CHAMPION, reason, champ_auc)
    reason = (f"test AUC {new_auc:.4f} does not beat champion v{current.version} ({champ_auc:.4f}, {basis}) "
              f"by {margin}: stays challenger")
    _move(mlflow_client, name, CHALLENGER, version, reason, None)
    return Decision(CHALLENGER, reason, champ_auc)


def promote(settings: Settings, ref_name: str, version: int, *, reason: str) -> str:
    """Point ``champion`` at a version by hand (records the previous champion and the reason)."""
    from mlflow.exceptions import MlflowException

    from fti.registry import client

    mlflow_client = client(settings)
    try:
        mlflow_client.get_model_version(ref_name, str(version))
    except MlflowException:
        raise FtiError(f"model {ref_name} has no version {version}") from None
    try:
        previous = mlflow_client.get_model_version_by_alias(ref_name, CHAMPION).version
    except MlflowException:
        previous = None
    _move(mlflow_client, ref_name, CHAMPION, version, reason, previous)
    return f"{ref_name}@champion -> version {version} (was {previous or 'none'}): {reason}"


def rollback(settings: Settings, name: str, *, reason: str) -> str:
    """Point ``champion`` back at the version it replaced."""
    from mlflow.exceptions import MlflowException

    from fti.registry import client

    mlflow_client = client(settings)
    try:
        current = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise FtiError(f"model {name} has no champion to roll back") from None
    previous = (current.tags or {}).get("fti.previous_champion")
    if not previous:
        raise FtiError(f"champion v{current.version} of {name} replaced no earlier champion: nothing to roll back to")
    mlflow_client.set_registered_model_alias(name, CHAMPION, previous)
    mlflow_client.set_model_version_tag(name, previous, "fti.champion_reason", f"rollback from v{current.version}: {reason}")
    mlflow_client.set_model_version_tag(name, str(current.version), "fti.rolled_back", reason)
    return f"{name}@champion -> version {previous} (rolled back from {current.version}): {reason}"
