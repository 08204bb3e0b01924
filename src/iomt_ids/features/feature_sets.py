"""Named feature sets: which release columns a model may see.

* ``paper``: every column of the release; the preprocessor then drops the ones that
  are constant in training (what the papers do).
* ``robust``: ``paper`` minus the columns that identify the capture or the window
  size rather than the traffic, and minus exact duplicates of other columns
  (see ``specs/feature-extraction.md`` §6 and ``iomt-ids audit``):

  ======================  =====================================================
  release v2               removed
  ======================  =====================================================
  leaky                    ``Number`` (window size: 100 for TCP/IP DoS/DDoS, 10 else),
                           ``ack_count``, ``syn_count``, ``fin_count``, ``rst_count``
                           (= flag fraction x ``Number``: they carry the window size),
                           ``Tot sum`` (= ``AVG`` x ``Number``: with ``AVG`` it gives
                           ``Number`` back; alone it tells W = 100 from 10 with 0.99
                           balanced accuracy on the v2 sample)
  redundant                ``Tot size`` (= ``AVG``), ``LLC`` (= ``IPv``),
                           ``Variance`` (= ``Std``²)
  ======================  =====================================================

  For v1 the leaky set also holds ``IAT`` (a timestamp), ``Header_Length`` (cumulative
  from the start of the capture chunk), ``Weight`` (encodes the window size) and the
  redundant ``Srate`` (= ``Rate``), ``Drate`` (always 0) and ``Covariance`` (= ``Radius``²/2).

What ``robust`` cannot remove: the flag fractions still move in steps of 0.01 in
100-packet windows and 0.1 in 10-packet windows; ``iomt-ids audit`` measures how much
of the window size that granularity alone still reveals.
"""

from __future__ import annotations

from collections.abc import Sequence

from iomt_ids.exceptions import ConfigError
from iomt_ids.features.schema import columns_for

__all__ = ["FEATURE_SETS", "LEAKY", "REDUNDANT", "drop_columns_for"]

#: release -> columns that reveal the capture or window size rather than the traffic.
LEAKY: dict[str, tuple[str, ...]] = {
    "v2": ("Number", "ack_count", "syn_count", "fin_count", "rst_count", "Tot sum"),
    "v1": (
        "IAT",
        "Header_Length",
        "Number",
        "Weight",
        "ack_count",
        "syn_count",
        "fin_count",
        "rst_count",
        "Tot sum",
    ),
}

#: release -> columns that duplicate another column (exactly or by a formula).
REDUNDANT: dict[str, tuple[str, ...]] = {
    "v2": ("Tot size", "LLC", "Variance"),
    "v1": ("Tot size", "LLC", "Srate", "Drate", "Covariance"),
}

FEATURE_SETS: tuple[str, ...] = ("paper", "robust")


def drop_columns_for(feature_set: str, release: str, columns: Sequence[str] | None = None) -> tuple[str, ...]:
    """Columns to drop for ``feature_set`` on ``release`` (only those present in ``columns``).

    >>> drop_columns_for("robust", "v2")[:2]
    ('Number', 'ack_count')
    >>> drop_columns_for("paper", "v2")
    ()
    """
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"feature set must be one of {list(FEATURE_SETS)}; got {feature_set!r} instead.")
    have = tuple(columns) if columns is not None else columns_for(release)
    if feature_set == "paper":
        return ()
    wanted = (*LEAKY.get(release, ()), *REDUNDANT.get(release, ()))
    return tuple(c for c in wanted if c in have)
