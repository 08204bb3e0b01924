"""Lazy package attributes: a name resolves to its defining module on first use.

Keeps ``import iomt_ids`` (and ``import iomt_ids.data`` ...) cheap: torch, polars and
matplotlib load only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each name to its module.

    A module name starting with ``.`` is relative to ``package``.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = package + module if module.startswith(".") else module
        return getattr(importlib.import_module(target), name)

    return __getattr__
