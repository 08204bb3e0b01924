from __future__ import annotations

import json
from pathlib import Path

import pytest

from iomt_ids.artifacts import load_bundle
from iomt_ids.workflows import RunConfig, train_run

REQUIRED = {
    "accuracy", "weighted_precision", "weighted_recall", "weighted_f1", "macro_precision", "macro_recall",
    "macro_f1", "per_class", "task", "model", "rows_train", "rows_test", "duplicates_dropped",
}  # fmt: skip


def test_train_run_on_generated_data_writes_everything(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    m = train_run(
        RunConfig(
            data=tiny_dataset,
            task=19,
            model="dnn",
            out=out,
            preset="fast",
            epochs=15,
            batch_size=32,
            progress=False,
        )
    )
    assert REQUIRED <= set(m)
    saved = json.loads((out / "metrics.json").read_text())
    assert REQUIRED <= set(saved)
    assert m["accuracy"] > 0.9  # three well-separated synthetic classes
    for f in ("report.md", "confusion_matrix.png", "confusion_matrix_normalized.png", "training_curves.png",
              "class_distribution.png", "bundle.json", "model.safetensors", "history.json"):  # fmt: skip
        assert (out / f).stat().st_size > 0, f
    assert "paper: lstm_dnn (000, Table 6)" in (out / "report.md").read_text()
    assert load_bundle(out).task == 19


@pytest.mark.slow
@pytest.mark.parametrize("task,floor", [(2, 0.85), (6, 0.6), (19, 0.3)])
def test_real_sample_few_epochs_gives_sane_metrics(
    sample_dir: Path, tmp_path: Path, task: int, floor: float
) -> None:
    """Integration: the paper's GRU-DNN for a few fast epochs on the real v2 sample."""
    m = train_run(RunConfig(data=sample_dir, task=task, model="gru_dnn", out=tmp_path, preset="fast", epochs=4,
                            progress=False))  # fmt: skip
    assert m["duplicates_dropped"]["train"] > 0 and m["duplicates_dropped"]["cross_split"] > 0
    assert m["macro_f1"] > floor
    assert m["accuracy"] > m["macro_f1"] * 0.8
    assert len(m["per_class"]) == task
