"""Choices shared by several commands (str Enums, as Typer documents)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ModelName", "Preset", "Task"]


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
