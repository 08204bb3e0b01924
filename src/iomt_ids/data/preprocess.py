"""Cleaning policy, zero-variance removal and scaling, fitted on train only.

Cleaning policy (the same at training, evaluation, capture and serving time)
----------------------------------------------------------------------------
Real CICIoMT2024 rows hold two kinds of special values:

* ``Rate = +inf``: every packet of the window shares one timestamp (a zero time
  span). It is replaced by the **largest finite value of that column seen in
  training** (``inf_caps``), i.e. "as fast as the fastest finite window seen".
  Finite values above the cap are kept; scaling handles them. ``-inf`` takes the
  smallest finite training value. Only the rate columns (``Rate``, ``Srate``,
  ``Drate``) may hold infinities; anywhere else they are an error.
* ``Std`` (and ``Variance``) empty / NaN: a one-packet window has no spread. It is
  replaced by **0**. Only these columns may be missing; a missing value anywhere
  else is an error that names the column and the row.

No NaN or inf ever reaches a model. The fitted numbers live in the bundle as JSON
(no pickle). Scikit-learn fits the variance filter and the scaler; their fitted
attributes are stored and applied with NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.feature_selection import VarianceThreshold
from sklearn.preprocessing import StandardScaler

from iomt_ids.exceptions import BadValueError, SchemaError

__all__ = [
    "INF_ALLOWED",
    "NAN_ALLOWED",
    "NAN_FILL",
    "Preprocessor",
    "check_special_values",
]

#: Columns where +/-inf is a legitimate raw value (capped by the fitted policy).
INF_ALLOWED: frozenset[str] = frozenset({"Rate", "Srate", "Drate"})
#: Columns where NaN / empty is a legitimate raw value (filled with NAN_FILL).
NAN_ALLOWED: frozenset[str] = frozenset({"Std", "Variance"})
NAN_FILL = 0.0


def check_special_values(x: np.ndarray, columns: Sequence[str], source: str = "input") -> None:
    """Raise :class:`BadValueError` for NaN or inf in a column where the policy allows none."""
    nan = np.isnan(x)
    inf = np.isinf(x)
    for j, col in enumerate(columns):
        if col not in NAN_ALLOWED and nan[:, j].any():
            row = int(np.flatnonzero(nan[:, j])[0])
            raise BadValueError(
                f"{source}: column {col!r} is missing/NaN in {int(nan[:, j].sum())} row(s), first at row "
                f"{row}; only {sorted(NAN_ALLOWED)} may be empty."
            )
        if col not in INF_ALLOWED and inf[:, j].any():
            row = int(np.flatnonzero(inf[:, j])[0])
            raise BadValueError(
                f"{source}: column {col!r} is infinite in {int(inf[:, j].sum())} row(s), first at row "
                f"{row}; only {sorted(INF_ALLOWED)} may be infinite."
            )


@dataclass
class Preprocessor:
    """Clean, select and scale feature rows; ``fit`` on train only.

    Parameters
    ----------
    input_columns: the release's columns, in order; ``transform`` expects them.
    drop_columns: columns removed before fitting (feature sets such as "robust").
    log_columns: columns transformed with ``sign(x)·log1p(|x|)`` before scaling (heavy tails).
    scale: apply standard scaling (deep models); trees use ``scale=False``.

    Attributes
    ----------
    kept_columns_: columns left after dropping and the zero-variance filter.
    inf_caps_: per input column, (smallest, largest) finite value seen in training.
    mean_, scale_: the StandardScaler's fitted numbers for ``kept_columns_``.
    zero_variance_: columns removed because they were constant in training.
    """

    input_columns: tuple[str, ...]
    drop_columns: tuple[str, ...] = ()
    log_columns: tuple[str, ...] = ()
    scale: bool = True
    kept_columns_: tuple[str, ...] = field(default=(), init=False)
    zero_variance_: tuple[str, ...] = field(default=(), init=False)
    inf_caps_: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)
    mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    scale_: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.input_columns = tuple(self.input_columns)
        unknown = [c for c in (*self.drop_columns, *self.log_columns) if c not in self.input_columns]
        if unknown:
            raise SchemaError(
                f"Preprocessor: columns {unknown} are not input columns {list(self.input_columns)}."
            )

    # -- cleaning ---------------------------------------------------------------
    def clean(self, x: np.ndarray, source: str = "input") -> np.ndarray:
        """Apply the cleaning policy to raw rows (float64 copy, input column order)."""
        x = np.array(x, dtype=np.float64, copy=True)
        if x.ndim != 2 or x.shape[1] != len(self.input_columns):
            raise SchemaError(
                f"{source}: expected rows of {len(self.input_columns)} columns {list(self.input_columns)}; "
                f"got shape {x.shape} instead."
            )
        check_special_values(x, self.input_columns, source)
        for j, col in enumerate(self.input_columns):
            if col in NAN_ALLOWED:
                col_x = x[:, j]
                col_x[np.isnan(col_x)] = NAN_FILL
            if col in INF_ALLOWED and self.inf_caps_:
                lo, hi = self.inf_caps_[col]
                col_x = x[:, j]
                col_x[col_x == np.inf] = hi
                col_x[col_x == -np.inf] = lo
        return x

    def _fit_caps(self, x: np.ndarray) -> None:
        caps: dict[str, tuple[float, float]] = {}
        for j, col in enumerate(self.input_columns):
            finite = x[:, j][np.isfinite(x[:, j])]
            caps[col] = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        self.inf_caps_ = caps

    # -- fit / transform --------------------------------------------------------
    def fit(self, x: np.ndarray, source: str = "train") -> Preprocessor:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] < 2:
            raise BadValueError(f"{source}: need at least 2 rows to fit preprocessing; got {x.shape[0]}.")
        check_special_values(x, self.input_columns, source)
        self._fit_caps(x)
        x = self.clean(x, source)
        keep_idx = [j for j, c in enumerate(self.input_columns) if c not in self.drop_columns]
        x = self._log(x)[:, keep_idx]
        vt = VarianceThreshold(threshold=0.0).fit(x)
        support = vt.get_support()
        names = [self.input_columns[j] for j in keep_idx]
        self.kept_columns_ = tuple(n for n, s in zip(names, support, strict=True) if s)
        self.zero_variance_ = tuple(n for n, s in zip(names, support, strict=True) if not s)
        if not self.kept_columns_:
            raise BadValueError(f"{source}: every feature is constant; nothing to learn from.")
        x = x[:, support]
        if self.scale:
            sc = StandardScaler().fit(x)
            self.mean_, self.scale_ = sc.mean_.astype(np.float64), sc.scale_.astype(np.float64)
        else:
            self.mean_ = np.zeros(x.shape[1])
            self.scale_ = np.ones(x.shape[1])
        return self

    def _log(self, x: np.ndarray) -> np.ndarray:
        for col in self.log_columns:
            j = self.input_columns.index(col)
            x[:, j] = np.sign(x[:, j]) * np.log1p(np.abs(x[:, j]))
        return x

    def transform(self, x: np.ndarray, source: str = "input") -> np.ndarray:
        """Raw rows (input column order) -> cleaned, selected, scaled float32 rows."""
        if self.mean_ is None or self.scale_ is None:
            raise BadValueError("Preprocessor is not fitted; call fit() on training rows first.")
        x = self._log(self.clean(x, source))
        idx = [self.input_columns.index(c) for c in self.kept_columns_]
        out = (x[:, idx] - self.mean_) / self.scale_
        # values far outside anything seen in training must not overflow to inf in float32
        big = float(np.finfo(np.float32).max)
        return np.clip(out, -big, big).astype(np.float32)

    def fit_transform(self, x: np.ndarray, source: str = "train") -> np.ndarray:
        return self.fit(x, source).transform(x, source)

    @property
    def n_features_out(self) -> int:
        return len(self.kept_columns_)

    # -- persistence (JSON, no pickle) -------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "input_columns": list(self.input_columns),
            "drop_columns": list(self.drop_columns),
            "log_columns": list(self.log_columns),
            "scale": self.scale,
            "kept_columns": list(self.kept_columns_),
            "zero_variance": list(self.zero_variance_),
            "inf_caps": {k: list(v) for k, v in self.inf_caps_.items()},
            "mean": None if self.mean_ is None else self.mean_.tolist(),
            "std": None if self.scale_ is None else self.scale_.tolist(),
            "policy": {
                "inf": f"+inf/-inf in {sorted(INF_ALLOWED)} -> largest/smallest finite training value",
                "nan": f"NaN in {sorted(NAN_ALLOWED)} -> {NAN_FILL}; elsewhere an error",
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        p = cls(
            input_columns=tuple(d["input_columns"]),
            drop_columns=tuple(d.get("drop_columns", ())),
            log_columns=tuple(d.get("log_columns", ())),
            scale=bool(d.get("scale", True)),
        )
        p.kept_columns_ = tuple(d["kept_columns"])
        p.zero_variance_ = tuple(d.get("zero_variance", ()))
        p.inf_caps_ = {k: (float(v[0]), float(v[1])) for k, v in d["inf_caps"].items()}
        p.mean_ = None if d["mean"] is None else np.asarray(d["mean"], dtype=np.float64)
        p.scale_ = None if d["std"] is None else np.asarray(d["std"], dtype=np.float64)
        return p
