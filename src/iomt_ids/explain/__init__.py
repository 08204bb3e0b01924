"""Per-alert explanations: which features pushed a row towards its attack class.

See :mod:`iomt_ids.explain.core` for the methods (LightGBM TreeSHAP, interventional
TreeSHAP for the NumPy forest, integrated gradients for the deep models) and
:mod:`iomt_ids.explain.treeshap` for the forest algorithm.
"""

from iomt_ids.explain.core import Attributions, attributions, explain_rows, format_explanation
from iomt_ids.explain.treeshap import forest_shap

__all__ = ["Attributions", "attributions", "explain_rows", "forest_shap", "format_explanation"]
