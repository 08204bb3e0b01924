"""What the service needs from a model bundle, and the guarded call that scores a batch.

The service is written against the :class:`Scorer` protocol rather than the
concrete :class:`iomt_ids.artifacts.ModelBundle`, so that the HTTP layer only
depends on the few attributes it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from iomt_ids.exceptions import BadValueError

__all__ = ["Scorer", "score_rows"]


@runtime_checkable
class Scorer(Protocol):
    """The part of a model bundle the scoring service uses."""

    @property
    def classes(self) -> Sequence[str]: ...

    @property
    def task(self) -> int: ...

    @property
    def release(self) -> str: ...

    @property
    def input_columns(self) -> Sequence[str]: ...

    @property
    def model_name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def nan_allowed_columns(self) -> Sequence[str]: ...

    @property
    def inf_allowed_columns(self) -> Sequence[str]: ...

    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...


def score_rows(scorer: Scorer, rows: np.ndarray) -> np.ndarray:
    """Score ``rows`` and check that every row got finite probabilities.

    Parameters
    ----------
    scorer : Scorer
        The loaded model bundle.
    rows : numpy.ndarray
        ``(n_rows, n_columns)`` float64 raw values, columns in ``scorer.input_columns``
        order, NaN/inf only where the bundle's policy allows them.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_classes)`` float64 probabilities.

    Raises
    ------
    BadValueError
        When the model returns non-finite scores for some rows (values so large that
        scaling overflows), naming the first such rows.
    """
    # Huge finite inputs may overflow float32 scaling; that shows up as non-finite
    # probabilities, answered below as a 422, so numpy's overflow warnings are noise here.
    with np.errstate(over="ignore", invalid="ignore"):
        proba = np.asarray(scorer.predict_proba(rows), dtype=np.float64)
    expected = (len(rows), len(scorer.classes))
    if proba.shape != expected:
        raise BadValueError(f"model returned probabilities of shape {proba.shape}; expected {expected}.")
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        first = np.flatnonzero(bad)[:10].tolist()
        raise BadValueError(
            f"rows {first}: the model produced non-finite scores; feature values are too large "
            f"for the model's scaling (keep absolute values below about 1e30)."
        )
    return proba
