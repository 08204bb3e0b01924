"""Per-preset preprocessing and model sizes (what a preset changes besides the optimiser).

The ``paper`` and ``fast`` presets use the papers' preprocessing (standard scaling of
the raw columns) and the default model sizes. The ``tuned`` preset, chosen on the
validation split only (see ``docs/results/compare/``), also

* applies ``sign(x)·log1p(|x|)`` to the heavy-tailed columns (:data:`HEAVY_TAILED`)
  before scaling, and
* widens the models (:data:`TUNED_MODEL_KWARGS`).

The ``deep`` preset (chosen on the validation split only by ``benchmarks/deep_search.py``,
see ``docs/results/deep-search/``) keeps the tuned preprocessing and widens the dense
layers once more (:data:`DEEP_MODEL_KWARGS`); its optimiser adds label smoothing 0.1.

Tree models get the same cleaning and feature set but no scaling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.features.feature_sets import drop_columns_for
from iomt_ids.features.schema import detect_release
from iomt_ids.models import DEEP_MODELS

__all__ = ["DEEP_MODEL_KWARGS", "HEAVY_TAILED", "TUNED_MODEL_KWARGS", "model_kwargs_for", "preprocessor_for"]

#: Columns whose values span several orders of magnitude (counts, sizes, rates, times).
HEAVY_TAILED: tuple[str, ...] = (
    "Header_Length", "Rate", "Srate", "Drate", "ack_count", "syn_count", "fin_count", "rst_count",
    "Tot sum", "Min", "Max", "AVG", "Std", "Tot size", "IAT", "Number", "Magnitue", "Radius",
    "Covariance", "Variance", "Weight",
)  # fmt: skip

#: Model arguments of the ``tuned`` preset.
TUNED_MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "dnn": {"dense_units": (256, 128), "dropout": 0.1},
    "lstm": {"rnn_units": (128,)},
    "gru": {"rnn_units": (128,)},
    "lstm_dnn": {"rnn_units": (128,), "dense_units": (256, 128), "dropout": 0.1},
    "gru_dnn": {"rnn_units": (128,), "dense_units": (256, 128), "dropout": 0.1},
}

#: Model arguments of the ``deep`` preset: dense layers 512-256 (validated on the DNN; the
#: hybrids take the same head after their tuned recurrent layer).
DEEP_MODEL_KWARGS: dict[str, dict[str, Any]] = {
    **TUNED_MODEL_KWARGS,
    "dnn": {"dense_units": (512, 256), "dropout": 0.1},
    "lstm_dnn": {"rnn_units": (128,), "dense_units": (512, 256), "dropout": 0.1},
    "gru_dnn": {"rnn_units": (128,), "dense_units": (512, 256), "dropout": 0.1},
}

_LOG_PRESETS = frozenset({"tuned", "deep"})
_MODEL_KWARGS: dict[str, dict[str, dict[str, Any]]] = {"tuned": TUNED_MODEL_KWARGS, "deep": DEEP_MODEL_KWARGS}


def preprocessor_for(
    model: str, preset: str, columns: Sequence[str], feature_set: str = "paper"
) -> Preprocessor:
    """The (unfitted) preprocessor of ``model`` under ``preset`` and ``feature_set``."""
    columns = tuple(columns)
    release = detect_release(list(columns), source="columns")
    drop = drop_columns_for(feature_set, release, columns)
    deep = model in DEEP_MODELS
    log_cols = (
        tuple(c for c in HEAVY_TAILED if c in columns and c not in drop)
        if deep and preset in _LOG_PRESETS
        else ()
    )
    return Preprocessor(input_columns=columns, drop_columns=drop, log_columns=log_cols, scale=deep)


def model_kwargs_for(model: str, preset: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Model arguments: the preset's defaults, overridden by ``given``."""
    base = dict(_MODEL_KWARGS.get(preset, {}).get(model, {}))
    base.update(given or {})
    return base
