"""``iomt-ids evaluate``: the rows it scores and the --data forms it accepts."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from iomt_ids.exceptions import DatasetNotFoundError
from iomt_ids.workflows.evaluate import evaluate_bundle, resolve_eval_dir
from tests.conftest import write_synthetic_dataset

runner = CliRunner()
_register()


def _train(data: Path, out: Path, task: str = "6") -> dict:
    res = runner.invoke(
        app, ["train", "--data", str(data), "--task", task, "--model", "dnn", "--preset", "fast", "--epochs", "1",
              "--out", str(out), "--quiet", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def sample_run(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A DNN trained for one epoch on the real sample: (run folder, train's metrics.json)."""
    out = tmp_path_factory.mktemp("sample") / "run"
    return out, _train(sample_dir, out)


def test_evaluate_drops_the_test_rows_train_dropped_as_leaks(
    sample_dir: Path, sample_run: tuple[Path, dict], tmp_path: Path
) -> None:
    run, trained = sample_run
    assert trained["duplicates_dropped"]["cross_split"] == 1816  # the shipped sample's leak
    res = runner.invoke(
        app, ["evaluate", "--model", str(run), "--data", str(sample_dir), "--out", str(tmp_path / "e")]
    )
    assert res.exit_code == 0, res.output
    assert "1816 rows seen in training dropped" in res.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["duplicates_dropped"] == {"test": trained["duplicates_dropped"]["test"], "cross_split": 1816}
    assert m["rows_test"] == trained["rows_test"] and m["train_overlap_checked"] is True
    assert m["accuracy"] == pytest.approx(trained["accuracy"]) and m["macro_f1"] == pytest.approx(
        trained["macro_f1"]
    )
    assert m["confusion_matrix"] == trained["confusion_matrix"]
    meta = json.loads((run / "bundle.json").read_text())
    assert meta["train_rows"]["file"] == "train_rows.npy" and meta["train_rows"]["rows"] > 0


def test_a_bundle_without_the_record_still_evaluates_with_a_warning(
    sample_dir: Path, sample_run: tuple[Path, dict], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run, trained = sample_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    meta = json.loads((old / "bundle.json").read_text())
    del meta["train_rows"]  # a bundle written before the record existed
    (old / "bundle.json").write_text(json.dumps(meta))
    (old / "train_rows.npy").unlink()
    with caplog.at_level(logging.WARNING, logger="iomt_ids.workflows.evaluate"):
        m = evaluate_bundle(old, sample_dir / "test", tmp_path / "e")
    assert "keeps no record of its training rows" in caplog.text and "cannot be recognised" in caplog.text
    assert m["duplicates_dropped"]["cross_split"] is None and m["train_overlap_checked"] is False
    assert m["rows_test"] == trained["rows_test"] + 1816


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("forms")
    data = write_synthetic_dataset(root / "ds")
    _train(data, root / "run", task="19")
    return data, root / "run"


def test_evaluate_accepts_a_lone_test_folder_a_csv_folder_and_one_csv_file(
    synthetic_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = synthetic_run
    only_test = tmp_path / "new_captures" / "site_a" / "test"  # test/ alone, two levels below --data
    shutil.copytree(data / "test", only_test)
    flat = tmp_path / "flat"  # a plain folder of *.pcap.csv
    shutil.copytree(data / "test", flat)
    one = data / "test" / "ARP_Spoofing_test.pcap.csv"
    assert resolve_eval_dir(tmp_path / "new_captures") == only_test
    assert (
        resolve_eval_dir(flat) == flat
        and resolve_eval_dir(one) == one
        and resolve_eval_dir(data) == data / "test"
    )
    rows = {}
    for name, where in (
        ("dataset", data),
        ("lone", tmp_path / "new_captures"),
        ("flat", flat),
        ("file", one),
    ):
        res = runner.invoke(
            app, ["evaluate", "--model", str(run), "--data", str(where), "--out", str(tmp_path / name)]
        )
        assert res.exit_code == 0, (name, res.output)
        rows[name] = json.loads((tmp_path / name / "metrics.json").read_text())["rows_test"]
    assert rows["dataset"] == rows["lone"] == rows["flat"] == 120 and rows["file"] == 40


def test_evaluate_names_the_path_and_what_it_expected(
    synthetic_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data, run = synthetic_run
    empty = tmp_path / "empty"
    (empty / "test").mkdir(parents=True)
    (empty / "notes.txt").write_text("no CSVs here")
    with pytest.raises(
        DatasetNotFoundError, match=r"empty: found no \*\.pcap\.csv files; expected a folder of"
    ):
        resolve_eval_dir(empty)
    with pytest.raises(DatasetNotFoundError, match=r"notes\.txt: not a CSV file; expected .*one CSV file"):
        resolve_eval_dir(empty / "notes.txt")
    with pytest.raises(DatasetNotFoundError, match=r"nope: does not exist; expected"):
        resolve_eval_dir(tmp_path / "nope")
    for site in ("a", "b"):
        shutil.copytree(data / "test", tmp_path / "two" / site / "test")
    with pytest.raises(DatasetNotFoundError, match=r"several 'test/' folders found .*point --data at one"):
        resolve_eval_dir(tmp_path / "two")
    res = runner.invoke(
        app, ["evaluate", "--model", str(run), "--data", str(empty), "--out", str(tmp_path / "e")]
    )
    assert res.exit_code == 2 and "empty: found no *.pcap.csv files" in res.output


def test_evaluate_report_has_no_placeholders(
    sample_dir: Path, sample_run: tuple[Path, dict], tmp_path: Path
) -> None:
    run, _ = sample_run
    res = runner.invoke(
        app, ["evaluate", "--model", str(run), "--data", str(sample_dir), "--out", str(tmp_path / "e")]
    )
    assert res.exit_code == 0, res.output
    report = (tmp_path / "e" / "report.md").read_text()
    head = report.split("## Overall")[0]
    assert "?" not in head and "0.0 s" not in head
    meta = json.loads((run / "bundle.json").read_text())
    assert f"validation {meta['data']['rows_val']}" in head
    assert "preset: fast; seed: 0" in head
    assert f"trained on: `{meta['data']['path']}`" in head
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert (m["preset"], m["seed"], m["rows_val"]) == ("fast", 0, meta["data"]["rows_val"])


def test_report_leaves_out_what_it_does_not_know(tmp_path: Path) -> None:
    from iomt_ids.evaluation.report import write_report_md

    pc = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    m = {"task": 2, "model": "dnn", "data": "d", "rows_test": 3, "accuracy": 1.0, "weighted_precision": 1.0,
         "weighted_recall": 1.0, "weighted_f1": 1.0, "macro_f1": 1.0, "per_class": {"Benign": pc}}  # fmt: skip
    write_report_md(tmp_path / "r.md", m)
    head = (tmp_path / "r.md").read_text().split("## Overall")[0]
    assert "?" not in head and "preset" not in head and "training time" not in head
    assert "- rows: test 3" in head and "- data: `d`" in head
    write_report_md(
        tmp_path / "r.md",
        {
            **m,
            "preset": "paper",
            "seed": 3,
            "epochs": 5,
            "best_epoch": 4,
            "train_seconds": 2.5,
            "device": "cpu",
            "rows_train": 7,
            "rows_val": 2,
        },
    )
    head = (tmp_path / "r.md").read_text().split("## Overall")[0]
    assert "- rows: train 7, validation 2, test 3" in head
    assert "- preset: paper; seed: 3; epochs run: 5 (best 4); training time: 2.5 s on cpu" in head
