"""A short, model-agnostic training loop.

The data stays as one float32 tensor on the training device; each epoch draws a
seeded permutation and slices it into batches, so there is no per-batch
DataLoader/collate overhead. Nothing here knows which model it trains.

Everything around the loop itself (early stopping, the progress bar and log line, any
user hook) is a callback (:mod:`~iomt_ids.training.callbacks`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iomt_ids.training.callbacks import Callback, default_callbacks
from iomt_ids.training.config import TrainConfig
from iomt_ids.training.history import History

__all__ = ["Trainer", "class_weights", "cpu_has_native_bf16", "resolve_device", "seed_everything"]

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(device: str | None = None) -> torch.device:
    """ "auto"/None -> CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512-BF16), where bf16 autocast pays off."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in checks if hasattr(torch.cpu, name))
    except RuntimeError:
        return False


def class_weights(y: np.ndarray, n_classes: int, cap: float = 50.0) -> np.ndarray:
    """Inverse-frequency class weights normalised to mean 1 over present classes, capped at ``cap``."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(int((counts > 0).sum()), 1), 0.0)
    w = np.minimum(w, cap)
    present = counts > 0
    w[present] /= w[present].mean()
    return w.astype(np.float32)


class Trainer:
    """Train any classifier module that maps a float tensor to logits.

    Parameters
    ----------
    model: the network (``forward`` returns logits).
    config: the training recipe.
    device: "cpu", "cuda", or "auto".
    progress: show a progress bar per epoch (rows/s and ETA) on a terminal; used only to
        build the default callbacks (when ``callbacks`` is None).
    callbacks: the callbacks notified during :meth:`fit`, in order (see
        :mod:`~iomt_ids.training.callbacks`). None (the default) gives
        :func:`~iomt_ids.training.callbacks.default_callbacks`: early stopping from
        ``config`` and progress output. A list replaces them: ``[]`` trains for
        ``max_epochs`` with no early stopping, no best-weight restore and no progress
        output; add ``*default_callbacks(config)`` to keep them beside your own.

    Attributes
    ----------
    callbacks: list
        The callbacks in use.
    stop_training: bool
        The stop flag: a callback sets it to end training after the current epoch.

    Examples
    --------
    >>> from iomt_ids.training.callbacks import Callback, default_callbacks
    >>> class Seen(Callback):
    ...     def on_epoch_end(self, trainer, record):
    ...         print(record["epoch"], round(record["val_loss"], 3))
    >>> trainer = Trainer(model, config, callbacks=[*default_callbacks(config), Seen()])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        device: str | None = "auto",
        progress: bool = True,
        callbacks: Sequence[Callback] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.device = resolve_device(device)
        self.progress = progress
        self.callbacks: list[Callback] = (
            default_callbacks(config, progress) if callbacks is None else list(callbacks)
        )
        self.stop_training = False
        self.model.to(self.device)

    # -- helpers -----------------------------------------------------------------
    def _notify(self, hook: str, *args: Any) -> None:
        """Call ``hook(self, *args)`` on every callback that has it, in order."""
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if method is not None:
                method(self, *args)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        return t.to(self.device, non_blocking=True)

    def _autocast(self) -> Any:
        if self.config.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.config.amp and self.device.type == "cpu" and cpu_has_native_bf16():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _loss_fn(self, y_train: np.ndarray, n_classes: int) -> Any:
        cfg = self.config
        weight = None
        if cfg.loss in ("weighted_ce", "focal"):
            weight = torch.as_tensor(
                class_weights(y_train, n_classes, cfg.class_weight_cap), device=self.device
            )
        if cfg.loss == "focal":
            gamma = cfg.focal_gamma

            def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                logp = F.log_softmax(logits.float(), dim=1)
                logp_t = logp.gather(1, target[:, None]).squeeze(1)
                p_t = logp_t.exp()
                w = weight[target] if weight is not None else 1.0
                return (-(w * (1 - p_t) ** gamma * logp_t)).mean()

            return focal

        def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)

        return ce

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam (AdamW with weight decay); the fused single-kernel update where this torch has one."""
        cfg = self.config
        opt_cls = torch.optim.AdamW if cfg.weight_decay > 0 else torch.optim.Adam
        params = list(self.model.parameters())
        try:
            return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError) as exc:  # device or dtype without a fused kernel
            log.debug("fused %s unavailable (%s); using the for-each update", opt_cls.__name__, exc)
            return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _lr_factor(self, step: int, steps_per_epoch: int) -> float:
        cfg = self.config
        if cfg.schedule == "none":
            return 1.0
        warm = cfg.warmup_epochs * steps_per_epoch
        total = cfg.max_epochs * steps_per_epoch
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    # -- public API ----------------------------------------------------------------
    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> History:
        """Train until a callback sets the stop flag or ``max_epochs``; return the per-epoch history."""
        cfg = self.config
        seed_everything(cfg.seed)
        n_classes = int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
        out_features = getattr(self.model, "n_classes", None)
        xt, yt = self._to_tensor(x_train), torch.as_tensor(y_train, dtype=torch.long, device=self.device)
        xv, yv = self._to_tensor(x_val), torch.as_tensor(y_val, dtype=torch.long, device=self.device)
        loss_fn = self._loss_fn(np.asarray(y_train), max(n_classes, out_features or 0))
        optimizer = self._optimizer()
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        n = xt.shape[0]
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        history = History()
        step = 0
        self.stop_training = False
        self._notify("on_train_begin")
        batch_hooks = [h for cb in self.callbacks if (h := getattr(cb, "on_batch_end", None)) is not None]
        for epoch in range(1, cfg.max_epochs + 1):
            self.model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=gen).to(self.device)
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            self._notify("on_epoch_begin", epoch, n)
            for start in range(0, n, cfg.batch_size):
                idx = perm[start : start + cfg.batch_size]
                xb, yb = xt[idx], yt[idx]
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * self._lr_factor(step, steps_per_epoch)
                with self._autocast():
                    logits = self.model(xb)
                    loss = loss_fn(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += loss.detach() * len(idx)
                correct += (logits.detach().argmax(1) == yb).sum()
                for hook in batch_hooks:
                    hook(self, len(idx))
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            train_seconds = time.perf_counter() - t0
            val_loss, val_acc = self._evaluate(xv, yv, loss_fn)
            record = {
                "epoch": epoch,
                "loss": float(loss_sum) / n,
                "accuracy": float(correct) / n,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t0,
                "train_rows_per_s": n / train_seconds,
            }
            history.append(record)
            self._notify("on_epoch_end", record)
            if self.stop_training:  # a callback asked to stop
                history.stopped_early = True
                break
        self._notify("on_train_end", history)
        return history

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, loss_fn: Any) -> tuple[float, float]:
        self.model.eval()
        total, correct = 0.0, 0
        for start in range(0, x.shape[0], self.config.eval_batch_size):
            xb, yb = (
                x[start : start + self.config.eval_batch_size],
                y[start : start + self.config.eval_batch_size],
            )
            with self._autocast():
                logits = self.model(xb)
            total += float(loss_fn(logits, yb)) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        return total / max(1, x.shape[0]), correct / max(1, x.shape[0])

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for rows ``x`` (evaluation mode, no gradients)."""
        return predict_proba(self.model, x, self.device, self.config.eval_batch_size)


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 16384
) -> np.ndarray:
    """Softmax probabilities of ``model`` on rows ``x``, in batches."""
    model.eval()
    device = torch.device(device)
    out = []
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    for start in range(0, xt.shape[0], batch_size):
        logits = model(xt[start : start + batch_size].to(device))
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    if not out:
        n_out = getattr(model, "n_classes", 0)
        return np.zeros((0, n_out), dtype=np.float32)
    return np.concatenate(out)
