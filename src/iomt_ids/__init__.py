"""iomt-ids: intrusion detection for Internet of Medical Things networks."""

from __future__ import annotations

from iomt_ids._lazy import lazy_getattr
from iomt_ids.exceptions import (
    BadValueError,
    BundleError,
    CaptureError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    IomtIdsError,
    NotFittedError,
    SchemaError,
    UnknownFileNameError,
)

__version__ = "0.1.0"

# Heavy parts (torch, pandas, the capture code) load on first use, so that
# ``import iomt_ids`` stays cheap: name -> module that defines it.
_LAZY = {
    "DetectConfig": "iomt_ids.detection",
    "Detector": "iomt_ids.detection",
    "History": "iomt_ids.training",
    "ModelBundle": "iomt_ids.artifacts",
    "PcapSource": "iomt_ids.detection",
    "RunConfig": "iomt_ids.workflows",
    "TrainConfig": "iomt_ids.training",
    "WindowExtractor": "iomt_ids.features",
    "extract_file": "iomt_ids.features",
    "fit_bundle": "iomt_ids.workflows",
    "load_bundle": "iomt_ids.artifacts",
    "load_dataset": "iomt_ids.data.loader",
    "predict_csv": "iomt_ids.scoring",
    "read_capture": "iomt_ids.features",
    "run_detection": "iomt_ids.detection",
    "train_run": "iomt_ids.workflows",
}

__all__ = [
    "BadValueError",
    "BundleError",
    "CaptureError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "DetectConfig",
    "Detector",
    "History",
    "IomtIdsError",
    "ModelBundle",
    "NotFittedError",
    "PcapSource",
    "RunConfig",
    "SchemaError",
    "TrainConfig",
    "UnknownFileNameError",
    "WindowExtractor",
    "__version__",
    "extract_file",
    "fit_bundle",
    "load_bundle",
    "load_dataset",
    "predict_csv",
    "read_capture",
    "run_detection",
    "train_run",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
