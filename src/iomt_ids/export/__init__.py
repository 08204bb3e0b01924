"""Deployment exports: ONNX graphs with preprocessing folded in, and an inference-only model rewrite."""

from __future__ import annotations

from iomt_ids.export.inference import InferenceModel, inference_module, optimize_for_inference
from iomt_ids.export.onnx import ONNX_FILE, OnnxScorer, export_onnx, onnxruntime_available, parity

__all__ = [
    "ONNX_FILE",
    "InferenceModel",
    "OnnxScorer",
    "export_onnx",
    "inference_module",
    "onnxruntime_available",
    "optimize_for_inference",
    "parity",
]
