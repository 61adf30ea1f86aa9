"""The promotion gate and the alias moves (promote, rollback), with the reason recorded as tags."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fti import objectives
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
    champion_value: float | None


def _score(mlflow_client: MlflowClient, name: str, version: str, test: pd.DataFrame, label: str, *,
           objective: str, metric: str) -> float | None:
    """Re-score a registered version on the same test rows (None when the rows lack its features, or it was
    trained for another objective)."""
    import mlflow.xgboost
    import xgboost

    meta = ModelMetadata.of(mlflow_client.get_model_version(name, version))
    if not meta.features or any(f not in test.columns for f in meta.features) or meta.objective != objective:
        return None
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
    scores = booster.predict(xgboost.DMatrix(test[meta.features], feature_names=meta.features))
    return objectives.metric(objective, metric, test[label].to_numpy(), scores)


def _move(mlflow_client: MlflowClient, name: str, alias: str, version: int, reason: str, previous: Any) -> None:
    mlflow_client.set_registered_model_alias(name, alias, str(version))
    mlflow_client.set_model_version_tag(name, str(version), f"fti.{alias}_reason", reason)
    if previous is not None and alias == CHAMPION:
        mlflow_client.set_model_version_tag(name, str(version), "fti.previous_champion", str(previous))


def gate(mlflow_client: MlflowClient, name: str, version: int, *, objective: str = "binary", metric: str = "auc",
         new_value: float, test: pd.DataFrame, label: str, margin: float) -> Decision:
    """Make ``version`` champion only if it beats the current champion in ``metric`` by ``margin`` (higher or lower
    is better by the metric: :data:`fti.objectives.HIGHER_IS_BETTER`), the champion re-scored on the same test
    rows."""
    from mlflow.exceptions import MlflowException

    shown = f"test {metric} {new_value:.4f}" if metric != "auc" else f"test AUC {new_value:.4f}"
    try:
        current = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        reason = f"first model: {shown}"
        _move(mlflow_client, name, CHAMPION, version, reason, None)
        return Decision(CHAMPION, reason, None)
    champ = _score(mlflow_client, name, str(current.version), test, label, objective=objective, metric=metric)
    basis = "re-scored on the same test rows"
    if champ is None:
        recorded = ModelMetadata.of(current)
        same = recorded.objective == objective and recorded.metric == metric
        champ = recorded.test_metric if same else float("nan")
        basis = ("its recorded test value (its features are not in this training set)" if same else
                 f"not comparable: it was gated on {recorded.objective}/{recorded.metric}")
    if champ != champ:  # NaN: nothing to compare with, the new model does not take over by itself
        reason = f"{shown}; champion v{current.version} {basis}: stays challenger (promote by hand: fti model promote)"
        _move(mlflow_client, name, CHALLENGER, version, reason, None)
        return Decision(CHALLENGER, reason, None)
    direction = "higher" if metric in objectives.HIGHER_IS_BETTER else "lower"
    if objectives.beats(metric, new_value, champ, margin):
        reason = (f"{shown} beats champion v{current.version} ({champ:.4f}, {basis}) by >= {margin} ({direction} "
                  "is better)")
        _move(mlflow_client, name, CHAMPION, version, reason, current.version)
        return Decision(CHAMPION, reason, champ)
    reason = (f"{shown} does not beat champion v{current.version} ({champ:.4f}, {basis}) by {margin} ({direction} "
              "is better): stays challenger")
    _move(mlflow_client, name, CHALLENGER, version, reason, None)
    return Decision(CHALLENGER, reason, champ)


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
