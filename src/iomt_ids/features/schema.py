"""The ordered column contracts of the two CICIoMT2024 releases.

Training, extraction, serving and export all import these lists, so the column
order used to train a model is the one a capture produces.

* ``v1``: the original 45-column release (``Header_Length`` ... ``Weight``), the
  one the papers used.
* ``v2``: the revised 39-column release (``Header_Length``, ``Protocol Type``,
  ``Time_To_Live`` ... ``Variance``), the one in ``WiFi_and_MQTT/{train,test}``.

The two share column names with different meanings (v1 ``Duration`` is the TTL,
v1 ``IAT`` is timestamp-like, v1 ``Variance`` is a ratio); never map one onto the
other by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from iomt_ids.exceptions import SchemaError

__all__ = [
    "RELEASES",
    "V1_COLUMNS",
    "V2_COLUMNS",
    "Release",
    "columns_for",
    "detect_release",
]

Release = Literal["v1", "v2"]

V1_COLUMNS: tuple[str, ...] = (
    "Header_Length", "Protocol Type", "Duration", "Rate", "Srate", "Drate",
    "fin_flag_number", "syn_flag_number", "rst_flag_number", "psh_flag_number",
    "ack_flag_number", "ece_flag_number", "cwr_flag_number",
    "ack_count", "syn_count", "fin_count", "rst_count",
    "HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC",
    "TCP", "UDP", "DHCP", "ARP", "ICMP", "IGMP", "IPv", "LLC",
    "Tot sum", "Min", "Max", "AVG", "Std", "Tot size", "IAT", "Number",
    "Magnitue", "Radius", "Covariance", "Variance", "Weight",
)  # fmt: skip

V2_COLUMNS: tuple[str, ...] = (
    "Header_Length", "Protocol Type", "Time_To_Live", "Rate",
    "fin_flag_number", "syn_flag_number", "rst_flag_number", "psh_flag_number",
    "ack_flag_number", "ece_flag_number", "cwr_flag_number",
    "ack_count", "syn_count", "fin_count", "rst_count",
    "HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC",
    "TCP", "UDP", "DHCP", "ARP", "ICMP", "IGMP", "IPv", "LLC",
    "Tot sum", "Min", "Max", "AVG", "Std", "Tot size", "IAT", "Number", "Variance",
)  # fmt: skip

RELEASES: dict[str, tuple[str, ...]] = {"v1": V1_COLUMNS, "v2": V2_COLUMNS}

assert len(V1_COLUMNS) == 45 and len(set(V1_COLUMNS)) == 45
assert len(V2_COLUMNS) == 39 and len(set(V2_COLUMNS)) == 39


def columns_for(release: str) -> tuple[str, ...]:
    """Return the ordered columns of ``release`` ("v1" or "v2")."""
    try:
        return RELEASES[release]
    except KeyError:
        raise SchemaError(f"release must be one of {sorted(RELEASES)}; got {release!r} instead.") from None


def detect_release(columns: Sequence[str], source: str = "input") -> Release:
    """Tell which release a header belongs to, or raise :class:`SchemaError`.

    The header must hold exactly the release's columns (any order; surrounding
    whitespace is ignored). The error names the missing and the unexpected
    columns against the closest release.

    >>> detect_release(list(V2_COLUMNS))
    'v2'
    """
    cols = [str(c).strip() for c in columns]
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise SchemaError(f"{source}: duplicate columns {dupes}.")
    have = set(cols)
    best: tuple[int, str, set[str], set[str]] | None = None
    for name, expected in RELEASES.items():
        missing = set(expected) - have
        extra = have - set(expected)
        if not missing and not extra:
            return name  # type: ignore[return-value]
        score = len(missing) + len(extra)
        if best is None or score < best[0]:
            best = (score, name, missing, extra)
    assert best is not None
    _, name, missing, extra = best
    ordered_missing = [c for c in RELEASES[name] if c in missing]
    raise SchemaError(
        f"{source}: columns do not match a CICIoMT2024 release; closest is {name} "
        f"({len(RELEASES[name])} columns). Missing: {ordered_missing or 'none'}; "
        f"unexpected: {sorted(extra) or 'none'}."
    )
