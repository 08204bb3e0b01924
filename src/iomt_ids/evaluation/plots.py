"""Figures: confusion matrices, training and boosting curves, class distributions, per-class F1 heat maps.

Every function takes arrays (and an optional ``ax``) and returns the figure; saving
belongs to :mod:`iomt_ids.evaluation.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files, never shown

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["plot_class_distribution", "plot_confusion_matrix", "plot_f1_heatmap", "plot_history"]


def plot_confusion_matrix(
    cm: np.ndarray, classes: Sequence[str], normalize: bool = False, title: str = "", ax: Any = None
) -> Figure:
    """Confusion matrix; with ``normalize`` each row (true class) sums to 1."""
    n = len(classes)
    if ax is None:
        size = max(5.0, 0.55 * n + 2)
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    values = cm.astype(np.float64)
    if normalize:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix (counts)"))
    if n <= 20:
        thresh = values.max() / 2 if values.size else 0
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if v == 0:
                    continue
                text = f"{v:.2f}" if normalize else f"{int(v)}"
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=6, color="white" if v > thresh else "black"
                )
    fig.tight_layout()
    return fig


def plot_history(
    history: Sequence[Mapping[str, Any]],
    title: str = "",
    xlabel: str | None = None,
    best: int | None = None,
) -> Figure:
    """Accuracy and loss per step, train vs validation: the papers' training curves, or a tree model's curve.

    A step is an epoch (deep models), a boosting iteration (LightGBM) or the number of
    trees voting (random forest): records that carry ``"trees"`` are drawn against it.
    ``xlabel`` names the axis (default: "epoch", or "trees" for such records); ``best``
    (the kept step, e.g. ``history.best_epoch``) is marked with a dashed line. Curves of
    more than 30 points are drawn without markers.
    """
    trees = bool(history) and all("trees" in r for r in history)
    steps = [r["trees"] if trees else r["epoch"] for r in history]
    xlabel = xlabel or ("trees" if trees else "epoch")
    marker = "o" if len(steps) <= 30 else None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [r.get(key, float("nan")) for r in history]
            if any(v is not None and np.isfinite(v) for v in values):
                ax.plot(steps, values, marker=marker, label=label)
        if best is not None and 1 <= best <= len(steps):
            ax.axvline(
                steps[best - 1], color="grey", linestyle="--", linewidth=1, label=f"kept ({steps[best - 1]})"
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_class_distribution(
    counts: Mapping[str, Mapping[str, int]], title: str = "", ax: Any = None
) -> Figure:
    """Horizontal bars of rows per class for each split (log scale: classes span 3 orders of magnitude).

    ``counts`` maps split name (e.g. "train", "test") -> class -> rows.
    """
    splits = list(counts)
    classes = sorted({c for d in counts.values() for c in d})
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, max(3.0, 0.35 * len(classes) + 1.5)))
    else:
        fig = ax.figure
    height = 0.8 / max(1, len(splits))
    y = np.arange(len(classes))
    for k, split in enumerate(splits):
        vals = [counts[split].get(c, 0) for c in classes]
        ax.barh(y + k * height, vals, height=height, label=split)
    ax.set_yticks(y + height * (len(splits) - 1) / 2, labels=classes, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("rows (log scale)")
    ax.set_title(title or "class distribution")
    ax.legend()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_f1_heatmap(f1: np.ndarray, rows: Sequence[str], classes: Sequence[str], title: str = "") -> Figure:
    """Per-class F1 of several models (rows) as a heat map with the values written in."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) + 3), max(2.5, 0.45 * len(rows) + 1.8)))
    im = ax.imshow(f1, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(classes)), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    for i in range(f1.shape[0]):
        for j in range(f1.shape[1]):
            ax.text(j, i, f"{f1[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title(title or "per-class F1")
    fig.tight_layout()
    return fig
