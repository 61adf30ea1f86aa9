"""The binary threshold and the training plots (numpy in, PNG files out); the metrics are :mod:`fti.objectives`'."""

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


def plots(folder: Path, *, objective: str = "binary", y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray,
          p_test: np.ndarray, importance: dict[str, float], features: Sequence[str]) -> list[Path]:
    """Feature importance and the objective's pictures as PNG files: ROC, calibration and score histogram
    (binary); predicted against actual and residuals (regression); the confusion matrix (multiclass)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(features))))
    names = sorted(features, key=lambda f: importance.get(f, 0.0))
    ax.barh(names, [importance.get(f, 0.0) for f in names])
    ax.set(xlabel="total gain", title="feature importance")
    out.append(_save(fig, folder / "feature_importance.png"))
    if objective == "regression":
        return out + _regression_plots(folder, y_test, p_test)
    if objective == "multiclass":
        return out + _confusion_plot(folder, y_test, p_test)
    return out + _binary_plots(folder, y_val, p_val, y_test, p_test)


def _binary_plots(folder: Path, y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray,
                  p_test: np.ndarray) -> list[Path]:
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    out = []
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, y, p in (("validation", y_val, p_val), ("test", y_test, p_test)):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend()
    out.append(_save(fig, folder / "roc.png"))
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
    ax.hist(p_test[y_test == 0], bins=40, alpha=0.6, label="label 0", density=True)
    ax.hist(p_test[y_test == 1], bins=40, alpha=0.6, label="label 1", density=True)
    ax.set(xlabel="score", title="score histogram (test)")
    ax.legend()
    out.append(_save(fig, folder / "score_histogram.png"))
    return out


def _regression_plots(folder: Path, y: np.ndarray, p: np.ndarray) -> list[Path]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y, p, s=4, alpha=0.4)
    low, high = float(min(np.min(y), np.min(p))), float(max(np.max(y), np.max(p)))
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="predicted vs actual (test)")
    first = _save(fig, folder / "predicted_vs_actual.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(p - y, bins=50)
    ax.set(xlabel="predicted - actual", title="residuals (test)")
    return [first, _save(fig, folder / "residuals.png")]


def _confusion_plot(folder: Path, y: np.ndarray, p: np.ndarray) -> list[Path]:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    probs = np.asarray(p).reshape(len(y), -1)
    k = probs.shape[1]
    matrix = confusion_matrix(np.asarray(y).astype(int), probs.argmax(axis=1), labels=list(range(k)))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center")
    ax.set(xlabel="predicted class", ylabel="actual class", title="confusion matrix (test)",
           xticks=range(k), yticks=range(k))
    return [_save(fig, folder / "confusion_matrix.png")]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
