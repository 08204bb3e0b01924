"""iomt-ids: intrusion detection for Internet of Medical Things networks."""

from __future__ import annotations

from iomt_ids.exceptions import (
    BadValueError,
    BundleError,
    CaptureError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    IomtIdsError,
    SchemaError,
    UnknownFileNameError,
)

__version__ = "0.1.0"

# Heavy parts (torch, pandas, the capture code) load on first use, so that
# ``import iomt_ids`` stays cheap: name -> module that defines it.
_LAZY = {
    "Detector": "iomt_ids.detection",
    "ModelBundle": "iomt_ids.artifacts",
    "RunConfig": "iomt_ids.training",
    "WindowExtractor": "iomt_ids.features",
    "extract_file": "iomt_ids.features",
    "fit_bundle": "iomt_ids.training",
    "load_bundle": "iomt_ids.artifacts",
    "load_dataset": "iomt_ids.data.loader",
    "read_capture": "iomt_ids.features",
    "run_detection": "iomt_ids.detection",
    "train_run": "iomt_ids.training",
}

__all__ = [
    "BadValueError",
    "BundleError",
    "CaptureError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "Detector",
    "IomtIdsError",
    "ModelBundle",
    "RunConfig",
    "SchemaError",
    "UnknownFileNameError",
    "WindowExtractor",
    "__version__",
    "extract_file",
    "fit_bundle",
    "load_bundle",
    "load_dataset",
    "read_capture",
    "run_detection",
    "train_run",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'iomt_ids' has no attribute {name!r}")
