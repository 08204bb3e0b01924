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

__all__ = [
    "BadValueError",
    "BundleError",
    "CaptureError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "IomtIdsError",
    "SchemaError",
    "UnknownFileNameError",
    "__version__",
]
