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
(no pickle). Fitting and transforming run over blocks of rows (the full dataset is
8.7 M rows): the scaler is scikit-learn's ``StandardScaler.partial_fit``, the
zero-variance filter keeps ``VarianceThreshold(0)``'s rule (a column stays when its
peak-to-peak range on the cleaned training rows is above 0), and the fitted
numbers are applied with NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.preprocessing import StandardScaler

from iomt_ids.exceptions import BadValueError, NotFittedError, SchemaError

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
#: Rows per block in fit/transform: bounds the temporary memory to a few hundred MB.
_BLOCK = 1 << 19


def _as_rows(x: Any) -> np.ndarray | pl.DataFrame:
    return x if isinstance(x, pl.DataFrame) else np.asarray(x)


#: The two special-value rules: (test, the columns where it is allowed, what the value is, what they may be).
_SPECIAL_RULES: tuple[tuple[Any, frozenset[str], str, str], ...] = (
    (np.isnan, NAN_ALLOWED, "missing/NaN", "be empty"),
    (np.isinf, INF_ALLOWED, "infinite", "be infinite"),
)


def check_special_values(
    x: np.ndarray, columns: Sequence[str], source: str = "input", row_offset: int = 0
) -> None:
    """Raise :class:`BadValueError` for NaN or inf in a column where the policy allows none.

    NaN is checked before inf, each column in order. ``row_offset`` is added to the row
    numbers in the message (for blocks of a larger array).
    """
    for is_special, allowed, what, may in _SPECIAL_RULES:
        for j in np.flatnonzero(is_special(x).any(axis=0)):
            col = columns[j]
            if col in allowed:
                continue
            bad = is_special(x[:, j])
            row = row_offset + int(np.argmax(bad))
            raise BadValueError(
                f"{source}: column {col!r} is {what} in {int(bad.sum())} row(s), first at row "
                f"{row}; only {sorted(allowed)} may {may}."
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
    def _check_width(self, x: np.ndarray | pl.DataFrame, source: str) -> None:
        if isinstance(x, pl.DataFrame):
            if list(x.columns) != list(self.input_columns):
                raise SchemaError(
                    f"{source}: expected the columns {list(self.input_columns)} in this order; "
                    f"got {list(x.columns)} instead."
                )
            return
        if x.ndim != 2 or x.shape[1] != len(self.input_columns):
            raise SchemaError(
                f"{source}: expected rows of {len(self.input_columns)} columns {list(self.input_columns)}; "
                f"got shape {x.shape} instead."
            )

    def _plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Column indices of the cleaning, log and selection steps (cached; recomputed if the fit changes).

        Returns NaN-allowed columns, inf-allowed columns with their (low, high) caps, log
        columns and kept columns, as index arrays: one vectorised step each instead of a
        Python loop over columns (a one-row call is dominated by that loop otherwise).
        """
        caps = self.inf_caps_
        key = (self.input_columns, self.kept_columns_, tuple(self.log_columns))
        cached = self.__dict__.get("_plan_cache")
        # the cache holds the caps dict itself, so ``is`` cannot match a new dict at a reused address
        if cached is not None and cached[1] is caps and cached[0] == key:
            return cached[2]
        cols = self.input_columns
        inf_cols = [(j, c) for j, c in enumerate(cols) if c in INF_ALLOWED] if caps else []
        plan = (
            np.array([j for j, c in enumerate(cols) if c in NAN_ALLOWED], dtype=np.intp),
            np.array([j for j, _ in inf_cols], dtype=np.intp),
            np.array([caps[c][0] for _, c in inf_cols], dtype=np.float64),
            np.array([caps[c][1] for _, c in inf_cols], dtype=np.float64),
            np.array([cols.index(c) for c in self.log_columns], dtype=np.intp),
            np.array([cols.index(c) for c in self.kept_columns_], dtype=np.intp),
        )
        self.__dict__["_plan_cache"] = (key, caps, plan)
        return plan

    def _clean_inplace(
        self, x: np.ndarray, source: str, row_offset: int = 0, check: bool = True
    ) -> np.ndarray:
        if check:
            if np.isfinite(x).all():  # the usual case: nothing to refuse, nothing to replace
                return x
            check_special_values(x, self.input_columns, source, row_offset)
        nan_idx, inf_idx, lo, hi, _, _ = self._plan()
        if len(nan_idx):
            sub = x[:, nan_idx]
            missing = np.isnan(sub)
            if missing.any():
                sub[missing] = NAN_FILL
                x[:, nan_idx] = sub
        if len(inf_idx):
            sub = x[:, inf_idx]
            pos, neg = sub == np.inf, sub == -np.inf
            if pos.any() or neg.any():
                x[:, inf_idx] = np.where(pos, hi, np.where(neg, lo, sub))
        return x

    def clean(self, x: np.ndarray, source: str = "input") -> np.ndarray:
        """Apply the cleaning policy to raw rows (float64 copy, input column order)."""
        x = np.array(x, dtype=np.float64, copy=True)
        self._check_width(x, source)
        return self._clean_inplace(x, source)

    # -- fit / transform --------------------------------------------------------
    # Both work on blocks of rows, so that the full dataset (8.7 M rows) never
    # exists as more than the caller's input plus the float32 output. The input may
    # be a polars table (the loader's), read block by block without a float64 copy
    # of the whole table.
    def _blocks(
        self, x: np.ndarray | pl.DataFrame, rows: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, float64 copy of a block of the selected rows; missing cells as NaN)."""
        n = x.shape[0] if rows is None else len(rows)
        for start in range(0, n, _BLOCK):
            sel = slice(start, start + _BLOCK) if rows is None else rows[start : start + _BLOCK]
            if isinstance(x, pl.DataFrame):
                part = x.slice(start, _BLOCK) if rows is None else x[sel]
                # column-major, as the column-wise cleaning and statistics read it; polars writes
                # missing float cells as NaN, as the array path holds them
                yield start, np.require(part.to_numpy(), dtype=np.float64, requirements=["F", "W"])
            else:
                yield start, np.array(x[sel], dtype=np.float64, copy=True)

    def _prepare(
        self, block: np.ndarray, source: str, offset: int, columns: list[int], check: bool = True
    ) -> np.ndarray:
        """Clean, log-transform and select ``columns`` of one block (no scaling)."""
        block = self._log(self._clean_inplace(block, source, offset, check))
        return block[:, columns]

    def fit(
        self, x: np.ndarray | pl.DataFrame, source: str = "train", rows: np.ndarray | None = None
    ) -> Preprocessor:
        """Fit caps, the zero-variance filter and the scaler on ``x`` (or on ``x[rows]``).

        ``x``: raw rows in input column order, as an array or a polars table of those columns.
        """
        x = _as_rows(x)
        self._check_width(x, source)
        n = x.shape[0] if rows is None else len(rows)
        if n < 2:
            raise BadValueError(f"{source}: need at least 2 rows to fit preprocessing; got {n}.")
        # pass 1: validate and find the finite range of every column (the inf caps)
        width = len(self.input_columns)
        lo, hi = np.full(width, np.inf), np.full(width, -np.inf)
        self.inf_caps_ = {}
        for offset, block in self._blocks(x, rows):
            check_special_values(block, self.input_columns, source, offset)
            finite = np.isfinite(block)
            lo = np.minimum(lo, np.where(finite, block, np.inf).min(axis=0))
            hi = np.maximum(hi, np.where(finite, block, -np.inf).max(axis=0))
        self.inf_caps_ = {
            c: (float(lo[j]), float(hi[j])) if np.isfinite(lo[j]) else (0.0, 0.0)
            for j, c in enumerate(self.input_columns)
        }
        # pass 2: scaler statistics and the peak-to-peak range of the cleaned columns
        selected = [j for j, c in enumerate(self.input_columns) if c not in self.drop_columns]
        scaler = StandardScaler()
        mn = np.full(len(selected), np.inf)
        mx = np.full(len(selected), -np.inf)
        for offset, block in self._blocks(x, rows):
            b = self._prepare(block, source, offset, selected, check=False)  # validated in pass 1
            scaler.partial_fit(b)
            mn, mx = np.minimum(mn, b.min(axis=0)), np.maximum(mx, b.max(axis=0))
        # VarianceThreshold(0) semantics: a column is kept when its peak-to-peak range is > 0
        support = (mx - mn) > 0
        names = [self.input_columns[j] for j in selected]
        self.kept_columns_ = tuple(n for n, keep in zip(names, support, strict=True) if keep)
        self.zero_variance_ = tuple(n for n, keep in zip(names, support, strict=True) if not keep)
        if not self.kept_columns_:
            raise BadValueError(f"{source}: every feature is constant; nothing to learn from.")
        if self.scale:
            self.mean_ = scaler.mean_[support].astype(np.float64)
            self.scale_ = scaler.scale_[support].astype(np.float64)
        else:
            self.mean_ = np.zeros(int(support.sum()))
            self.scale_ = np.ones(int(support.sum()))
        return self

    def _log(self, x: np.ndarray) -> np.ndarray:
        idx = self._plan()[4]
        if len(idx):
            sub = x[:, idx]
            x[:, idx] = np.sign(sub) * np.log1p(np.abs(sub))
        return x

    def transform(
        self, x: np.ndarray | pl.DataFrame, source: str = "input", rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw rows (input column order) -> cleaned, selected, scaled float32 rows (of ``x[rows]`` if given)."""
        if self.mean_ is None or self.scale_ is None:
            raise NotFittedError(
                "Preprocessor.transform: the preprocessor is not fitted; call fit() (or fit_transform()) "
                "on training rows first, or load a fitted one with Preprocessor.from_dict()."
            )
        x = _as_rows(x)
        self._check_width(x, source)
        kept = list(self._plan()[5])
        n = x.shape[0] if rows is None else len(rows)
        out = np.empty((n, len(self.kept_columns_)), dtype=np.float32)
        # values far outside anything seen in training must not overflow to inf in float32
        big = float(np.finfo(np.float32).max)
        for offset, block in self._blocks(x, rows):
            b = self._prepare(block, source, offset, kept)
            if self.scale:  # unscaled (trees): mean 0 and scale 1 would give the same values
                b = (b - self.mean_) / self.scale_
            np.clip(b, -big, big, out=out[offset : offset + len(b)], casting="same_kind")
        return out

    def fit_transform(
        self, x: np.ndarray | pl.DataFrame, source: str = "train", rows: np.ndarray | None = None
    ) -> np.ndarray:
        return self.fit(x, source, rows).transform(x, source, rows)

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
