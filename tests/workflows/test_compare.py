"""``compare``: every task x model x seed, mean ± std, incremental and resumable, and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iomt_ids.exceptions import ConfigError
from iomt_ids.workflows.compare import CompareConfig, compare, expand_specs, load_results


def test_expand_specs_pins_presets_and_gives_trees_none() -> None:
    keys = [
        s.key
        for s in expand_specs(["dnn", "gru_dnn:tuned", "lightgbm"], ["paper", "tuned"], ["paper", "robust"])
    ]
    assert keys == [
        "dnn-paper-paper", "dnn-tuned-paper", "gru_dnn-tuned-paper", "lightgbm-paper",
        "dnn-paper-robust", "dnn-tuned-robust", "gru_dnn-tuned-robust", "lightgbm-robust",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="model must be one of"):
        expand_specs(["svm"], ["paper"])
    with pytest.raises(ConfigError, match="preset must be one of"):
        expand_specs(["dnn:slow"], ["paper"])


def test_compare_writes_mean_std_table_heatmaps_and_resumes(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cfg = CompareConfig(
        data=tiny_dataset,
        out=out,
        tasks=(2, 19),
        specs=expand_specs(["dnn:fast", "lightgbm"], ["paper"]),
        epochs=8,
        seeds=2,
    )
    rows = compare(cfg)
    records = load_results(out)
    assert len(records) == 2 * 2 * 2  # tasks x models x seeds
    assert {(r["task"], r["model"]) for r in rows} == {
        (2, "dnn"),
        (2, "lightgbm"),
        (19, "dnn"),
        (19, "lightgbm"),
    }
    for row in rows:
        vals = [r["macro_f1"] for r in records if r["task"] == row["task"] and r["key"] == row["key"]]
        assert row["n"] == 2
        assert row["macro_f1"] == pytest.approx(np.mean(vals))
        assert row["macro_f1_std"] == pytest.approx(np.std(vals, ddof=1))
        if row["model"] == "lightgbm":
            assert row["macro_f1"] > 0.8  # well-separated synthetic classes
        else:  # 8 epochs of one large batch each: a smoke run, only its bookkeeping is checked
            assert 0.0 <= row["macro_f1"] <= 1.0 and row["epochs"] <= 8
    for r in records:
        assert {"test", "train", "cross_split"} <= set(r["duplicates_dropped"])
        assert r["protocol"] == "shipped"
    md = (out / "compare.md").read_text()
    assert md.index("macro-F1") < md.index("weighted-F1") < md.index("accuracy |")
    assert "0.9960 / 0.9960" in md  # the paper's DNN, 2-class, beside ours
    assert (out / "f1_heatmap_2c.png").stat().st_size > 0 and (out / "f1_heatmap_19c.png").stat().st_size > 0
    assert len((out / "compare.csv").read_text().splitlines()) == 1 + 4
    # resume: nothing is retrained
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/seed*.json")}
    compare(cfg)
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/seed*.json")} == stamps
    assert not list(out.glob("runs/*/*/*.lock"))


def test_compare_cli_prints_the_table(tiny_dataset: Path, tmp_path: Path) -> None:
    from iomt_ids.cli import _register, app

    _register()
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        ["compare", "--data", str(tiny_dataset), "--out", str(out), "--models", "lightgbm,random_forest",
         "--tasks", "6", "--seeds", "2", "--protocol", "random", "--feature-sets", "paper,robust"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "macro-F1" in res.output and "random_forest" in res.output and "robust" in res.output
    rows = json.loads((out / "compare.json").read_text())
    assert len(rows) == 4 and all(r["protocol"] == "random" for r in rows)
    robust = next(r for r in load_results(out) if r["feature_set"] == "robust")
    assert "Number" not in robust["features"] and "Tot size" not in robust["features"]
    bad = CliRunner().invoke(
        app, ["compare", "--data", str(tiny_dataset), "--out", str(out), "--protocol", "x"]
    )
    assert bad.exit_code == 2 and "--protocol" in bad.output


def test_one_seed_prints_no_spread_and_tree_runs_are_named_without_dashes(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    from iomt_ids.cli import _register, app

    _register()
    out = tmp_path / "one"
    res = CliRunner().invoke(
        app,
        ["compare", "--data", str(tiny_dataset), "--out", str(out), "--models", "lightgbm",
         "--tasks", "2", "--seeds", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "±" not in res.output
    assert "±" not in (out / "compare.md").read_text()
    assert [p.name for p in (out / "runs" / "2c").iterdir()] == ["lightgbm-paper"]
    assert "---" not in json.dumps(load_results(out)) and "---" not in (out / "compare.json").read_text()
    row = json.loads((out / "compare.json").read_text())[0]
    assert f"{row['macro_f1']:.4f}" in res.output


def test_runs_saved_under_the_old_tree_key_are_resumed_and_grouped(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "legacy"
    cfg = CompareConfig(
        data=tiny_dataset, out=out, tasks=(2,), specs=expand_specs(["lightgbm"], ["paper"]), seeds=2
    )
    compare(cfg)
    new, old = out / "runs" / "2c" / "lightgbm-paper", out / "runs" / "2c" / "lightgbm---paper"
    old.mkdir()
    rec = json.loads((new / "seed0.json").read_text())
    (old / "seed0.json").write_text(
        json.dumps({**rec, "key": "lightgbm---paper"})
    )  # as an older version wrote it
    (new / "seed0.json").unlink()
    rows = compare(cfg)
    assert not (new / "seed0.json").exists()  # resumed: not rerun
    assert len(rows) == 1 and rows[0]["n"] == 2 and rows[0]["key"] == "lightgbm-paper"
