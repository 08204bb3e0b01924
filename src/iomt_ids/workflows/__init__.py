"""Workflows: the jobs a user runs, composed from the layers below.

Training a bundle, reproducing the papers, comparing models over seeds, evaluating a
bundle on new rows, adapting a model to a site, scanning a capture archive. Nothing
below this package imports it; the CLI (one layer up) calls it.
"""

from __future__ import annotations

from iomt_ids._lazy import lazy_getattr

# name -> module that defines it; loaded on first use so that importing one workflow
# (e.g. ``scan`` in a worker process) does not import them all.
_LAZY = {
    "RunConfig": "iomt_ids.workflows.train",
    "fit_bundle": "iomt_ids.workflows.train",
    "prepare_splits": "iomt_ids.workflows.train",
    "train_run": "iomt_ids.workflows.train",
    "reproduce": "iomt_ids.workflows.reproduce",
    "evaluate_bundle": "iomt_ids.workflows.evaluate",
    "adapt_site": "iomt_ids.workflows.adapt",
    "AdaptConfig": "iomt_ids.workflows.adapt",
    "ScanConfig": "iomt_ids.workflows.scan",
    "run_scan": "iomt_ids.workflows.scan",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
