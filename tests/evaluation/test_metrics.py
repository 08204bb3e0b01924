from __future__ import annotations

import numpy as np

from iomt_ids.evaluation.metrics import compute_metrics, confusion
from iomt_ids.evaluation.plots import plot_class_distribution, plot_confusion_matrix


def test_macro_and_weighted_differ_on_imbalanced_classes() -> None:
    # 98 rows of class 0 all right; class 1 (2 rows) always wrong
    y_true = np.array([0] * 98 + [1] * 2)
    y_pred = np.zeros(100, dtype=int)
    m = compute_metrics(y_true, y_pred, ["big", "small", "absent"])
    assert m["accuracy"] == 0.98
    assert m["weighted_f1"] > 0.97
    assert abs(m["macro_f1"] - (2 * 0.98 / 1.98) / 2) < 1e-9  # absent class does not count
    assert m["per_class"]["small"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["absent"]["support"] == 0
    assert "small" in m["report"]


def test_confusion_matrix_and_figures() -> None:
    cm = confusion(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    fig = plot_confusion_matrix(cm, ["a", "b", "c"], normalize=True)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"1.00", "0.50"} <= texts
    fig2 = plot_class_distribution({"train": {"a": 10, "b": 1000}, "test": {"a": 3}})
    assert fig2.axes[0].get_xscale() == "log"
