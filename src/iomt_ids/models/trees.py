"""Tree baselines: LightGBM and a random forest, in the same pipeline as the deep models.

Both fit on the preprocessed rows (cleaned, same feature set, no scaling needed) and
persist **without pickle**:

* ``lightgbm``: the booster's own text format (``lightgbm.txt``, written by
  ``Booster.model_to_string`` and read back by ``Booster(model_str=...)``).
* ``random_forest``: scikit-learn's fitted trees dumped as plain arrays
  (``forest.npz``: children, split feature, threshold, leaf class distribution) and
  evaluated with NumPy. Loading uses ``np.load(allow_pickle=False)``, so a bundle
  cannot execute code. No extra package is needed (skops/ONNX were not required).

The loaders accept only a ``model_file`` inside the bundle folder
(:func:`~iomt_ids.models.base.bundle_member`).

Both use the validation split: LightGBM for early stopping on the validation
log-loss, the forest only to report validation loss/accuracy in the history.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.exceptions import BundleError, ConfigError
from iomt_ids.models.base import bundle_member, register_estimator
from iomt_ids.models.registry import TREE_MODELS
from iomt_ids.training.config import TrainConfig
from iomt_ids.training.history import History

__all__ = [
    "LIGHTGBM_PARAMS",
    "RANDOM_FOREST_PARAMS",
    "TREE_MODELS",
    "ForestEstimator",
    "LightGBMEstimator",
    "fit_tree",
]

log = logging.getLogger(__name__)


#: LightGBM settings (400 trees at most, early stopping on validation log-loss after 50 rounds).
LIGHTGBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 5,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_boost_round": 400,
    "early_stopping_rounds": 50,
}

#: Random-forest settings (scikit-learn RandomForestClassifier arguments).
RANDOM_FOREST_PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "min_samples_leaf": 1,
    "max_features": "sqrt",
}


def _threads() -> int:
    """Worker threads for tree fitting and scoring: the thread policy's choice (:mod:`iomt_ids.runtime`)."""
    from iomt_ids.runtime import current_threads

    return current_threads()


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.log(p).mean()) if len(y) else float("nan")


def _record(
    y_tr: np.ndarray, p_tr: np.ndarray, y_va: np.ndarray, p_va: np.ndarray, seconds: float
) -> dict[str, Any]:
    return {
        "epoch": 1,
        "loss": _log_loss(y_tr, p_tr),
        "accuracy": float((p_tr.argmax(1) == y_tr).mean()),
        "val_loss": _log_loss(y_va, p_va),
        "val_accuracy": float((p_va.argmax(1) == y_va).mean()) if len(y_va) else float("nan"),
        "lr": 0.0,
        "seconds": seconds,
        "train_rows_per_s": len(y_tr) / max(seconds, 1e-9),
    }


# -- LightGBM -------------------------------------------------------------------------


class LightGBMEstimator:
    """A fitted LightGBM booster; ``predict_proba`` always returns ``(n, n_classes)``."""

    kind = "lightgbm"
    name = "lightgbm"

    def __init__(self, booster: Any, n_classes: int) -> None:
        self.booster = booster
        self.n_classes = n_classes

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.asarray(self.booster.predict(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        if self.n_classes == 2 and p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        return p.astype(np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        (Path(directory) / "lightgbm.txt").write_text(self.booster.model_to_string())
        return {"model_file": "lightgbm.txt", "n_classes": self.n_classes}


@register_estimator("lightgbm")
def _load_lightgbm(
    directory: Path, meta: dict[str, Any], n_features: int, n_classes: int
) -> LightGBMEstimator:
    import lightgbm as lgb

    path = bundle_member(
        Path(directory), meta["estimator"].get("model_file", "lightgbm.txt"), "estimator.model_file"
    )
    if not path.exists():
        raise BundleError(f"{directory}: LightGBM model file {path.name} is missing.")
    try:
        booster = lgb.Booster(model_str=path.read_text())
    except Exception as exc:  # lightgbm raises its own LightGBMError
        raise BundleError(f"{path}: not a LightGBM model: {exc}") from None
    if booster.num_feature() != n_features:
        raise BundleError(
            f"{path}: model expects {booster.num_feature()} features; the bundle's preprocessing gives "
            f"{n_features}."
        )
    return LightGBMEstimator(booster, n_classes)


def _fit_lightgbm(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    seed: int,
    params: dict[str, Any],
) -> tuple[LightGBMEstimator, History]:
    import lightgbm as lgb

    p = {**LIGHTGBM_PARAMS, **params}
    rounds = int(p.pop("num_boost_round"))
    patience = int(p.pop("early_stopping_rounds"))
    objective = (
        {"objective": "binary"} if n_classes == 2 else {"objective": "multiclass", "num_class": n_classes}
    )
    lgb_params = {
        **objective,
        **p,
        "seed": seed,
        "num_threads": _threads(),
        "verbosity": -1,
        "deterministic": True,
    }
    t0 = time.perf_counter()
    train_set = lgb.Dataset(x_tr, label=y_tr, free_raw_data=False)
    valid = [lgb.Dataset(x_va, label=y_va, reference=train_set)] if len(y_va) else []
    callbacks = [lgb.early_stopping(patience, verbose=False)] if valid and patience > 0 else []
    booster = lgb.train(lgb_params, train_set, num_boost_round=rounds, valid_sets=valid, callbacks=callbacks)
    if booster.best_iteration and booster.best_iteration < booster.current_iteration():
        # keep only the trees up to the best validation round
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    est = LightGBMEstimator(booster, n_classes)
    seconds = time.perf_counter() - t0
    history = History([_record(y_tr, est.predict_proba(x_tr), y_va, est.predict_proba(x_va), seconds)])
    history[0]["trees"] = booster.current_iteration()
    history.best_epoch = 1
    return est, history


# -- Random forest ----------------------------------------------------------------------

_FOREST_KEYS = ("left", "right", "feature", "threshold", "value", "roots")


class ForestEstimator:
    """A random forest stored as flat node arrays and evaluated with NumPy.

    Attributes
    ----------
    left, right: child node index (global over all trees); -1 at leaves.
    feature: split feature per node (-2 at leaves); threshold: go left when ``x <= threshold``.
    value: class distribution per node, ``(n_nodes, n_classes)``, rows sum to 1 at leaves.
    roots: index of each tree's root node.
    """

    kind = "random_forest"
    name = "random_forest"

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
    ) -> None:
        self.left, self.right, self.feature = left, right, feature
        self.threshold, self.value, self.roots = threshold, value, roots

    @classmethod
    def from_sklearn(cls, forest: Any, n_classes: int) -> ForestEstimator:
        """Flatten a fitted ``RandomForestClassifier``; classes absent in training get probability 0."""
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        cols = np.asarray(forest.classes_, dtype=np.int64)
        for est in forest.estimators_:
            t = est.tree_
            leaf = t.children_left < 0
            lefts.append(np.where(leaf, -1, t.children_left + offset))
            rights.append(np.where(leaf, -1, t.children_right + offset))
            feats.append(t.feature.astype(np.int32))
            thrs.append(t.threshold.astype(np.float64))
            v = t.value[:, 0, :].astype(np.float64)
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
            full = np.zeros((t.node_count, n_classes), dtype=np.float32)
            full[:, cols] = v
            vals.append(full)
            roots.append(offset)
            offset += t.node_count
        return cls(
            np.concatenate(lefts).astype(np.int64),
            np.concatenate(rights).astype(np.int64),
            np.concatenate(feats),
            np.concatenate(thrs),
            np.concatenate(vals),
            np.asarray(roots, dtype=np.int64),
        )

    @property
    def n_features(self) -> int:
        return int(self.feature.max(initial=-1)) + 1

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 inputs against float64 thresholds; do the same
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        n = x.shape[0]
        out = np.zeros((n, self.value.shape[1]), dtype=np.float64)
        rows = np.arange(n)
        for root in self.roots:  # one tree at a time keeps memory at O(n)
            node = np.full(n, root, dtype=np.int64)
            active = self.left[node] >= 0
            while active.any():
                idx = node[active]
                go_left = x[rows[active], self.feature[idx]] <= self.threshold[idx]
                node[active] = np.where(go_left, self.left[idx], self.right[idx])
                active = self.left[node] >= 0
            out += self.value[node]
        return (out / max(len(self.roots), 1)).astype(np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        arrays = dict(
            zip(
                _FOREST_KEYS,
                (self.left, self.right, self.feature, self.threshold, self.value, self.roots),
                strict=True,
            )
        )
        np.savez_compressed(Path(directory) / "forest.npz", **arrays)
        return {"model_file": "forest.npz", "trees": len(self.roots), "nodes": len(self.left)}


@register_estimator("random_forest")
def _load_forest(directory: Path, meta: dict[str, Any], n_features: int, n_classes: int) -> ForestEstimator:
    path = bundle_member(
        Path(directory), meta["estimator"].get("model_file", "forest.npz"), "estimator.model_file"
    )
    if not path.exists():
        raise BundleError(f"{directory}: forest file {path.name} is missing.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _FOREST_KEYS}
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{path}: not a forest written by iomt-ids ({exc}).") from None
    est = ForestEstimator(**arrays)
    n = len(est.left)
    consistent = (
        all(len(arrays[k]) == n for k in ("right", "feature", "threshold", "value"))
        and est.value.ndim == 2
        and est.value.shape[1] == n_classes
        and est.n_features <= n_features
        and ((est.left == -1) | ((est.left >= 0) & (est.left < n))).all()
        and ((est.right == -1) | ((est.right >= 0) & (est.right < n))).all()
    )
    if not consistent:
        raise BundleError(
            f"{path}: forest arrays do not fit the bundle ({n_classes} classes, {n_features} features)."
        )
    return est


def _fit_forest(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    seed: int,
    params: dict[str, Any],
) -> tuple[ForestEstimator, History]:
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    rf = RandomForestClassifier(**{**RANDOM_FOREST_PARAMS, **params}, random_state=seed, n_jobs=_threads())
    rf.fit(x_tr, y_tr)
    est = ForestEstimator.from_sklearn(rf, n_classes)
    seconds = time.perf_counter() - t0
    history = History([_record(y_tr, est.predict_proba(x_tr), y_va, est.predict_proba(x_va), seconds)])
    history.best_epoch = 1
    return est, history


def fit_tree(
    name: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    params: dict[str, Any] | None = None,
) -> tuple[LightGBMEstimator | ForestEstimator, History]:
    """Fit the tree model ``name`` on preprocessed rows; ``config.seed`` seeds it.

    ``params`` override :data:`LIGHTGBM_PARAMS` / :data:`RANDOM_FOREST_PARAMS`.
    The deep-learning fields of ``config`` (learning rate, batch size ...) do not apply.
    """
    if name not in TREE_MODELS:
        raise ConfigError(f"tree model must be one of {list(TREE_MODELS)}; got {name!r} instead.")
    fit = _fit_lightgbm if name == "lightgbm" else _fit_forest
    est, history = fit(x_tr, y_tr, x_va, y_va, n_classes, config.seed, dict(params or {}))
    log.info(
        "%s: train acc %.4f, validation acc %.4f (%.1fs)",
        name, history[0]["accuracy"], history[0]["val_accuracy"], history[0]["seconds"],
    )  # fmt: skip
    return est, history
