"""Site adaptation: learn a site's normal traffic from a short benign capture.

* :mod:`~iomt_ids.adaptation.novelty`: :class:`NoveltyModel`, k-NN distance to the site's benign
  windows with a conformal threshold (a stated false-alarm bound).
* :mod:`~iomt_ids.adaptation.finetune`: continue training the classifier with the site's benign
  windows as Benign and replay of its own training rows; attack recall before/after.
* :mod:`~iomt_ids.adaptation.site`: :class:`SiteBundle` (SITE_DIR on disk, hash-checked).
* :mod:`~iomt_ids.workflows.adapt`: :func:`adapt_site`, what ``iomt-ids adapt`` runs.

The detector that uses a site bundle is :class:`iomt_ids.detection.site.SiteDetector`.
"""

from __future__ import annotations

from iomt_ids.adaptation.novelty import NoveltyModel, conformal_threshold
from iomt_ids.adaptation.site import SiteBundle, is_site_dir, load_site

__all__ = ["NoveltyModel", "SiteBundle", "conformal_threshold", "is_site_dir", "load_site"]
