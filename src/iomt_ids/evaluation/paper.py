"""The papers' reported figures, kept as data for side-by-side reports.

Values in percent, from seed 000 Table 6 (LSTM-DNN, and the DNN of Dadkhah et al. and the
L2D2 LSTM it compares with) and seed 001 Tables 2-8 (DNN, GRU-DNN). All on the 45-column
(v1) release with the official split; weighted averages; no macro-F1 was reported.
"""

from __future__ import annotations

__all__ = ["PAPER_RESULTS", "paper_rows_for"]

# model -> task -> (accuracy, precision, recall, f1), source
PAPER_RESULTS: dict[str, dict[int, tuple[float, float, float, float]]] = {
    "lstm_dnn (000, Table 6)": {
        2: (99.6445, 99.6398, 99.6445, 99.6415),
        6: (99.4667, 99.6227, 99.4667, 99.5310),
        19: (98.4256, 98.7723, 98.4256, 98.2460),
    },
    "gru_dnn (001, Table 8)": {
        2: (99.6, 99.6, 99.6, 99.6),
        6: (99.5, 99.6, 99.5, 99.5),
        19: (98.4, 98.6, 98.4, 98.2),
    },
    "dnn (001, Table 8)": {
        2: (99.6, 99.6, 99.6, 99.6),
        6: (98.9, 99.1, 98.9, 99.0),
        19: (93.1, 92.4, 93.1, 90.8),
    },
    "DNN, Dadkhah et al. 2024": {
        2: (99.6, 95.6, 94.8, 95.2),
        6: (73.4, 72.5, 69.3, 66.5),
        19: (72.9, 64.9, 55.3, 52.2),
    },
    "LSTM, L2D2 (Akar et al. 2025)": {
        2: (100, 100, 100, 100),
        6: (98.0, 98.0, 98.0, 98.0),
        19: (95.0, 96.0, 95.0, 95.0),
    },
}

_OURS_TO_PAPER = {
    "lstm_dnn": "lstm_dnn (000, Table 6)",
    "gru_dnn": "gru_dnn (001, Table 8)",
    "dnn": "dnn (001, Table 8)",
}


def paper_rows_for(model: str, task: int) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The paper rows to show beside our ``model`` on ``task``: its own paper first, then the baselines."""
    names = [_OURS_TO_PAPER[model]] if model in _OURS_TO_PAPER else []
    names += [n for n in PAPER_RESULTS if n not in names]
    return [(n, PAPER_RESULTS[n][task]) for n in names if task in PAPER_RESULTS[n]]
