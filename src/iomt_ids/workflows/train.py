"""The papers' pipeline end to end: load -> de-duplicate -> split -> preprocess -> train -> evaluate -> bundle.

Order of operations (all choices fitted on training rows only):

1. read the train and test CSVs (labels from file names, one release);
2. drop duplicate rows within train and within test (features and label), then drop
   test rows whose features also occur in train (a leak the papers ignore); all counted;
3. map labels to the task (2, 6 or 19 classes) and encode them in a fixed class order;
4. hold out a seeded, stratified 20 % of train for validation (early stopping);
5. fit the cleaning policy, zero-variance filter and StandardScaler on the remaining
   train rows; recurrent models see rows shaped (N, 1, F);
6. train, evaluate on test, write the bundle, metrics.json, report.md and figures; the
   bundle keeps fingerprints of the training rows' features (``train_rows.npy``) so that
   ``iomt-ids evaluate`` drops the same leaked test rows as step 2.

The ``ensemble`` model (:mod:`iomt_ids.models.ensemble`) runs the same steps: its bundle
keeps the trees' preprocessing (cleaning, no scaling); on the same train/validation
split it fits the tree member (LightGBM) and each deep candidate under the run's preset
(with the preset's log1p and scaling as the member's own preprocessing), and keeps the
deep candidate and the weight ``w`` of ``p = w·p_deep + (1 − w)·p_tree`` with the best
validation macro-F1 (:data:`ENSEMBLE_DEFAULTS`). The test rows play no part in it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from iomt_ids.artifacts import ModelBundle
from iomt_ids.data.dedup import DedupReport, dedup_splits, feature_fingerprints
from iomt_ids.data.labels import classes_for_task, map_labels
from iomt_ids.data.loader import DatasetSplits, LoadedData, load_dataset
from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.data.split import stratified_split
from iomt_ids.evaluation.report import evaluate_predictions
from iomt_ids.exceptions import ConfigError, DataError
from iomt_ids.features.schema import detect_release
from iomt_ids.models import DEEP_MODELS, build_model, check_model_name
from iomt_ids.models.base import TorchEstimator
from iomt_ids.training.config import TrainConfig, get_preset
from iomt_ids.training.history import History
from iomt_ids.training.trainer import Trainer, resolve_device, seed_everything
from iomt_ids.workflows.recipes import model_kwargs_for, preprocessor_for

__all__ = [
    "ENSEMBLE_DEEP_BY_PRESET",
    "ENSEMBLE_DEFAULTS",
    "PreparedData",
    "RunConfig",
    "encode_labels",
    "ensemble_options",
    "ensemble_report",
    "fit_bundle",
    "fit_on_arrays",
    "prepare_splits",
    "train_run",
]

log = logging.getLogger(__name__)

#: Members of ``--model ensemble`` (its ``model_kwargs``): the deep candidates, of which the one
#: with the best validation macro-F1 in the blend is kept, and the tree member. One deep
#: candidate per preset (:data:`ENSEMBLE_DEEP_BY_PRESET`): choosing between gru_dnn and dnn scored
#: no better on held-out validation rows and costs a second deep fit
#: (docs/results/ensemble/README.md).
ENSEMBLE_DEFAULTS: dict[str, Any] = {"deep": ("gru_dnn",), "tree": "lightgbm"}

#: The default deep member where a preset has its own: the ``deep`` preset was validated on the
#: DNN (512-256 with label smoothing; docs/results/deep-search/).
ENSEMBLE_DEEP_BY_PRESET: dict[str, tuple[str, ...]] = {"deep": ("dnn",)}


@dataclass(frozen=True)
class RunConfig:
    """One training run: which data, task, model and recipe, and where to write.

    ``epochs`` and ``batch_size``/``lr`` override the preset when given.
    """

    data: Path
    task: int
    model: str
    out: Path
    preset: str = "paper"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    feature_set: str = "paper"
    protocol: str = "shipped"

    def __post_init__(self) -> None:
        from iomt_ids.data.protocols import PROTOCOLS
        from iomt_ids.features.feature_sets import FEATURE_SETS

        classes_for_task(self.task)
        get_preset(self.preset)
        for name, value, allowed in (
            ("feature_set", self.feature_set, FEATURE_SETS),
            ("protocol", self.protocol, PROTOCOLS),
        ):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {list(allowed)}; got {value!r} instead.")
        check_model_name(self.model)
        if self.model == "ensemble":
            ensemble_options(self.model_kwargs)

    def train_config(self) -> TrainConfig:
        return get_preset(self.preset).with_overrides(
            max_epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed
        )


@dataclass
class PreparedData:
    """De-duplicated, label-encoded splits ready for fitting."""

    train: LoadedData
    test: LoadedData
    y_train: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    dedup: DedupReport


def encode_labels(labels19: Sequence[str] | np.ndarray, task: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """19-class label strings -> integer codes of the task's fixed class order."""
    classes = classes_for_task(task)
    index = {c: i for i, c in enumerate(classes)}
    mapped = map_labels(list(labels19), task)
    return np.fromiter((index[c] for c in mapped), dtype=np.int64, count=len(mapped)), classes


def prepare_splits(splits: DatasetSplits, task: int, drop_cross: bool = True) -> PreparedData:
    """De-duplicate both splits (and across them), then encode labels for ``task``."""
    train, test, report = dedup_splits(splits.train, splits.test, drop_cross)
    log.info("duplicates dropped: %s", report.as_dict())
    if len(train) < 2 or len(test) < 1:
        raise DataError(
            f"after de-duplication {len(train)} train and {len(test)} test rows remain; too few to run."
        )
    y_train, classes = encode_labels(train.labels, task)
    y_test, _ = encode_labels(test.labels, task)
    return PreparedData(train, test, y_train, y_test, classes, report)


def _fit_deep(
    model: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    device: str,
    progress: bool,
    model_kwargs: dict[str, Any],
) -> tuple[TorchEstimator, History]:
    seed_everything(config.seed)
    module = build_model(model, x_tr.shape[1], n_classes, **model_kwargs)
    module.n_classes = n_classes  # type: ignore[assignment]
    if getattr(module, "sequence_input", False):
        # the papers' input shape: (samples, 1, features)
        x_tr, x_va = x_tr[:, None, :], x_va[:, None, :]
    history = Trainer(module, config, device=device, progress=progress).fit(x_tr, y_tr, x_va, y_va)
    module.to("cpu").eval()
    return TorchEstimator(model, module, model_kwargs), history


def ensemble_options(given: dict[str, Any] | None = None, preset: str | None = None) -> dict[str, Any]:
    """The ensemble's members: :data:`ENSEMBLE_DEFAULTS` updated with ``given`` (keys ``deep``, ``tree``).

    Without a ``deep`` key, a ``preset`` listed in :data:`ENSEMBLE_DEEP_BY_PRESET` sets it.

    Raises ConfigError naming the key for an unknown key or a model of the wrong kind.
    """
    from iomt_ids.models import TREE_MODELS

    given = dict(given or {})
    unknown = sorted(set(given) - set(ENSEMBLE_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"ensemble options must be among {sorted(ENSEMBLE_DEFAULTS)}; got {unknown} instead."
        )
    out = {
        **ENSEMBLE_DEFAULTS,
        "deep": ENSEMBLE_DEEP_BY_PRESET.get(preset or "", ENSEMBLE_DEFAULTS["deep"]),
        **given,
    }
    deep = (out["deep"],) if isinstance(out["deep"], str) else tuple(out["deep"])
    if not deep or any(d not in DEEP_MODELS for d in deep) or len(set(deep)) != len(deep):
        raise ConfigError(
            f"ensemble option 'deep' must list distinct models of {list(DEEP_MODELS)}; got {list(deep)} instead."
        )
    if out["tree"] not in TREE_MODELS:
        raise ConfigError(
            f"ensemble option 'tree' must be one of {list(TREE_MODELS)}; got {out['tree']!r} instead."
        )
    return {"deep": list(deep), "tree": out["tree"]}


def _member_preprocessor(
    model: str, preset: str, columns: Sequence[str], kept: Sequence[str]
) -> Preprocessor:
    """An ensemble member's own preprocessing on the bundle's cleaned columns ``kept``.

    The recipe of ``model`` under ``preset`` (scaling; ``tuned``: log1p of the heavy-tailed
    columns) applied to what the bundle's cleaning-only preprocessing leaves.
    """
    recipe = preprocessor_for(model, preset, columns)
    return Preprocessor(
        input_columns=tuple(kept),
        log_columns=tuple(c for c in recipe.log_columns if c in kept),
        scale=recipe.scale,
    )


def _fit_ensemble(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    *,
    columns: Sequence[str],
    kept: Sequence[str],
    n_classes: int,
    config: TrainConfig,
    device: str,
    progress: bool,
    options: dict[str, Any],
) -> tuple[Any, History]:
    """Fit the tree member and every deep candidate on the same rows; choose the blend on validation.

    ``x_tr``/``x_va`` are the bundle's cleaned rows. Each deep candidate gets its own
    preprocessing fitted on ``x_tr`` (:func:`_member_preprocessor`) and the preset's
    model sizes; for each, :func:`~iomt_ids.models.ensemble.choose_weight` picks the
    weight on ``(x_va, y_va)``; the candidate with the best validation macro-F1 (then
    log-loss) is kept. Members of weight 0 are left out of the estimator.

    Returns (estimator, history of the kept deep candidate); the estimator's
    ``selection`` records every validation score.
    """
    from iomt_ids.models import trees
    from iomt_ids.models.ensemble import (
        WEIGHT_GRID,
        EnsembleEstimator,
        Member,
        choose_weight,
        log_loss,
        macro_f1,
    )

    tree_name = options["tree"]
    t0 = time.perf_counter()
    tree_est, tree_history = trees.fit_tree(tree_name, x_tr, y_tr, x_va, y_va, n_classes, config)
    p_tree = tree_est.predict_proba(x_va)
    tree_rec = {
        "name": tree_name,
        "val_macro_f1": macro_f1(y_va, p_tree.argmax(axis=1), n_classes),
        "val_log_loss": log_loss(y_va, p_tree),
        "trees": getattr(tree_est, "n_trees", None),
        "seconds": time.perf_counter() - t0,
    }
    candidates = []
    for name in options["deep"]:
        t0 = time.perf_counter()
        pre = _member_preprocessor(name, config.name, columns, kept)
        d_tr = pre.fit_transform(x_tr, source=f"train rows of ensemble member {name}")
        d_va = pre.transform(x_va, source=f"validation rows of ensemble member {name}")
        kwargs = model_kwargs_for(name, config.name)
        est, history = _fit_deep(name, d_tr, y_tr, d_va, y_va, n_classes, config, device, progress, kwargs)
        p_deep = est.predict_proba(d_va)
        choice = choose_weight(p_deep, p_tree, y_va, WEIGHT_GRID)
        rec = {
            "name": name,
            "val_macro_f1": macro_f1(y_va, p_deep.argmax(axis=1), n_classes),
            "val_log_loss": log_loss(y_va, p_deep),
            "weight": choice["weight"],
            "blend_val_macro_f1": choice["macro_f1"],
            "blend_val_log_loss": choice["log_loss"],
            "grid_val_macro_f1": [round(r["macro_f1"], 6) for r in choice["grid"]],
            "epochs": len(history),
            "best_epoch": history.best_epoch,
            "seconds": time.perf_counter() - t0,
        }
        log.info(
            "ensemble: %s alone %.4f, with %s at w=%.2f %.4f (validation macro-F1; %s alone %.4f)",
            name, rec["val_macro_f1"], tree_name, rec["weight"], rec["blend_val_macro_f1"], tree_name,
            tree_rec["val_macro_f1"],
        )  # fmt: skip
        candidates.append((rec, est, pre, history))
    rec, est, pre, history = min(
        candidates, key=lambda c: (-c[0]["blend_val_macro_f1"], c[0]["blend_val_log_loss"])
    )
    w = rec["weight"]
    members = [Member(est, w, pre), Member(tree_est, round(1.0 - w, 6))]
    members = [m for m in members if m.weight > 0]
    selection = {
        "rule": "p = w·p_deep + (1 − w)·p_tree; w and the deep candidate maximise validation macro-F1 "
        "(ties: lower log-loss)",
        "preset": config.name,
        "grid": list(WEIGHT_GRID),
        "validation_rows": len(y_va),
        "deep": rec["name"],
        "tree": tree_name,
        "weight_deep": w,
        "val_macro_f1": rec["blend_val_macro_f1"],
        "val_log_loss": rec["blend_val_log_loss"],
        "candidates": [c[0] for c in candidates],
        "tree_member": tree_rec,
    }
    ensemble = EnsembleEstimator(members, selection)
    log.info("ensemble: %s (validation macro-F1 %.4f)", ensemble.describe(), selection["val_macro_f1"])
    return ensemble, history


def fit_on_arrays(
    raw_train: np.ndarray | pl.DataFrame,
    y: np.ndarray,
    *,
    release: str,
    columns: Sequence[str],
    classes: Sequence[str],
    task: int,
    model: str,
    config: TrainConfig,
    device: str = "auto",
    progress: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    preprocessor: Preprocessor | None = None,
) -> tuple[ModelBundle, History, dict[str, int]]:
    """Split validation rows off ``raw_train``, fit preprocessing and the model; return the bundle.

    Returns (bundle, history, sizes) where sizes = {"rows_train", "rows_val"}. For
    ``model="ensemble"``, ``model_kwargs`` are its options (:func:`ensemble_options`), the
    weights are chosen on the same validation rows, and ``history`` is that of the deep
    candidate kept.
    """
    tr_idx, va_idx = stratified_split(y, config.val_fraction, config.seed)
    # preset-specific preprocessing and model sizes (trees: no scaling; "tuned": log1p, wider)
    pre = preprocessor or preprocessor_for(model, config.name, columns)
    x_tr = pre.fit_transform(raw_train, source="train", rows=tr_idx)
    x_va = pre.transform(raw_train, source="validation", rows=va_idx)
    if model == "ensemble":
        model_kwargs = ensemble_options(model_kwargs, config.name)
    else:
        model_kwargs = model_kwargs_for(model, config.name, model_kwargs) if model in DEEP_MODELS else {}
    if model in DEEP_MODELS:
        estimator, history = _fit_deep(
            model, x_tr, y[tr_idx], x_va, y[va_idx], len(classes), config, device, progress, model_kwargs
        )
    elif model == "ensemble":
        estimator, history = _fit_ensemble(
            x_tr, y[tr_idx], x_va, y[va_idx], columns=columns, kept=pre.kept_columns_, n_classes=len(classes),
            config=config, device=device, progress=progress, options=model_kwargs,
        )  # fmt: skip
    else:
        from iomt_ids.models import trees

        estimator, history = trees.fit_tree(
            model, x_tr, y[tr_idx], x_va, y[va_idx], len(classes), config, progress=progress
        )
    bundle = ModelBundle(
        estimator=estimator,
        preprocessor=pre,
        classes=tuple(classes),
        task=task,
        release=release,
        meta={"train_config": config.as_dict(), "model_kwargs": model_kwargs},
    )
    return bundle, history, {"rows_train": len(tr_idx), "rows_val": len(va_idx)}


def fit_bundle(
    frame: pd.DataFrame,
    labels19: Sequence[str] | np.ndarray,
    *,
    task: int,
    model: str = "dnn",
    preset: str = "fast",
    epochs: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    device: str = "auto",
    progress: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[ModelBundle, History]:
    """Train a bundle on an in-memory frame of one release's columns (no de-duplication).

    Handy for tests, notebooks and small lab data. The release is detected from the
    frame's columns.
    """
    release = detect_release(list(frame.columns), source="frame")
    from iomt_ids.features.schema import columns_for

    columns = columns_for(release)
    y, classes = encode_labels(labels19, task)
    config = get_preset(preset).with_overrides(max_epochs=epochs, seed=seed, val_fraction=val_fraction)
    bundle, history, _ = fit_on_arrays(
        frame[list(columns)].to_numpy(dtype=np.float64),
        y,
        release=release,
        columns=columns,
        classes=classes,
        task=task,
        model=model,
        config=config,
        device=device,
        progress=progress,
        model_kwargs=model_kwargs,
    )
    return bundle, history


def _counts(labels: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    c = Counter(np.asarray(classes, dtype=object)[labels])
    return {k: int(v) for k, v in c.items()}


def train_run(
    cfg: RunConfig, splits: DatasetSplits | None = None, split_note: str | None = None
) -> dict[str, Any]:
    """Run one configuration end to end and write everything into ``cfg.out``.

    Pass ``splits`` to reuse data already read (``reproduce`` reads it once), and
    ``split_note`` to describe how those splits were made (overrides the protocol's description).
    The bundle written records the fingerprints of every de-duplicated training row
    (validation rows included; see :func:`~iomt_ids.data.dedup.feature_fingerprints`).
    Returns the test metrics.
    """
    t0 = time.perf_counter()
    splits = splits or load_dataset(cfg.data, progress=cfg.progress)
    from iomt_ids.data.protocols import apply_protocol

    cut = apply_protocol(splits, cfg.protocol, seed=cfg.seed)  # "shipped" keeps the folders
    prepared = prepare_splits(cut.splits, cfg.task)
    config = cfg.train_config()
    device = str(resolve_device(cfg.device))
    columns = prepared.train.columns
    raw_train = prepared.train.table  # read block by block by the Preprocessor: no float64 copy of it all
    fit_start = time.perf_counter()
    bundle, history, sizes = fit_on_arrays(
        raw_train,
        prepared.y_train,
        release=prepared.train.release,
        columns=columns,
        classes=prepared.classes,
        task=cfg.task,
        model=cfg.model,
        config=config,
        device=device,
        progress=cfg.progress,
        model_kwargs=cfg.model_kwargs,
        preprocessor=preprocessor_for(cfg.model, config.name, columns, cfg.feature_set),
    )
    train_seconds = time.perf_counter() - fit_start
    # what 'iomt-ids evaluate' needs to drop test rows this model was trained on (train + validation rows)
    bundle.train_rows = np.unique(feature_fingerprints(prepared.train.table, columns))
    proba = bundle.predict_proba(prepared.test.to_numpy(), source=str(splits.test_dir))
    y_pred = proba.argmax(axis=1)
    info = {
        "task": cfg.task,
        "model": cfg.model,
        "preset": cfg.preset,
        "seed": cfg.seed,
        "release": prepared.train.release,
        "data": str(cfg.data),
        "split": f"{split_note or cut.description}; validation = stratified 20 % of train",
        "feature_set": cfg.feature_set,
        "rows_train": sizes["rows_train"],
        "rows_val": sizes["rows_val"],
        "rows_test": len(prepared.test),
        "duplicates_dropped": prepared.dedup.as_dict(),
        "features": list(bundle.preprocessor.kept_columns_),
        "zero_variance_dropped": list(bundle.preprocessor.zero_variance_),
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "train_seconds": train_seconds,
        "total_seconds": None,
        "device": device,
        "train_config": asdict(config),
    }
    trees = history[0].get("trees") if history and cfg.model not in DEEP_MODELS else None
    selection = getattr(bundle.estimator, "selection", None)
    if selection:
        info["ensemble"] = {"members": bundle.estimator.describe(), **selection}
        trees = selection["tree_member"].get("trees")
    if trees is not None:
        info["trees"] = trees
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {
        "train": _counts(prepared.y_train, prepared.classes),
        "test": _counts(prepared.y_test, prepared.classes),
    }
    info["total_seconds"] = time.perf_counter() - t0
    metrics = evaluate_predictions(
        out, prepared.y_test, y_pred, prepared.classes, info=info, history=history, class_counts=counts
    )
    bundle.meta.update(
        {
            "data": {"path": str(cfg.data), "train_dir": str(Path(splits.train_dir).resolve()),
                     "test_dir": str(Path(splits.test_dir).resolve()), "protocol": cfg.protocol,
                     "rows_train": sizes["rows_train"], "rows_val": sizes["rows_val"],
                     "rows_test": len(prepared.test), "duplicates_dropped": prepared.dedup.as_dict()},
            "metrics": {k: metrics[k] for k in ("accuracy", "weighted_f1", "macro_f1")},
            "preset": cfg.preset,
        }
    )  # fmt: skip
    bundle.save(out)
    history.save(out / "history.json")
    if selection:
        with (out / "report.md").open("a") as fh:
            fh.write(ensemble_report(info["ensemble"]))
    log.info(
        "%s %d-class: accuracy %.4f weighted-F1 %.4f macro-F1 %.4f -> %s",
        cfg.model, cfg.task, metrics["accuracy"], metrics["weighted_f1"], metrics["macro_f1"], out,
    )  # fmt: skip
    return metrics


def ensemble_report(selection: dict[str, Any]) -> str:
    """The report.md section of an ensemble: members, weights and every validation score."""
    tree = selection["tree_member"]
    lines = [
        "",
        "## Ensemble (chosen on the validation split only)",
        "",
        f"- members: {selection.get('members', '?')}; deep candidates under the `{selection['preset']}` preset",
        f"- rule: {selection['rule']}; w in {selection['grid'][0]:g}, {selection['grid'][1]:g}, ..., "
        f"{selection['grid'][-1]:g}; {selection['validation_rows']} validation rows",
        f"- training curves: those of the deep candidate {selection['deep']}; {tree['name']} has no per-round "
        f"curve ({tree.get('trees') or '?'} trees kept)",
        "",
        "| member | validation macro-F1 alone | log-loss alone | weight w | blend macro-F1 | blend log-loss |",
        "|---|---|---|---|---|---|",
    ]
    for c in selection["candidates"]:
        kept = " (kept)" if c["name"] == selection["deep"] else ""
        lines.append(
            f"| {c['name']}{kept} | {c['val_macro_f1']:.4f} | {c['val_log_loss']:.4f} | {c['weight']:.2f} | "
            f"{c['blend_val_macro_f1']:.4f} | {c['blend_val_log_loss']:.4f} |"
        )
    lines += [
        f"| {tree['name']} | {tree['val_macro_f1']:.4f} | {tree['val_log_loss']:.4f} | – | – | – |",
        "",
        f"Chosen: w = {selection['weight_deep']:.2f} for {selection['deep']}, validation macro-F1 "
        f"{selection['val_macro_f1']:.4f} (log-loss {selection['val_log_loss']:.4f}).",
        "",
    ]
    return "\n".join(lines)
