"""Classification metrics: the papers' (accuracy, weighted P/R/F1) and honest ones (macro, per class)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)

__all__ = ["compute_metrics", "confusion"]


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of integer-coded predictions.

    Returns a dict with ``accuracy``, ``weighted_precision/recall/f1``,
    ``macro_precision/recall/f1`` (over classes present in ``y_true`` or ``y_pred``),
    ``per_class`` (name -> precision, recall, f1, support for every class) and
    ``report`` (scikit-learn's text classification report).
    """
    labels = list(range(len(classes)))
    present = sorted(set(np.unique(y_true)) | set(np.unique(y_pred)))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=present, average=avg, zero_division=0
        )
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(classes)
    }
    out["report"] = classification_report(
        y_true, y_pred, labels=labels, target_names=list(classes), zero_division=0, digits=4
    )
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (rows = true class, columns = predicted) over all classes."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
