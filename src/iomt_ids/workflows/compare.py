"""Compare models honestly: every task x model x preset x seed, mean ± std, macro-F1 first.

``compare`` trains each combination in the same pipeline (same loader, labels,
de-duplication, protocol, feature set and metrics), evaluates it on the test rows,
and writes one JSON file per run under ``OUT/runs/`` as soon as it finishes. The
aggregate table (``compare.md``, ``compare.json``, ``compare.csv``) and the per-class
F1 heat maps (``f1_heatmap_<task>c.png``) are rewritten after every run, so a partial
table exists if the run is interrupted; a rerun with the same ``OUT`` skips the runs
already on disk (``resume``). Several processes may work on one ``OUT`` at once: each
run is claimed with a lock file, so every worker takes the next unclaimed run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.data.loader import DatasetSplits, load_dataset
from iomt_ids.data.protocols import apply_protocol
from iomt_ids.evaluation.metrics import compute_metrics
from iomt_ids.evaluation.paper import PAPER_RESULTS
from iomt_ids.evaluation.plots import plot_f1_heatmap
from iomt_ids.evaluation.report import save_figure
from iomt_ids.exceptions import ConfigError
from iomt_ids.models import DEEP_MODELS
from iomt_ids.training.config import get_preset
from iomt_ids.training.trainer import resolve_device
from iomt_ids.workflows.recipes import model_kwargs_for, preprocessor_for
from iomt_ids.workflows.train import fit_on_arrays, prepare_splits

__all__ = ["CompareConfig", "RunSpec", "aggregate", "compare", "expand_specs", "mean_std", "write_tables"]

log = logging.getLogger(__name__)

_PAPER_OF = {
    "dnn": "dnn (001, Table 8)",
    "lstm_dnn": "lstm_dnn (000, Table 6)",
    "gru_dnn": "gru_dnn (001, Table 8)",
}


@dataclass(frozen=True)
class RunSpec:
    """One model of the comparison: its name, preset ("-" for trees) and feature set."""

    model: str
    preset: str
    feature_set: str = "paper"

    @property
    def key(self) -> str:
        """``model-preset-features``; ``model-features`` for a tree model, which has no preset."""
        if self.preset == "-":
            return f"{self.model}-{self.feature_set}"
        return f"{self.model}-{self.preset}-{self.feature_set}"

    @property
    def legacy_key(self) -> str:
        """The key before trees lost the "-" preset in it ("lightgbm---paper"): older runs' folders."""
        return f"{self.model}-{self.preset}-{self.feature_set}"


@dataclass(frozen=True)
class CompareConfig:
    """What ``compare`` runs.

    Parameters
    ----------
    data: dataset folder (``train/`` and ``test/`` below it).
    out: output folder.
    tasks: subset of (2, 6, 19).
    specs: the models to compare (see :func:`expand_specs`).
    seeds: number of seeds (0 .. seeds-1); seeds drive weights, shuffling, validation split
        and, for the ``random``/``capture`` protocols, the test split too.
    protocol: "shipped", "capture" or "random" (see :mod:`iomt_ids.data.protocols`).
    device: "auto", "cpu" or "cuda".
    resume: skip runs whose result file already exists in ``out``.
    epochs: override the presets' maximum epochs (quick checks; the result records it).
    executor: "local" (one run after another in this process, the default; Ray is not
        imported) or "ray" (every run a Ray task: :mod:`iomt_ids.workflows.sweep`).
    ray_address: the Ray cluster (default ``RAY_ADDRESS``, else a local Ray runtime).
    workers: with Ray, most runs at the same time (default: the cluster's CPUs).
    """

    data: Path
    out: Path
    tasks: tuple[int, ...] = (2, 6, 19)
    specs: tuple[RunSpec, ...] = field(default_factory=tuple)
    seeds: int = 3
    protocol: str = "shipped"
    device: str = "auto"
    resume: bool = True
    progress: bool = False
    epochs: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"executor must be 'local' or 'ray'; got {self.executor!r} instead.")
        if self.ray_address and self.executor != "ray":
            raise ConfigError(f"a Ray address ({self.ray_address!r}) needs --executor ray.")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1; got {self.workers!r} instead.")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be at least 1; got {self.seeds!r} instead.")
        if not self.specs:
            raise ConfigError("compare needs at least one model.")


def expand_specs(
    models: Sequence[str], presets: Sequence[str], feature_sets: Sequence[str] = ("paper",)
) -> tuple[RunSpec, ...]:
    """Models x presets x feature sets; tree models get preset "-" (presets do not apply).

    An entry "model:preset" pins that model to one preset. The ``ensemble`` takes presets
    like a deep model: the preset is that of its deep members (LightGBM has none).

    >>> [s.key for s in expand_specs(["dnn", "lightgbm"], ["paper", "tuned"])]
    ['dnn-paper-paper', 'dnn-tuned-paper', 'lightgbm-paper']
    """
    from iomt_ids.models.trees import TREE_MODELS

    specs: list[RunSpec] = []
    for fs in feature_sets:
        for entry in models:
            name, _, pinned = entry.partition(":")
            if name not in DEEP_MODELS and name not in TREE_MODELS and name != "ensemble":
                raise ConfigError(
                    f"model must be one of {[*DEEP_MODELS, *TREE_MODELS, 'ensemble']}; got {name!r} instead."
                )
            if name in TREE_MODELS:
                wanted = ["-"]
            else:
                wanted = [pinned] if pinned else list(presets)
                for p in wanted:
                    get_preset(p)
            specs += [RunSpec(name, p, fs) for p in wanted]
    return tuple(dict.fromkeys(specs))


def _run_path(out: Path, task: int, spec: RunSpec, seed: int) -> Path:
    return out / "runs" / f"{task}c" / spec.key / f"seed{seed}.json"


def _done(out: Path, task: int, spec: RunSpec, seed: int) -> bool:
    """The run's result exists, under its key or (written by an older version) its legacy key."""
    legacy = out / "runs" / f"{task}c" / spec.legacy_key / f"seed{seed}.json"
    return _run_path(out, task, spec, seed).exists() or legacy.exists()


def run_one(splits: DatasetSplits, task: int, spec: RunSpec, seed: int, cfg: CompareConfig) -> dict[str, Any]:
    """Train and test one (task, model, seed) under ``cfg.protocol``; returns a JSON-able record."""
    t0 = time.perf_counter()
    cut = apply_protocol(splits, cfg.protocol, seed=seed)
    prepared = prepare_splits(cut.splits, task)
    preset = spec.preset if spec.preset != "-" else "paper"
    config = get_preset(preset).with_overrides(seed=seed, max_epochs=cfg.epochs)
    columns = prepared.train.columns
    pre = preprocessor_for(spec.model, preset, columns, spec.feature_set)
    fit_start = time.perf_counter()
    bundle, history, sizes = fit_on_arrays(
        prepared.train.to_numpy(), prepared.y_train, release=prepared.train.release, columns=columns,
        classes=prepared.classes, task=task, model=spec.model, config=config,
        device=str(resolve_device(cfg.device)), progress=cfg.progress,
        model_kwargs=model_kwargs_for(spec.model, preset), preprocessor=pre,
    )  # fmt: skip
    train_seconds = time.perf_counter() - fit_start
    y_pred = bundle.predict_proba(prepared.test.to_numpy(), source="test").argmax(axis=1)
    m = compute_metrics(prepared.y_test, y_pred, prepared.classes)
    return {
        "task": task, "model": spec.model, "preset": spec.preset, "feature_set": spec.feature_set,
        "key": spec.key, "seed": seed, "protocol": cfg.protocol, "protocol_description": cut.description,
        "capture_disjoint_classes": list(cut.capture_disjoint_classes),
        "macro_f1": m["macro_f1"], "weighted_f1": m["weighted_f1"], "accuracy": m["accuracy"],
        "per_class_f1": {k: v["f1"] for k, v in m["per_class"].items()},
        "support": {k: v["support"] for k, v in m["per_class"].items()},
        "classes": list(prepared.classes), "features": list(bundle.preprocessor.kept_columns_),
        "rows_train": sizes["rows_train"], "rows_val": sizes["rows_val"], "rows_test": len(prepared.test),
        "duplicates_dropped": prepared.dedup.as_dict(), "epochs": len(history),
        "best_epoch": history.best_epoch, "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - t0, "train_config": config.as_dict(),
        **_ensemble_record(bundle.estimator),
    }  # fmt: skip


def _ensemble_record(estimator: Any) -> dict[str, Any]:
    """An ensemble's members, weights and validation scores for its run record (empty for other models)."""
    selection = getattr(estimator, "selection", None)
    if not selection:
        return {}
    return {"ensemble": {"members": estimator.describe(), **selection}}


def _claim(path: Path) -> bool:
    """Take the lock file of one run; False when a live process holds it.

    Several ``compare`` processes may share one ``--out`` folder (one per core): each
    takes the next run nobody has claimed. A lock left by a dead process is taken over.
    """
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text() or "0")
                os.kill(pid, 0)
                return False  # a live worker runs it
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def compare(cfg: CompareConfig) -> list[dict[str, Any]]:
    """Run every (task, spec, seed) of ``cfg``; write results incrementally; return the aggregate rows."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    splits = load_dataset(cfg.data, progress=cfg.progress)
    if cfg.executor == "ray":
        _compare_on_ray(cfg, out, splits)
    for seed in range(cfg.seeds):  # seed-major: a partial run still covers every task
        for task in cfg.tasks:
            for spec in cfg.specs:
                path = _run_path(out, task, spec, seed)
                if cfg.resume and _done(out, task, spec, seed):
                    log.info("compare: %s %dc seed %d already done", spec.key, task, seed)
                    continue
                if not _claim(path):
                    log.info("compare: %s %dc seed %d is being run by another worker", spec.key, task, seed)
                    continue
                try:
                    log.info("compare: %s %dc seed %d ...", spec.key, task, seed)
                    rec = run_one(splits, task, spec, seed, cfg)
                    path.write_text(json.dumps(rec, indent=2))
                finally:
                    path.with_suffix(".lock").unlink(missing_ok=True)
                _log_done(spec, task, seed, rec)
                write_tables(out, load_results(out), data=str(cfg.data))
    rows = aggregate(load_results(out))
    write_tables(out, load_results(out), data=str(cfg.data))
    return rows


def _log_done(spec: RunSpec, task: int, seed: int, rec: dict[str, Any]) -> None:
    log.info(
        "compare: %s %dc seed %d: macro-F1 %.4f (%.0fs)",
        spec.key, task, seed, rec["macro_f1"], rec["total_seconds"],
    )  # fmt: skip


def _compare_on_ray(cfg: CompareConfig, out: Path, splits: DatasetSplits) -> None:
    """Run every pending run as a Ray task; write each record as it arrives, as the local loop does.

    Runs that fail are logged and left undone: the local loop after this one (in
    :func:`compare`) then tries them once more in this process and reports a real error.
    """
    from tqdm.auto import tqdm

    from iomt_ids.models.registry import MODELS
    from iomt_ids.workflows.sweep import run_on_ray

    pending = [
        (task, spec, seed)
        for seed in range(cfg.seeds)
        for task in cfg.tasks
        for spec in cfg.specs
        if not (cfg.resume and _done(out, task, spec, seed))
    ]
    if not pending:
        return
    results = run_on_ray(
        run_one, splits, pending, replace(cfg, progress=False), address=cfg.ray_address, workers=cfg.workers,
        is_deep=lambda name: MODELS[name].kind in ("torch", "ensemble"),
    )  # fmt: skip
    with tqdm(total=len(pending), desc="compare (ray)", unit="run", disable=not cfg.progress) as bar:
        for task, spec, seed, rec, err in results:
            bar.update(1)
            if rec is None:
                log.error("compare: %s %dc seed %d failed on Ray: %s", spec.key, task, seed, err)
                continue
            path = _run_path(out, task, spec, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec, indent=2))
            _log_done(spec, task, seed, rec)
    write_tables(out, load_results(out), data=str(cfg.data))


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every per-run record under ``out/runs``."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("runs/*c/*/seed*.json"))]


def aggregate(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (task, model, preset, feature set), macro-F1 first."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in records:
        # grouped by the spec, not the stored key: records under the legacy tree key join the new ones
        key = RunSpec(r["model"], r["preset"], r.get("feature_set", "paper")).key
        groups.setdefault((int(r["task"]), key), []).append(r)
    rows = []
    for (task, key), rs in groups.items():
        row: dict[str, Any] = {
            "task": task, "key": key, "model": rs[0]["model"], "preset": rs[0]["preset"],
            "feature_set": rs[0]["feature_set"], "protocol": rs[0]["protocol"], "seeds": sorted(r["seed"] for r in rs),
            "n": len(rs),
        }  # fmt: skip
        for k in ("macro_f1", "weighted_f1", "accuracy", "train_seconds", "epochs"):
            v = np.asarray([float(r[k]) for r in rs])
            row[k] = float(v.mean())
            row[f"{k}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        classes = rs[0]["classes"]
        row["classes"] = classes
        row["per_class_f1"] = {c: float(np.mean([r["per_class_f1"][c] for r in rs])) for c in classes}
        rows.append(row)
    rows.sort(key=lambda r: (r["task"], _order_key(r)))
    return rows


def _order_key(row: dict[str, Any]) -> tuple[int, int, str]:
    from iomt_ids.models.trees import TREE_MODELS

    order = [*DEEP_MODELS, *TREE_MODELS, "ensemble"]
    presets = ["paper", "fast", "tuned", "deep", "-"]
    return (
        order.index(row["model"]) if row["model"] in order else 99,
        presets.index(row["preset"]) if row["preset"] in presets else 9,
        row["feature_set"],
    )


def mean_std(row: dict[str, Any], key: str) -> str:
    """``mean ± std``; just the value for one seed (a spread of one run is not a figure)."""
    if row.get("n", 2) < 2:
        return f"{row[key]:.4f}"
    return f"{row[key]:.4f} ± {row[key + '_std']:.4f}"


def _paper_cell(model: str, task: int) -> str:
    name = _PAPER_OF.get(model)
    if name is None or task not in PAPER_RESULTS[name]:
        return "–"
    acc, _, _, f1 = PAPER_RESULTS[name][task]
    return f"{acc / 100:.4f} / {f1 / 100:.4f}"


def write_tables(out: Path, records: Sequence[dict[str, Any]], *, data: str = "") -> list[dict[str, Any]]:
    """Write ``compare.json``, ``compare.csv``, ``compare.md`` and one F1 heat map per task."""
    out = Path(out)
    rows = aggregate(records)
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    header = "task,model,preset,feature_set,n_seeds,macro_f1,macro_f1_std,weighted_f1,weighted_f1_std,accuracy,accuracy_std,train_seconds"
    csv = [header] + [
        f"{r['task']},{r['model']},{r['preset']},{r['feature_set']},{r['n']},{r['macro_f1']:.6f},"
        f"{r['macro_f1_std']:.6f},{r['weighted_f1']:.6f},{r['weighted_f1_std']:.6f},{r['accuracy']:.6f},"
        f"{r['accuracy_std']:.6f},{r['train_seconds']:.1f}"
        for r in rows
    ]
    (out / "compare.csv").write_text("\n".join(csv) + "\n")
    first = records[0] if records else {}
    lines = [
        "# Model comparison: macro-F1 first",
        "",
        f"- data: `{data or first.get('data', '?')}`; protocol: {first.get('protocol', '?')} "
        f"({first.get('protocol_description', '')})",
        "- duplicates within each split and test rows whose features occur in train are removed before "
        "anything is fitted (counts in each run's JSON under `runs/`).",
        "- validation: stratified 20 % of train (early stopping, tuning); the test rows are used only for "
        "these scores.",
        "- values: mean ± sample std over seeds (seed = weights, shuffling, validation split)."
        if any(r["n"] > 1 for r in rows)
        else "- values: one seed per row (seed = weights, shuffling, validation split), so no spread.",
        "- paper accuracy / weighted-F1: the published figures of that architecture (v1 release, full data, "
        "official split; no macro-F1 reported); shown beside ours, not comparable like for like.",
        "",
    ]
    for task in sorted({r["task"] for r in rows}):
        lines += [
            f"## {task} classes",
            "",
            "| model | preset | features | seeds | **macro-F1** | weighted-F1 | accuracy | train s | "
            "paper accuracy / weighted-F1 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        task_rows = [r for r in rows if r["task"] == task]
        best = max(r["macro_f1"] for r in task_rows)
        for r in task_rows:
            macro = mean_std(r, "macro_f1")
            macro = f"**{macro}**" if r["macro_f1"] == best else macro
            lines.append(
                f"| {r['model']} | {r['preset']} | {r['feature_set']} | {r['n']} | {macro} | "
                f"{mean_std(r, 'weighted_f1')} | {mean_std(r, 'accuracy')} | {r['train_seconds']:.0f} | "
                f"{_paper_cell(r['model'], task)} |"
            )
        lines += ["", f"![per-class F1, {task} classes](f1_heatmap_{task}c.png)", ""]
        fig = plot_f1_heatmap(
            np.asarray([[r["per_class_f1"][c] for c in r["classes"]] for r in task_rows]),
            [f"{r['model']} ({r['preset']}, {r['feature_set']})" for r in task_rows],
            task_rows[0]["classes"],
            f"per-class F1 on test, {task} classes (mean over seeds)",
        )
        save_figure(fig, out / f"f1_heatmap_{task}c.png")
    (out / "compare.md").write_text("\n".join(lines))
    return rows
