"""Benchmark: training rows/s per epoch and validation accuracy, our trainer vs a plain batch-64 loop.

For each model, on SYNTHETIC rows (``benchmarks/synth.py``, in memory; never real
data), one task (default 19 classes), one seeded 80/20 stratified split, the same
fitted preprocessing for every run:

* ``baseline_batch64``: the papers' recipe as a plain PyTorch loop - ``DataLoader``
  over a ``TensorDataset`` (shuffle, batch 64), Adam 1e-4, cross-entropy, one
  optimiser step per batch, validation after each epoch. ``--baseline-epochs`` epochs.
* ``trainer_<preset>``: :class:`iomt_ids.training.Trainer` with each preset
  (``paper``: batch 64, lr 1e-4; ``fast``: large batch, scaled lr, warm-up + cosine,
  data as one tensor on the device, bf16 autocast on CUDA), up to
  ``--epochs`` epochs (early stopping as configured).

Reported per run: rows/s of every epoch (training pass only, clocks read after
``torch.cuda.synchronize`` on CUDA), validation accuracy per epoch, wall time, and
*time to accuracy*: the seconds each run needed to reach the baseline's final
validation accuracy. ``speedup_rows_per_s`` compares median epoch rows/s with the
baseline's; ``speedup_time_to_accuracy`` compares time to the baseline's accuracy.

    python benchmarks/bench_train.py --out benchmarks/results/train-cpu.json
    python benchmarks/bench_train.py --device cuda --rows 7170000 --models all   # full size on a GPU
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import cpu_seconds, machine, peak_rss_mb, sync, synthetic_matrix, write_result
from torch.utils.data import DataLoader, TensorDataset

from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.data.split import stratified_split
from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.models import DEEP_MODELS, build_model
from iomt_ids.training import Trainer, get_preset
from iomt_ids.workflows.train import encode_labels


def reference_model(model: str, n_features: int, n_classes: int) -> torch.nn.Module:
    """The model as a plain PyTorch port of the papers would run it: nn.LSTM/nn.GRU, nn.Dropout.

    Same architecture and initial weights as ``build_model``; the library's exact T = 1
    step kernels and CPU dropout mask (iomt_ids.models.kernels) are switched off.
    """
    net = build_model(model, n_features, n_classes)
    rnn = getattr(net, "rnn", None)
    if rnn is not None:
        rnn.single_step = False
    for parent in net.modules():
        for name, child in parent.named_children():
            if isinstance(child, torch.nn.Dropout):
                setattr(parent, name, torch.nn.Dropout(child.p))
    return net


def shaped(model: str, x: np.ndarray) -> np.ndarray:
    net = build_model(model, x.shape[1], 2)
    return x[:, None, :] if getattr(net, "sequence_input", False) else x


def baseline_loop(
    model: str, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, n_classes: int,
    epochs: int, device: str, seed: int, max_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """The paper-style recipe: DataLoader, batch 64, Adam 1e-4, cross-entropy, nn.LSTM/nn.GRU layers."""
    torch.manual_seed(seed)
    net = reference_model(model, x_tr.shape[-1], n_classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    xv, yv = torch.from_numpy(x_va).to(device), torch.from_numpy(y_va).to(device)
    epochs_out, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        net.train()
        sync(device)
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        rows = 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rows += len(yb)
            if time.perf_counter() - t0 > max_seconds:  # bounded runtime: a partial epoch
                break
        sync(device)
        train_s, train_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        net.eval()
        with torch.no_grad():
            correct = sum(
                int((net(xv[i : i + 16384]).argmax(1) == yv[i : i + 16384]).sum())
                for i in range(0, len(yv), 16384)
            )
        sync(device)
        elapsed += time.perf_counter() - t0
        epochs_out.append(
            {
                "epoch": epoch,
                "rows": rows,
                "train_rows_per_s": round(rows / train_s),
                "train_rows_per_cpu_s": round(rows / max(train_cpu, 1e-9)),
                "val_accuracy": correct / len(yv),
                "elapsed_s": round(elapsed, 2),
                "partial": rows < len(y_tr),
            }
        )
    return {"epochs": epochs_out}


def trainer_run(
    model: str, preset: str, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
    n_classes: int, epochs: int, device: str, seed: int, **overrides: Any,
) -> dict[str, Any]:  # fmt: skip
    cfg = get_preset(preset).with_overrides(max_epochs=epochs, seed=seed, **overrides)
    torch.manual_seed(seed)
    net = build_model(model, x_tr.shape[-1], n_classes)
    trainer = Trainer(net, cfg, device=device, progress=False)
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    history = trainer.fit(x_tr, y_tr, x_va, y_va)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    elapsed, out = 0.0, []
    for rec in history:
        elapsed += rec["seconds"]
        out.append(
            {
                "epoch": rec["epoch"],
                "rows": len(y_tr),
                "train_rows_per_s": round(rec["train_rows_per_s"]),
                "val_accuracy": rec["val_accuracy"],
                "elapsed_s": round(elapsed, 2),
            }
        )
    return {
        "config": {
            k: cfg.as_dict()[k] for k in ("batch_size", "lr", "schedule", "amp", "max_epochs", "patience")
        },
        "epochs": out,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rows_per_cpu_s_incl_validation": round(len(y_tr) * len(out) / max(cpu, 1e-9)),
    }


def summarise(run: dict[str, Any], target_acc: float, base_rps: float, base_time: float) -> None:
    rps = float(np.median([e["train_rows_per_s"] for e in run["epochs"]]))
    run["median_rows_per_s"] = round(rps)
    run["final_val_accuracy"] = run["epochs"][-1]["val_accuracy"]
    run["best_val_accuracy"] = max(e["val_accuracy"] for e in run["epochs"])
    hit = next((e for e in run["epochs"] if e["val_accuracy"] >= target_acc), None)
    run["seconds_to_baseline_accuracy"] = hit["elapsed_s"] if hit else None
    run["speedup_rows_per_s"] = round(rps / base_rps, 2)
    run["speedup_time_to_accuracy"] = round(base_time / hit["elapsed_s"], 2) if hit else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dnn,lstm_dnn,gru_dnn", help="comma-separated, or 'all'")
    ap.add_argument("--presets", default="paper,fast")
    ap.add_argument("--task", type=int, default=19)
    ap.add_argument("--rows", type=int, default=200_000, help="synthetic rows before the 80/20 split")
    ap.add_argument("--epochs", type=int, default=8, help="max epochs of the trainer's fast preset runs")
    ap.add_argument("--paper-epochs", type=int, default=1, help="epochs of the trainer's paper preset")
    ap.add_argument("--baseline-epochs", type=int, default=2)
    ap.add_argument("--max-epoch-seconds", type=float, default=120.0, help="cut a baseline epoch after this")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast-batch", type=int, default=0, help="override the fast preset's batch size")
    ap.add_argument("--fast-lr", type=float, default=0.0, help="override the fast preset's learning rate")
    ap.add_argument("--quick", action="store_true", help="60 k rows, 1 baseline epoch, 4 fast epochs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.baseline_epochs, args.epochs = 60_000, 1, 4
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    models = list(DEEP_MODELS) if args.models == "all" else args.models.split(",")
    x_raw, labels = synthetic_matrix(args.rows, seed=args.seed)
    y, classes = encode_labels(labels, args.task)
    tr, va = stratified_split(y, 0.2, args.seed)
    pre = Preprocessor(input_columns=V2_COLUMNS).fit(x_raw[tr])
    x_tr, x_va = pre.transform(x_raw[tr]), pre.transform(x_raw[va])
    y_tr, y_va = y[tr], y[va]
    del x_raw
    result: dict[str, Any] = {
        "benchmark": "bench_train",
        "machine": machine(device),
        "device": device,
        "data": f"SYNTHETIC v2 rows (benchmarks/synth.py), {len(tr)} train / {len(va)} validation, "
        f"{args.task} classes, {x_tr.shape[1]} features after preprocessing",
        "settings": {**vars(args), "torch_threads": torch.get_num_threads()},
        "models": {},
    }
    for model in models:
        xt, xv = shaped(model, x_tr), shaped(model, x_va)
        base = baseline_loop(
            model, xt, y_tr, xv, y_va, len(classes), args.baseline_epochs, device, args.seed,
            args.max_epoch_seconds,
        )  # fmt: skip
        base_rps = float(np.median([e["train_rows_per_s"] for e in base["epochs"]]))
        target = base["epochs"][-1]["val_accuracy"]
        base_time = base["epochs"][-1]["elapsed_s"]
        summarise(base, target, base_rps, base_time)
        entry: dict[str, Any] = {"baseline_batch64": base}
        for preset in args.presets.split(","):
            epochs = args.paper_epochs if preset == "paper" else args.epochs
            overrides = (
                {"batch_size": args.fast_batch or None, "lr": args.fast_lr or None}
                if preset == "fast"
                else {}
            )
            run = trainer_run(
                model, preset, xt, y_tr, xv, y_va, len(classes), epochs, device, args.seed, **overrides
            )
            summarise(run, target, base_rps, base_time)
            entry[f"trainer_{preset}"] = run
        entry["peak_rss_mb_after"] = peak_rss_mb()
        result["models"][model] = entry
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
