"""Every error iomt-ids raises on purpose.

Tree::

    IomtIdsError (Exception)
     +-- DataError (ValueError)              bad input data
     |    +-- DatasetNotFoundError (FileNotFoundError)   folder or files missing
     |    +-- SchemaError                    wrong, missing or extra columns; mixed releases
     |    +-- UnknownFileNameError           a CSV name that maps to no class
     |    +-- BadValueError                  a cell that is not a number / not allowed
     +-- BundleError (ValueError)            a model bundle that cannot be loaded or used
     +-- CaptureError (OSError)              a capture file or interface that cannot be read
     +-- ConfigError (ValueError)            an invalid setting or argument
          +-- NotFittedError                 a fitted object used before it was fitted

Messages always name the culprit (file, column, field, parameter), say what was
expected and what came instead. A :class:`ConfigError` states the bound and the value;
a :class:`NotFittedError` says what to call first.
"""

from __future__ import annotations

__all__ = [
    "BadValueError",
    "BundleError",
    "CaptureError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "IomtIdsError",
    "NotFittedError",
    "SchemaError",
    "UnknownFileNameError",
]


class IomtIdsError(Exception):
    """Base class of all iomt-ids errors."""


class DataError(IomtIdsError, ValueError):
    """Input data is not what iomt-ids expects."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data folder or the CSV files below it do not exist."""


class SchemaError(DataError):
    """A file's columns are not one of the known CICIoMT2024 releases, or releases are mixed."""


class UnknownFileNameError(DataError):
    """A CSV file name that does not map to one of the 19 classes."""


class BadValueError(DataError):
    """A cell holds a value that is not a number, or a NaN/inf where none is allowed."""


class BundleError(IomtIdsError, ValueError):
    """A model bundle is missing, corrupt, or does not fit the input."""


class CaptureError(IomtIdsError, OSError):
    """A capture file or interface cannot be read."""


class ConfigError(IomtIdsError, ValueError):
    """An invalid configuration value or argument (the message states the bound and the value)."""


class NotFittedError(ConfigError):
    """An object that must be fitted first (e.g. a ``Preprocessor``) was used before ``fit``.

    A usage error, not bad data: the message says which method to call first.
    """
