"""Write evaluation results: metrics.json, report.md and the figures (PNG)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from iomt_ids.evaluation.metrics import compute_metrics, confusion
from iomt_ids.evaluation.paper import paper_rows_for
from iomt_ids.evaluation.plots import plot_class_distribution, plot_confusion_matrix, plot_history

__all__ = ["evaluate_predictions", "save_figure", "write_metrics", "write_report_md"]


def save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    path.write_text(
        json.dumps(metrics, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )


def evaluate_predictions(
    out_dir: str | Path,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    *,
    info: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]] | None = None,
    class_counts: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """Compute metrics, write ``metrics.json``, the figures and ``report.md`` into ``out_dir``.

    ``info`` holds the run's context (task, model, rows, duplicates, data, split, seed ...)
    and is merged into metrics.json. A tree model's ``history`` (records with ``"trees"``:
    one per boosting iteration or per tree) is drawn as its boosting curve (or accuracy vs
    number of trees), and ``metrics["trees"]`` is the kept model's boosting rounds (or
    trees), read from the record at ``history.best_epoch``. Returns the metrics dict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(y_true, y_pred, classes)
    cm = confusion(y_true, y_pred, len(classes))
    metrics["confusion_matrix"] = cm.tolist()
    metrics["classes"] = list(classes)
    metrics.update(info)
    title = f"{info.get('model', '')} · {info.get('task', '')} classes"
    figures = {
        "confusion_matrix.png": plot_confusion_matrix(
            cm, classes, False, f"{title}: confusion matrix (counts)"
        ),
        "confusion_matrix_normalized.png": plot_confusion_matrix(
            cm, classes, True, f"{title}: confusion matrix (row-normalised)"
        ),
    }
    if history:
        figures["training_curves.png"] = _curves(history, info, title)
        kept = _kept_trees(history)
        if kept is not None:
            metrics["trees"] = kept
    if class_counts is None:
        class_counts = {"test": dict(Counter(np.asarray(classes, dtype=object)[y_true]))}
    figures["class_distribution.png"] = plot_class_distribution(class_counts, f"{title}: rows per class")
    for name, fig in figures.items():
        save_figure(fig, out / name)
    metrics["figures"] = sorted(figures)
    write_metrics(out / "metrics.json", metrics)
    write_report_md(out / "report.md", metrics)
    return metrics


def _kept_trees(history: Sequence[Mapping[str, Any]]) -> int | None:
    """Boosting rounds (LightGBM) or trees (forest) of the kept model: ``"trees"`` of the best record."""
    if not all("trees" in r for r in history):
        return None
    best = getattr(history, "best_epoch", None) or len(history)
    return int(history[min(max(int(best), 1), len(history)) - 1]["trees"])


def _curves(history: Sequence[Mapping[str, Any]], info: Mapping[str, Any], title: str) -> Any:
    """Training curves per epoch; for tree models the boosting validation curve or accuracy vs trees."""
    best = getattr(history, "best_epoch", None)
    if not all("trees" in r for r in history):
        return plot_history(history, f"{title}: training curves", best=best if len(history) > 1 else None)
    boosting = any(float(r.get("lr") or 0.0) > 0 for r in history)
    if boosting:
        return plot_history(history, f"{title}: boosting validation curve", "boosting iteration", best)
    return plot_history(history, f"{title}: accuracy and loss vs number of trees", "trees in the vote", best)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _given(m: Mapping[str, Any], key: str) -> bool:
    return m.get(key) not in (None, "", "?")


def _header_lines(m: Mapping[str, Any]) -> list[str]:
    """The run's context as bullet lines; a figure the run does not know is left out, never printed as '?'."""
    lines = []
    data = [f"`{m['data']}`"] if _given(m, "data") else []
    if _given(m, "release"):
        data.append(f"(release {m['release']})")
    parts = [f"data: {' '.join(data)}"] if data else []
    if _given(m, "split"):
        parts.append(f"split: {m['split']}")
    if parts:
        lines.append("- " + "; ".join(parts))
    if _given(m, "train_data") and m.get("train_data") != m.get("data"):
        lines.append(f"- trained on: `{m['train_data']}`")
    rows = [
        f"{label} {m[key]}"
        for label, key in (("train", "rows_train"), ("validation", "rows_val"), ("test", "rows_test"))
        if _given(m, key)
    ]
    if rows:
        lines.append(f"- rows: {', '.join(rows)}")
    if _given(m, "duplicates_dropped"):
        lines.append(f"- duplicates dropped: {m['duplicates_dropped']}")
    run = [f"{label}: {m[key]}" for label, key in (("preset", "preset"), ("seed", "seed")) if _given(m, key)]
    if _given(m, "trees"):  # a tree model: its steps are boosting iterations or trees
        ran = f"{m['epochs']} run, " if _given(m, "epochs") and m.get("epochs") != m.get("trees") else ""
        run.append(f"trees / boosting rounds: {ran}{m['trees']} kept")
    elif _given(m, "epochs"):
        best = f" (best {m['best_epoch']})" if _given(m, "best_epoch") else ""
        run.append(f"epochs run: {m['epochs']}{best}")
    if _given(m, "train_seconds"):
        on = f" on {m['device']}" if _given(m, "device") else ""
        run.append(f"training time: {float(m['train_seconds']):.1f} s{on}")
    if run:
        lines.append("- " + "; ".join(run))
    return lines


def write_report_md(path: Path, m: Mapping[str, Any]) -> None:
    """A human-readable report: our figures beside the papers', per-class table, figures."""
    task, model = m.get("task"), m.get("model", "?")
    lines = [
        f"# {model} · {task}-class · evaluation report",
        "",
        *_header_lines(m),
        "",
        "## Overall (percent)",
        "",
        "| source | accuracy | precision (w) | recall (w) | F1 (w) | macro-F1 |",
        "|---|---|---|---|---|---|",
        f"| **ours: {model}, this data** | {_pct(m['accuracy'])} | {_pct(m['weighted_precision'])} | "
        f"{_pct(m['weighted_recall'])} | {_pct(m['weighted_f1'])} | {_pct(m['macro_f1'])} |",
    ]
    if task in (2, 6, 19):
        for name, (a, p, r, f) in paper_rows_for(str(model), int(task)):
            lines.append(f"| paper: {name} (v1 release, full data) | {a} | {p} | {r} | {f} | not reported |")
    lines += [
        "",
        "The papers' figures come from the full 45-column release with its official split; they are shown for",
        "orientation, not as a like-for-like comparison. Macro-F1 weighs every class equally: it is the number",
        "that shows how the small classes fare.",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, pc in m["per_class"].items():
        lines.append(
            f"| {name} | {pc['precision']:.4f} | {pc['recall']:.4f} | {pc['f1']:.4f} | {pc['support']} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in m.get("figures", [])]
    lines += ["", "## Classification report", "", "```", str(m.get("report", "")).rstrip(), "```", ""]
    path.write_text("\n".join(lines))
