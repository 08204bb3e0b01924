"""Choices shared by several commands (str Enums, as Typer documents)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FEATURE_SETS", "PROTOCOLS", "ModelName", "Preset", "Task"]

# Copies of iomt_ids.features.feature_sets.FEATURE_SETS and iomt_ids.data.protocols.PROTOCOLS
# (those modules import polars), so that a command checks these options before heavy imports;
# tests/cli/test_cli_errors.py keeps them equal.
FEATURE_SETS: tuple[str, ...] = ("paper", "robust")
PROTOCOLS: tuple[str, ...] = ("shipped", "capture", "random")


class Task(StrEnum):
    two = "2"
    six = "6"
    nineteen = "19"


class ModelName(StrEnum):
    dnn = "dnn"
    lstm = "lstm"
    gru = "gru"
    lstm_dnn = "lstm_dnn"
    gru_dnn = "gru_dnn"
    lightgbm = "lightgbm"
    random_forest = "random_forest"


class Preset(StrEnum):
    paper = "paper"
    fast = "fast"
    tuned = "tuned"
