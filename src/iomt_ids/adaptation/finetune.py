"""Teach a trained classifier a site's normal traffic without forgetting the attacks.

:func:`finetune` continues training a copy of the base model on a mix of

* *replay* rows: a stratified sample of the base model's own training rows
  (the rows it was trained on, validation rows excluded), so the attack classes
  are rehearsed, and
* the site's benign windows (both window streams, labelled ``Benign``),
  oversampled to a fixed share of the mix,

with the base preprocessing unchanged. Deep models continue with Adam at a small
learning rate and early stopping on a validation set made of the base model's
original validation rows plus a held-out fifth of the site windows; LightGBM
adds boosting rounds to the existing trees (``init_model``); the random forest
is kept as it is (a forest cannot be continued; the novelty gate still applies).

:func:`recall_report` measures what an operator must not lose: the attack recall
(an attack row predicted as any attack class) and the per-class recall on the
base model's original validation split, before and after.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from iomt_ids.artifacts import ModelBundle
from iomt_ids.data.labels import BENIGN
from iomt_ids.data.split import stratified_split
from iomt_ids.exceptions import ConfigError
from iomt_ids.models.base import TorchEstimator

__all__ = ["FinetuneConfig", "finetune", "recall_report", "stratified_sample"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune`.

    Attributes
    ----------
    replay_rows : int
        Most replay rows (stratified sample of the base training rows).
    site_share : float
        Share of the training mix made of site benign windows (oversampled).
    epochs, lr, batch_size : deep models: epochs (early stopping, patience 2), Adam rate, batch.
    torch_threads : deep models: intra-op threads while fine-tuning (1: a few seconds of work that
        must not collapse when other jobs share the cores; see README "thread policy").
    boost_rounds : LightGBM: rounds added to the base trees.
    seed : int
    """

    replay_rows: int = 30_000
    site_share: float = 0.2
    epochs: int = 8
    lr: float = 5e-4
    batch_size: int = 1024
    boost_rounds: int = 40
    torch_threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replay_rows < 100:
            raise ConfigError(f"replay_rows must be >= 100; got {self.replay_rows!r}.")
        if not 0.0 < self.site_share < 0.9:
            raise ConfigError(f"site_share must be in (0, 0.9); got {self.site_share!r}.")
        if self.epochs < 1 or self.boost_rounds < 1:
            raise ConfigError("epochs and boost_rounds must be >= 1.")


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A stratified sample of at most ``n`` indices (every class keeps at least a few rows)."""
    if len(y) <= n:
        return np.arange(len(y))
    _, keep = stratified_split(y, n / len(y), seed)
    return keep


def recall_report(bundle: ModelBundle, x_raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Attack recall and per-class recall of ``bundle`` on labelled raw rows."""
    classes = list(bundle.classes)
    b = classes.index(BENIGN)
    pred = bundle.predict_proba(x_raw, source="validation rows").argmax(axis=1)
    attack = y != b
    out: dict[str, Any] = {
        "rows": int(len(y)),
        "attack_recall": float((pred[attack] != b).mean()) if attack.any() else float("nan"),
        "benign_recall": float((pred[~attack] == b).mean()) if (~attack).any() else float("nan"),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "per_class_recall": {},
    }
    for i, c in enumerate(classes):
        m = y == i
        if m.any():
            out["per_class_recall"][c] = round(float((pred[m] == i).mean()), 4)
    return out


def _mix(
    x_replay: np.ndarray, y_replay: np.ndarray, x_site: np.ndarray, benign: int, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    want = int(round(share / (1.0 - share) * len(x_replay)))
    reps = rng.choice(len(x_site), max(want, len(x_site)), replace=want > len(x_site))
    x = np.concatenate([x_replay, x_site[reps]])
    y = np.concatenate([y_replay, np.full(len(reps), benign, dtype=y_replay.dtype)])
    perm = rng.permutation(len(x))
    return x[perm], y[perm]


def finetune(
    base: ModelBundle,
    replay_raw: np.ndarray,
    replay_y: np.ndarray,
    val_raw: np.ndarray,
    val_y: np.ndarray,
    site_raw: np.ndarray,
    config: FinetuneConfig | None = None,
    progress: bool = False,
) -> tuple[ModelBundle, dict[str, Any]]:
    """Return a fine-tuned copy of ``base`` and what was done (method, rows, epochs or rounds).

    Parameters
    ----------
    base : ModelBundle
        The trained bundle; it is not modified.
    replay_raw, replay_y : numpy.ndarray
        Raw training rows of the base model (release columns) and their class codes.
    val_raw, val_y : numpy.ndarray
        The base model's original validation rows and codes (early stopping).
    site_raw : numpy.ndarray
        Raw benign windows of the site (release columns).
    """
    cfg = config or FinetuneConfig()
    benign = list(base.classes).index(BENIGN)
    pick = stratified_sample(replay_y, cfg.replay_rows, cfg.seed)
    pre = base.preprocessor
    x_rep = pre.transform(replay_raw[pick], source="replay rows")
    y_rep = np.asarray(replay_y[pick], dtype=np.int64)
    x_site = pre.transform(site_raw, source="site benign windows")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(x_site))
    n_hold = max(1, len(x_site) // 5)
    site_val, site_tr = x_site[order[:n_hold]], x_site[order[n_hold:]]
    x_tr, y_tr = _mix(x_rep, y_rep, site_tr, benign, cfg.site_share, cfg.seed)
    # early stopping needs a fair sample of the validation split, not all of it (1.7 M rows at full size)
    vpick = stratified_sample(np.asarray(val_y), cfg.replay_rows, cfg.seed)
    x_va = np.concatenate([pre.transform(val_raw[vpick], source="validation rows"), site_val])
    y_va = np.concatenate([np.asarray(val_y, dtype=np.int64)[vpick], np.full(n_hold, benign, dtype=np.int64)])
    info: dict[str, Any] = {
        "replay_rows": int(len(x_rep)),
        "site_rows": int(len(site_tr)),
        "site_rows_held_out": int(n_hold),
        "train_rows": int(len(x_tr)),
    }
    est = base.estimator
    if isinstance(est, TorchEstimator):
        import torch

        from iomt_ids.training.config import TrainConfig
        from iomt_ids.training.trainer import Trainer

        module = copy.deepcopy(est.module)
        sequence = getattr(module, "sequence_input", False)
        tc = TrainConfig(
            name="site-finetune", lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.epochs, patience=2,
            seed=cfg.seed,
        )  # fmt: skip
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.torch_threads)
        try:
            history = Trainer(module, tc, device="cpu", progress=progress).fit(
                x_tr[:, None, :] if sequence else x_tr, y_tr, x_va[:, None, :] if sequence else x_va, y_va
            )
        finally:
            torch.set_num_threads(threads)
        module.to("cpu").eval()
        new_est: Any = TorchEstimator(est.name, module, dict(est.model_kwargs))
        info.update(method="continued training (Adam)", epochs=len(history), best_epoch=history.best_epoch,
                    lr=cfg.lr)  # fmt: skip
    elif getattr(est, "kind", "") == "lightgbm":
        import lightgbm as lgb

        from iomt_ids.models.trees import LightGBMEstimator

        n_classes = len(base.classes)
        objective = (
            {"objective": "binary"} if n_classes == 2 else {"objective": "multiclass", "num_class": n_classes}
        )
        params = {**objective, "learning_rate": 0.05, "num_leaves": 31, "seed": cfg.seed, "verbosity": -1,
                  "deterministic": True, "num_threads": 2}  # fmt: skip
        before = est.booster.current_iteration()
        train_set = lgb.Dataset(x_tr.astype(np.float64), label=y_tr, free_raw_data=False)
        valid = lgb.Dataset(x_va.astype(np.float64), label=y_va, reference=train_set)
        booster = lgb.train(
            params, train_set, num_boost_round=cfg.boost_rounds, init_model=est.booster, valid_sets=[valid],
            callbacks=[lgb.early_stopping(5, verbose=False)],
        )  # fmt: skip
        best = booster.best_iteration or booster.current_iteration()
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        new_est = LightGBMEstimator(booster, n_classes)
        info.update(method="continued boosting (init_model)", trees_before=before,
                    trees_after=booster.current_iteration())  # fmt: skip
    else:
        new_est = est
        info.update(method="none: this model kind cannot be continued; the base classifier is kept")
    tuned = ModelBundle(
        estimator=new_est,
        preprocessor=pre,
        classes=base.classes,
        task=base.task,
        release=base.release,
        meta={k: v for k, v in base.meta.items() if k not in ("version", "created", "estimator")},
    )
    tuned.meta["finetuned_from"] = base.version
    return tuned, info
