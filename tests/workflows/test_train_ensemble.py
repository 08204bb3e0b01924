"""``--model ensemble`` through the pipeline: train, bundle, report, predict/evaluate, compare.

Tiny synthetic datasets written like the real one (tests/conftest.py); real models, a few epochs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.artifacts import load_bundle
from iomt_ids.data.loader import load_dataset
from iomt_ids.data.protocols import apply_protocol
from iomt_ids.data.split import stratified_split
from iomt_ids.exceptions import ConfigError
from iomt_ids.models.ensemble import choose_weight, macro_f1
from iomt_ids.workflows.compare import CompareConfig, compare, expand_specs, load_results
from iomt_ids.workflows.train import RunConfig, ensemble_options, prepare_splits, train_run
from tests.conftest import synthetic_rows, write_synthetic_dataset

CLASSES = ("Benign", "TCP_IP-DDoS-SYN", "ARP_Spoofing")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; sys.argv = ['iomt-ids', *sys.argv[1:]]; from iomt_ids.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)


def _overlapping_dataset(root: Path, scrambled_test: bool = False) -> Path:
    """Three classes that overlap (shift 1 per class), so that the weights matter.

    ``scrambled_test``: the same train rows; the test files hold the rows of another class.
    """
    for split, n in (("train", 150), ("test", 60)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for k, stem in enumerate(CLASSES):
            src = (k + 1) % len(CLASSES) if scrambled_test and split == "test" else k
            seed = src + (100 if split == "test" else 0)
            idx = "1" if stem.startswith("TCP_IP") and split == "train" else ""
            synthetic_rows("v2", n, label_shift=1.0 * src, seed=seed).to_csv(
                root / split / f"{stem}{idx}_{split}.pcap.csv", index=False
            )
    return root


def test_cli_trains_an_ensemble_that_predict_and_evaluate_use(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "ds")
    run = tmp_path / "run"
    res = _cli("train", "--data", str(data), "--task", "6", "--model", "ensemble", "--epochs", "2",
               "--out", str(run), "--device", "cpu", "--threads", "1", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "ensemble 6-class: accuracy" in res.stdout
    meta = json.loads((run / "bundle.json").read_text())
    assert meta["model_name"] == "ensemble" and meta["estimator"]["kind"] == "ensemble"
    assert meta["preprocessing"]["scale"] is False  # the bundle only cleans; members bring their own scaling
    selection = meta["estimator"]["selection"]
    assert [c["name"] for c in selection["candidates"]] == ["gru_dnn"]  # the default, preset tuned
    assert selection["preset"] == "tuned" and selection["tree"] == "lightgbm"
    assert selection["validation_rows"] == meta["data"]["rows_val"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ensemble"]["weight_deep"] == selection["weight_deep"]
    report = (run / "report.md").read_text()
    assert "## Ensemble (chosen on the validation split only)" in report and "| lightgbm |" in report
    assert (run / "training_curves.png").stat().st_size > 0 and (run / "ensemble.json").is_file()

    scored = tmp_path / "scored.csv"
    res = _cli("predict", "--model", str(run), "--input", str(data / "test" / "ARP_Spoofing_test.pcap.csv"),
               "--output", str(scored), "--threads", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(scored)
    assert len(out) == 40 and set(out["model_version"]) == {meta["version"]}
    probs = out[[c for c in out.columns if c.startswith("p_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (out["predicted_class"] == "SPOOFING").mean() > 0.9  # ARP spoofing rows, 6-class label

    res = _cli(
        "evaluate",
        "--model",
        str(run),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "eval"),
        "--threads",
        "1",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["macro_f1"] > 0.9


def test_weights_are_chosen_on_validation_rows_only(tmp_path: Path) -> None:
    """Scrambling the test labels changes nothing in the choice; the validation rows reproduce it."""
    runs = {}
    for name, scrambled in (("plain", False), ("scrambled", True)):
        data = _overlapping_dataset(tmp_path / name, scrambled_test=scrambled)
        cfg = RunConfig(data=data, task=19, model="ensemble", out=tmp_path / f"run-{name}", preset="fast",
                        epochs=4, device="cpu", progress=False, model_kwargs={"deep": ["dnn"]})  # fmt: skip
        runs[name] = (train_run(cfg), data, cfg.out)
    (plain, data, out), (scrambled, _, out_s) = runs["plain"], runs["scrambled"]
    assert scrambled["macro_f1"] < plain["macro_f1"] - 0.3  # the test split really disagrees

    def choice(path: Path) -> dict:
        sel = json.loads((path / "bundle.json").read_text())["estimator"]["selection"]
        return {k: v for k, v in sel.items() if k not in ("candidates", "tree_member")}

    assert choice(out) == choice(out_s)
    bundle = load_bundle(out)
    prepared = prepare_splits(
        apply_protocol(load_dataset(data, progress=False), "shipped", seed=0).splits, 19
    )
    raw = prepared.train.to_numpy()
    np.testing.assert_array_equal(bundle.predict_proba(raw), load_bundle(out_s).predict_proba(raw))

    # the recorded choice is reproduced from the validation rows alone
    _, va = stratified_split(prepared.y_train, 0.2, 0)
    y_va = prepared.y_train[va]
    probas = bundle.estimator.member_probas(bundle.transform(raw[va]))
    sel = bundle.estimator.selection
    assert sel["validation_rows"] == len(va)
    assert len(probas) == 2 and 0.0 < sel["weight_deep"] < 1.0  # a real blend on these overlapping classes
    redo = choose_weight(probas[0], probas[1], y_va)
    assert redo["weight"] == sel["weight_deep"] and redo["macro_f1"] == pytest.approx(sel["val_macro_f1"])
    tree_alone = macro_f1(y_va, probas[1].argmax(1), len(bundle.classes))
    assert tree_alone == pytest.approx(sel["tree_member"]["val_macro_f1"])


def test_ensemble_options_are_checked() -> None:
    assert ensemble_options() == {"deep": ["gru_dnn"], "tree": "lightgbm"}
    assert ensemble_options({"deep": ["gru_dnn", "dnn"]})["deep"] == ["gru_dnn", "dnn"]
    assert ensemble_options({"deep": "dnn"}) == {"deep": ["dnn"], "tree": "lightgbm"}
    # the deep preset brings its own member (the DNN it was validated on); an explicit choice wins
    assert ensemble_options(None, "deep") == {"deep": ["dnn"], "tree": "lightgbm"}
    assert ensemble_options({"deep": "gru_dnn"}, "deep")["deep"] == ["gru_dnn"]
    assert ensemble_options(None, "tuned")["deep"] == ["gru_dnn"]
    with pytest.raises(
        ConfigError, match=r"ensemble options must be among \['deep', 'tree'\]; got \['depth'\]"
    ):
        ensemble_options({"depth": 3})
    with pytest.raises(ConfigError, match="ensemble option 'deep' must list distinct models of"):
        ensemble_options({"deep": ["lightgbm"]})
    with pytest.raises(ConfigError, match="ensemble option 'tree' must be one of"):
        ensemble_options({"tree": "dnn"})
    with pytest.raises(ConfigError, match="ensemble option 'tree'"):
        RunConfig(data=Path("."), task=2, model="ensemble", out=Path("x"), model_kwargs={"tree": "gru"})


def test_compare_sweeps_the_ensemble_with_its_deep_preset(tmp_path: Path) -> None:
    specs = expand_specs(["ensemble", "lightgbm", "dnn:fast"], ["fast", "tuned"])
    assert [s.key for s in specs] == [
        "ensemble-fast-paper",
        "ensemble-tuned-paper",
        "lightgbm-paper",
        "dnn-fast-paper",
    ]
    data = write_synthetic_dataset(tmp_path / "ds")
    out = tmp_path / "cmp"
    rows = compare(
        CompareConfig(data=data, out=out, tasks=(2,), specs=(specs[0],), seeds=1, device="cpu", epochs=2)
    )
    assert [r["model"] for r in rows] == ["ensemble"] and rows[0]["macro_f1"] > 0.9
    (record,) = load_results(out)
    assert record["ensemble"]["preset"] == "fast" and record["ensemble"]["tree"] == "lightgbm"
    assert "| ensemble | fast | paper | 1 |" in (out / "compare.md").read_text()
