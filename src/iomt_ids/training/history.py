"""Per-epoch training history (one dict per epoch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["History"]


class History(list[dict[str, Any]]):
    """A list of epoch records: ``{"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", ...}``.

    Attributes set after training: ``best_epoch``, ``stopped_early``.
    """

    best_epoch: int | None = None
    stopped_early: bool = False

    def column(self, key: str) -> list[Any]:
        return [rec.get(key) for rec in self]

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": list(self), "best_epoch": self.best_epoch, "stopped_early": self.stopped_early}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        h = cls(d.get("epochs", []))
        h.best_epoch = d.get("best_epoch")
        h.stopped_early = bool(d.get("stopped_early", False))
        return h

    @classmethod
    def load(cls, path: str | Path) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))
