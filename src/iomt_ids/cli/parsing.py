"""Small option parsers shared by commands."""

from __future__ import annotations

from collections.abc import Collection

from iomt_ids.exceptions import ConfigError

__all__ = ["parse_list"]


def parse_list(value: str, option: str, allowed: Collection[str]) -> list[str]:
    """Split a comma-separated option and check each item.

    >>> parse_list("2, 6", "--tasks", {"2", "6", "19"})
    ['2', '6']
    """
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise ConfigError(f"{option}: expected a comma-separated list of {sorted(allowed)}; got {value!r}.")
    return items
