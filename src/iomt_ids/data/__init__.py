"""Data: CICIoMT2024 rows from CSV to clean, split, de-duplicated arrays.

* :mod:`~iomt_ids.data.labels`: class names of the 2/6/19-class tasks and the maps between them;
* :mod:`~iomt_ids.data.loader`: find and read the dataset's CSV files (polars), errors that name
  the file and column;
* :mod:`~iomt_ids.data.dedup`: duplicates within and across splits, row fingerprints;
* :mod:`~iomt_ids.data.preprocess`: the NaN/inf policy, feature selection and scaling;
* :mod:`~iomt_ids.data.split`, :mod:`~iomt_ids.data.protocols`: validation split and the
  capture-level evaluation protocols; :mod:`~iomt_ids.data.cache`: the parsed-CSV cache.

Names load on first use (``from iomt_ids.data import load_dataset``), so that importing
one module does not import polars or pandas for all.
"""

from __future__ import annotations

from iomt_ids._lazy import lazy_getattr

_LAZY = {
    "BENIGN": "labels",
    "CLASSES": "labels",
    "TASKS": "labels",
    "classes_for_task": "labels",
    "map_labels": "labels",
    "DatasetSplits": "loader",
    "LoadedData": "loader",
    "load_dataset": "loader",
    "read_rows": "loader",
    "DedupReport": "dedup",
    "dedup_splits": "dedup",
    "feature_fingerprints": "dedup",
    "Preprocessor": "preprocess",
    "PROTOCOLS": "protocols",
    "apply_protocol": "protocols",
    "stratified_split": "split",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, {k: f".{v}" for k, v in _LAZY.items()})
