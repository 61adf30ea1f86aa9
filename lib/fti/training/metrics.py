"""Model quality metrics and plots (numpy in, numbers and PNG files out)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold that maximizes F1 (chosen on validation, stored with the model)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    best = int(np.nanargmax(f1[:-1])) if len(thresholds) else 0
    return float(thresholds[best]) if len(thresholds) else 0.5


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


def quality(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC, log loss, precision and recall at the threshold, calibration error, positive rate."""
    from sklearn.metrics import log_loss, precision_score, recall_score, roc_auc_score

    pred = (p >= threshold).astype(int)
    return {
        "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) > 1 else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "calibration_error": calibration_error(y, p),
        "positive_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }


def plots(folder: Path, *, y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray,
          importance: dict[str, float], features: Sequence[str]) -> list[Path]:
    """ROC, feature importance, calibration and score histogram as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, p in (("validation", y_val, p_val), ("test", y_test, p_test)):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend()
    out.append(_save(fig, folder / "roc.png"))
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(features))))
    names = sorted(features, key=lambda f: importance.get(f, 0.0))
    ax.barh(names, [importance.get(f, 0.0) for f in names])
    ax.set(xlabel="total gain", title="feature importance")
    out.append(_save(fig, folder / "feature_importance.png"))
    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p_test, edges[1:-1]), 0, 9)
    xs = [p_test[idx == b].mean() for b in range(10) if (idx == b).any()]
    ys = [y_test[idx == b].mean() for b in range(10) if (idx == b).any()]
    ax.plot(xs, ys, "o-", label="test")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="mean predicted", ylabel="observed rate", title="calibration")
    out.append(_save(fig, folder / "calibration.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(p_test[y_test == 0], bins=40, alpha=0.6, label="on time", density=True)
    ax.hist(p_test[y_test == 1], bins=40, alpha=0.6, label="delayed", density=True)
    ax.set(xlabel="score", title="score histogram (test)")
    ax.legend()
    out.append(_save(fig, folder / "score_histogram.png"))
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
