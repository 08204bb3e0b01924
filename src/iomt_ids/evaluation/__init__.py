"""Evaluation: metrics, figures and reports of predictions; scoring alerts against a timeline.

Pure functions of labels, probabilities and alert files: nothing here loads a model or
a bundle (that is :mod:`iomt_ids.workflows.evaluate`).

* :mod:`~iomt_ids.evaluation.metrics`: accuracy, weighted and macro P/R/F1, per class;
* :mod:`~iomt_ids.evaluation.plots`, :mod:`~iomt_ids.evaluation.report`: confusion matrices,
  curves, metrics.json and report.md; :mod:`~iomt_ids.evaluation.paper`: the papers' tables;
* :mod:`~iomt_ids.evaluation.timeline`: EVE alerts scored against an attack timeline;
* :mod:`~iomt_ids.evaluation.audit`: the dataset audit (duplicates, conflicts, leakage).

Names load on first use, so that importing one module does not import matplotlib for all.
"""

from __future__ import annotations

from iomt_ids._lazy import lazy_getattr

_LAZY = {
    "compute_metrics": "metrics",
    "confusion": "metrics",
    "evaluate_predictions": "report",
    "write_metrics": "report",
    "write_report_md": "report",
    "plot_confusion_matrix": "plots",
    "plot_history": "plots",
    "PAPER_RESULTS": "paper",
    "TimelineScore": "timeline",
    "score_timeline": "timeline",
    "audit_dataset": "audit",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, {k: f".{v}" for k, v in _LAZY.items()})
