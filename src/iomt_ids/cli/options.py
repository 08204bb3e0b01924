"""Options shared by several commands: one definition each, so that every command spells,
documents and checks them the same way (``Annotated`` types, as Typer documents).

Importing this module is cheap (no torch, polars or matplotlib): commands check their
arguments before they import the heavy parts.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.models.registry import MODELS

__all__ = [
    "FEATURE_SETS",
    "PROTOCOLS",
    "DataOpt",
    "DeviceOpt",
    "EpochsOpt",
    "FeatureSetOpt",
    "ModelName",
    "Preset",
    "PresetOpt",
    "ProtocolOpt",
    "QuietOpt",
    "RunDirOpt",
    "SeedOpt",
    "Task",
    "ThreadsOpt",
]

# Copies of iomt_ids.features.feature_sets.FEATURE_SETS and iomt_ids.data.protocols.PROTOCOLS
# (those modules import polars), so that a command checks these options before heavy imports;
# tests/cli/test_cli_errors.py keeps them equal.
FEATURE_SETS: tuple[str, ...] = ("paper", "robust")
PROTOCOLS: tuple[str, ...] = ("shipped", "capture", "random")


class Task(StrEnum):
    two = "2"
    six = "6"
    nineteen = "19"


#: Every registered model name (the one registry: iomt_ids.models.registry.MODELS).
ModelName = StrEnum("ModelName", {name: name for name in MODELS})  # type: ignore[misc]


class Preset(StrEnum):
    paper = "paper"
    fast = "fast"
    tuned = "tuned"
    deep = "deep"


#: The recipe ``train`` and ``compare`` use when none is named: the best measured one
#: (docs/results/compare: highest macro-F1 of the deep models on all three tasks).
DEFAULT_PRESET = Preset.tuned

DataOpt = Annotated[Path, typer.Option("--data", help="Dataset folder (train/ and test/ below it).")]
RunDirOpt = Annotated[Path, typer.Option("--model", help="RUN_DIR written by 'iomt-ids train'.")]
PresetOpt = Annotated[
    Preset,
    typer.Option(
        "--preset",
        help="Training recipe of the deep models: tuned (default, best measured on all tasks), deep (tuned + label "
        "smoothing 0.1, Dense 512-256; best deep on 19 classes), fast, or paper "
        "(the papers' recipe: Adam 1e-4, batch 64, up to 50 epochs). Trees have none.",
    ),
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="Override the preset's max epochs.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for weights, shuffling and split.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
FeatureSetOpt = Annotated[
    str, typer.Option("--feature-set", help="paper (all columns) or robust (see 'iomt-ids audit').")
]
ProtocolOpt = Annotated[
    str, typer.Option("--protocol", help="shipped (the release's train/test), capture or random split.")
]
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads",
        "--torch-threads",
        min=0,
        help="CPU threads for the model (PyTorch, LightGBM). 0: automatic, the usable CPUs that other jobs "
        "leave idle (env IOMT_IDS_THREADS overrides).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]

# -- detection (detect, scan) -------------------------------------------------------------------------------
DetectModelOpt = Annotated[
    Path,
    typer.Option("--model", "-m", help="RUN_DIR of a trained bundle, or SITE_DIR from 'iomt-ids adapt'."),
]
WindowOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--window", "-w", min=1, help="Window size; repeat for several streams. Default: 10 and 100."
    ),
]
ThresholdOpt = Annotated[
    float,
    typer.Option("--threshold", "-t", min=0.0, max=1.0, help="Alert when P(attack) = 1 - P(Benign) >= this."),
]
FoldSecondsOpt = Annotated[
    float,
    typer.Option(
        "--fold-seconds", min=0.0, help="Fold repeats per (source IP, class) over this interval; 0 off."
    ),
]
FoldIdleOpt = Annotated[
    float,
    typer.Option(
        "--fold-idle", min=0.0, help="A (source, class) quiet this long starts a new alert episode; 0 off."
    ),
]
EveOpt = Annotated[
    str,
    typer.Option(
        "--eve",
        help="extended (default): iomt-ids' fields in 'alert' (count, score, window, ...) and EVE stats lines; "
        "strict: lines valid against Suricata's EVE schema (those fields as alert.metadata string lists, "
        "no stats lines).",
    ),
]
ExplainOpt = Annotated[
    bool,
    typer.Option(
        "--explain/--no-explain",
        help="Explain every alert line written (top 3 features), one batch per window batch. Costs a few "
        "ms per written line for tree and deep models (TreeSHAP, integrated gradients); a site bundle's "
        "explanation is nearly free.",
    ),
]
