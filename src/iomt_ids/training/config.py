"""Training configuration and its named presets.

* ``paper``: the papers' recipe exactly: Adam, learning rate 1e-4, batch 64, up to
  50 epochs, early stopping on validation loss with patience 5 and the best weights
  restored, categorical cross-entropy, 20 % validation split.
* ``fast``: the same model and loss with large batches (1024), a learning rate
  scaled up for them (3e-3) with a short warm-up and a cosine decay, and the data
  kept as one tensor (mixed precision on CUDA). It reaches the paper preset's
  validation accuracy in a fraction of the time (see benchmarks/).
* ``tuned``: the fast recipe run longer (up to 150 epochs, patience 20), with
  ``sign·log1p`` on heavy-tailed columns and wider models (:mod:`iomt_ids.workflows.recipes`);
  chosen on the validation split (docs/results/compare/).
* ``deep``: the tuned recipe with label smoothing 0.1 and a wider dense head (DNN 512-256),
  chosen on the validation split only by ``benchmarks/deep_search.py``
  (docs/results/deep-search/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from iomt_ids.exceptions import ConfigError

__all__ = ["PRESETS", "TrainConfig", "get_preset"]

_LOSSES = ("ce", "weighted_ce", "focal")
_SCHEDULES = ("none", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """How a deep model is trained.

    Parameters
    ----------
    lr: Adam learning rate.
    batch_size: rows per optimiser step.
    max_epochs: upper bound on epochs.
    patience: early-stopping patience, in epochs without a better validation loss.
    min_delta: smallest decrease of the validation loss that counts as better.
    restore_best: restore the weights of the best validation epoch at the end.
    val_fraction: share of the training rows held out (stratified, seeded) for validation.
    weight_decay: AdamW-style decoupled weight decay (0 = plain Adam).
    schedule: "none" or "cosine" (linear warm-up over ``warmup_epochs``, then cosine decay to ``max_epochs``).
    warmup_epochs: epochs of linear warm-up for the cosine schedule.
    loss: "ce" (categorical cross-entropy), "weighted_ce" (classes weighted by inverse frequency,
        capped) or "focal" (focal loss with ``focal_gamma``).
    label_smoothing: cross-entropy label smoothing.
    amp: bfloat16 autocast on CUDA, and on CPUs with native bf16 (AMX / AVX512-BF16); else ignored.
    seed: seeds weights, shuffling and the validation split.
    """

    name: str = "custom"
    lr: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True
    val_fraction: float = 0.2
    weight_decay: float = 0.0
    schedule: str = "none"
    warmup_epochs: int = 0
    loss: str = "ce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    class_weight_cap: float = 50.0
    amp: bool = False
    eval_batch_size: int = 16384
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "max_epochs": self.max_epochs >= 1,
            "patience": self.patience >= 0,
            "val_fraction": 0.0 < self.val_fraction < 1.0,
            "loss": self.loss in _LOSSES,
            "schedule": self.schedule in _SCHEDULES,
        }
        for name, ok in checks.items():
            if not ok:
                allowed = {"loss": list(_LOSSES), "schedule": list(_SCHEDULES)}.get(name, "a valid value")
                raise ConfigError(
                    f"TrainConfig.{name} must be {allowed}; got {getattr(self, name)!r} instead."
                )

    def with_overrides(self, **kw: Any) -> TrainConfig:
        """A copy with the non-None values of ``kw`` replaced."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# chosen on the validation split only; also log1p on heavy-tailed columns and wider
# models (iomt_ids.workflows.recipes); see docs/results/compare/
_TUNED = TrainConfig(
    name="tuned",
    lr=3e-3,
    batch_size=1024,
    max_epochs=150,
    patience=20,
    schedule="cosine",
    warmup_epochs=2,
    amp=True,
)

PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(name="paper", lr=1e-4, batch_size=64, max_epochs=50, patience=5),
    # the tuned optimiser on a short budget
    "fast": replace(_TUNED, name="fast", max_epochs=60, patience=8),
    "tuned": _TUNED,
    # the tuned optimiser with label smoothing 0.1; wider dense layers and the tuned log1p in
    # iomt_ids.workflows.recipes; chosen on the validation split only (docs/results/deep-search/)
    "deep": replace(_TUNED, name="deep", label_smoothing=0.1),
}


def get_preset(name: str) -> TrainConfig:
    """The named preset ("paper", "fast", ...)."""
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}; got {name!r} instead.")
    return PRESETS[name]
