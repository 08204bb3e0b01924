"""Reproduce the papers: every task (2, 6, 19) x chosen models, one comparison report."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from iomt_ids.data.loader import load_dataset
from iomt_ids.evaluation.paper import paper_rows_for
from iomt_ids.evaluation.report import save_figure
from iomt_ids.training.history import History
from iomt_ids.workflows.train import RunConfig, train_run

__all__ = ["reproduce", "write_comparison"]

log = logging.getLogger(__name__)

_KEYS = ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1", "macro_f1")


def reproduce(
    data: str | Path,
    out: str | Path,
    *,
    tasks: Sequence[int] = (2, 6, 19),
    models: Sequence[str] = ("dnn", "lstm_dnn", "gru_dnn"),
    preset: str = "paper",
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train and evaluate each (task, model) on ``data``; write ``out/<task>c/<model>/`` and a comparison."""
    out = Path(out)
    splits = load_dataset(data, progress=progress)  # read once, reused by every run
    rows: list[dict[str, Any]] = []
    for task in tasks:
        for model in models:
            cfg = RunConfig(
                data=Path(data), task=task, model=model, out=out / f"{task}c" / model, preset=preset,
                epochs=epochs, seed=seed, device=device, progress=progress,
            )  # fmt: skip
            log.info("reproduce: %s, %d classes, preset %s", model, task, preset)
            m = train_run(cfg, splits=splits)
            best_val = _best_val_accuracy(cfg.out / "history.json", m.get("best_epoch"))
            rows.append(
                {"task": task, "model": model, **{k: m[k] for k in _KEYS}, "epochs": m["epochs"],
                 "best_epoch": m.get("best_epoch"), "best_val_accuracy": best_val,
                 "train_seconds": m["train_seconds"], "rows_train": m["rows_train"], "rows_test": m["rows_test"],
                 "duplicates_dropped": m["duplicates_dropped"], "run_dir": str(cfg.out)}
            )  # fmt: skip
            command = (
                f"iomt-ids reproduce --data {data} --out {out} --models {','.join(models)} "
                f"--tasks {','.join(str(t) for t in tasks)} --preset {preset} --seed {seed}"
                + (f" --epochs {epochs}" if epochs else "")
            )
            write_comparison(out, rows, data=str(data), preset=preset, seed=seed, command=command)
    return rows


def _best_val_accuracy(history_file: Path, best_epoch: int | None) -> float | None:
    """Validation accuracy of the epoch whose weights were kept (the best validation loss)."""
    if not history_file.exists():
        return None
    hist = History.load(history_file)
    for rec in hist:
        if rec.get("epoch") == best_epoch:
            return rec.get("val_accuracy")
    return None


def provenance(command: str) -> dict[str, Any]:
    """The command, package version, git commit (when run from a checkout), machine, time."""
    import datetime as dt
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("iomt-ids")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        pkg = "unknown"
    from iomt_ids.runtime import cpu_model, git_commit

    commit = git_commit(Path(__file__).resolve().parent)
    cpu = cpu_model()
    return {
        "command": command,
        "iomt_ids_version": pkg,
        "commit": commit,
        "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()}",
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def write_comparison(
    out: Path, rows: list[dict[str, Any]], *, data: str, preset: str, seed: int, command: str = ""
) -> None:
    """``comparison.json``, ``comparison.md`` (ours beside the papers) and ``comparison.png``."""
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(command or f"iomt-ids reproduce --data {data} --preset {preset} --seed {seed}")
    (out / "comparison.json").write_text(json.dumps({"provenance": prov, "runs": rows}, indent=2))
    lines = [
        "# Reproduction of the papers' pipeline",
        "",
        f"Data: `{data}`; split: the shipped train/ and test/ folders, de-duplicated within and across splits;",
        f"validation: stratified 20 % of train; preset: {preset}; seed: {seed}.",
        f"Command: `{prov['command']}`; commit {prov['commit'] or 'n/a'} (iomt-ids {prov['iomt_ids_version']}); "
        f"machine: {prov['machine']}, load average {prov['load_average']}; {prov['date']}.",
        "",
        "| task | model | accuracy | weighted-F1 | macro-F1 | epochs (best) | best val. acc. | train s "
        "| paper accuracy / weighted-F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = paper_rows_for(r["model"], r["task"])
        own = paper[0][1] if paper and r["model"] in ("dnn", "lstm_dnn", "gru_dnn") else None
        ref = f"{own[0]:.2f} / {own[3]:.2f}" if own else "n/a"
        lines.append(
            f"| {r['task']} | {r['model']} | {100 * r['accuracy']:.2f} | {100 * r['weighted_f1']:.2f} | "
            f"{100 * r['macro_f1']:.2f} | {r['epochs']} ({r.get('best_epoch') or '-'}) | "
            f"{_fmt(r.get('best_val_accuracy'))} | {r['train_seconds']:.0f} | {ref} |"
        )
    lines += [
        "",
        "Paper figures: full 45-column (v1) release, official split, weighted averages only (no macro-F1).",
        "",
        "![comparison](comparison.png)",
        "",
    ]
    (out / "comparison.md").write_text("\n".join(lines))
    labels = [f"{r['model']}\n{r['task']}c" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    for k, (key, name) in enumerate(
        [("accuracy", "accuracy"), ("weighted_f1", "weighted-F1"), ("macro_f1", "macro-F1")]
    ):
        ax.bar(x + (k - 1) * 0.27, [r[key] for r in rows], width=0.27, label=name)
    ax.set_xticks(x, labels=labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score on test")
    ax.set_title(f"reproduction ({preset} preset, seed {seed})")
    ax.legend(loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, out / "comparison.png")
