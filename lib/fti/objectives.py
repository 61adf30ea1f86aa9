"""Model objectives (``training.objective``): what XGBoost fits, the metrics each implies, and the scoring output.

Shared by training (fit, evaluate, promotion gate) and inference (scoring, monitoring): the one place that says
what a ``score`` and a ``predicted_label`` are for each objective.

| objective | XGBoost | ``score`` | ``predicted_label`` | metrics (promotion default first) |
|---|---|---|---|---|
| ``binary`` | ``binary:logistic`` | P(label = 1) | 1 at or above the threshold (F1-best on validation) | auc, log_loss, precision, recall, calibration_error |
| ``regression`` | ``reg:squarederror`` | the predicted value | null | rmse, mae, r2 |
| ``multiclass`` | ``multi:softprob`` (classes 0..K-1) | the top class's probability | the top class | log_loss, accuracy, macro_f1 |
"""

from __future__ import annotations

from typing import Any

import numpy as np

OBJECTIVES = ("binary", "regression", "multiclass")
METRICS = {"binary": ("auc", "log_loss", "precision", "recall", "calibration_error"),
           "regression": ("rmse", "mae", "r2"),
           "multiclass": ("log_loss", "accuracy", "macro_f1")}
HIGHER_IS_BETTER = frozenset({"auc", "precision", "recall", "r2", "accuracy", "macro_f1"})
_XGB = {"binary": ("binary:logistic", ["logloss", "auc"]), "regression": ("reg:squarederror", ["rmse"]),
        "multiclass": ("multi:softprob", ["mlogloss"])}


def default_metric(objective: str) -> str:
    """The promotion metric of an objective when ``training.promotion_metric`` names none."""
    return METRICS[objective][0]


def xgb_params(objective: str, *, num_class: int | None = None) -> dict[str, Any]:
    """XGBoost's objective and evaluation metrics (the last one drives early stopping)."""
    name, metrics = _XGB[objective]
    params: dict[str, Any] = {"objective": name, "eval_metric": list(metrics)}
    if objective == "multiclass":
        if not num_class or num_class < 2:
            raise ValueError("a multiclass objective needs at least two classes (labels 0..K-1)")
        params["num_class"] = int(num_class)
    return params


def num_classes(*labels: np.ndarray) -> int:
    """K for labels 0..K-1 (the largest label seen + 1).

    Raises:
        ValueError: A label that is not a whole number from 0.
    """
    values = np.concatenate([np.asarray(y, dtype="float64") for y in labels])
    if len(values) == 0:
        return 0
    if (values < 0).any() or (values != np.floor(values)).any():
        bad = values[(values < 0) | (values != np.floor(values))][0]
        raise ValueError(f"a multiclass label must be a class number 0..K-1, found {bad}")
    return int(values.max()) + 1


def outputs(objective: str, raw: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, predicted_label, label_valid)`` from XGBoost's predictions (``raw`` is (n, K) for multiclass)."""
    raw = np.asarray(raw, dtype="float64")
    if objective == "multiclass":
        raw = raw.reshape(len(raw), -1)
        return raw.max(axis=1), raw.argmax(axis=1).astype("int32"), np.ones(len(raw), dtype=bool)
    if objective == "regression":
        return raw, np.zeros(len(raw), dtype="int32"), np.zeros(len(raw), dtype=bool)
    return raw, (raw >= threshold).astype("int32"), np.ones(len(raw), dtype=bool)


def metric(objective: str, name: str, y: np.ndarray, p: np.ndarray) -> float:
    """One metric of predictions ``p`` (XGBoost's output) against labels ``y``."""
    return float(quality(objective, y, p, 0.5)[name])


def quality(objective: str, y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric of the objective, plus ``rows`` (binary adds ``positive_rate``)."""
    from sklearn import metrics as m

    y = np.asarray(y, dtype="float64")
    if objective == "regression":
        p = np.asarray(p, dtype="float64")
        return {"rmse": float(np.sqrt(np.mean((p - y) ** 2))), "mae": float(np.mean(np.abs(p - y))),
                "r2": float(m.r2_score(y, p)) if len(y) > 1 else float("nan"), "mean_label": float(np.mean(y)),
                "rows": float(len(y))}
    if objective == "multiclass":
        probs = np.asarray(p, dtype="float64").reshape(len(y), -1)
        pred = probs.argmax(axis=1)
        k = probs.shape[1]
        return {"log_loss": float(m.log_loss(y.astype(int), np.clip(probs, 1e-7, 1), labels=list(range(k)))),
                "accuracy": float(np.mean(pred == y)),
                "macro_f1": float(m.f1_score(y.astype(int), pred, average="macro", labels=list(range(k)),
                                             zero_division=0)),
                "rows": float(len(y))}
    pred = (p >= threshold).astype(int)
    return {
        "auc": float(m.roc_auc_score(y, p)) if len(np.unique(y)) > 1 else float("nan"),
        "log_loss": float(m.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(m.precision_score(y, pred, zero_division=0)),
        "recall": float(m.recall_score(y, pred, zero_division=0)),
        "calibration_error": calibration_error(y, p),
        "positive_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width score bins."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            err += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(err)


def beats(name: str, new: float, old: float, margin: float) -> bool:
    """Whether ``new`` is better than ``old`` by at least ``margin`` in metric ``name``."""
    return new >= old + margin if name in HIGHER_IS_BETTER else new <= old - margin
