from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.artifacts import load_bundle
from iomt_ids.exceptions import BundleError, SchemaError
from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.training import fit_bundle
from tests.conftest import synthetic_rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    import pandas as pd

    frame = pd.concat([synthetic_rows("v2", 150, 0.0, 1), synthetic_rows("v2", 150, 3.0, 2)], ignore_index=True)
    labels = ["Benign"] * 150 + ["TCP/IP DDoS SYN"] * 150
    bundle, hist = fit_bundle(frame, labels, task=2, model="gru_dnn", preset="fast", epochs=3, device="cpu")
    out = tmp_path_factory.mktemp("bundle")
    bundle.save(out)
    return bundle, out


def test_bundle_round_trip_gives_identical_probabilities(trained: tuple) -> None:
    bundle, out = trained
    rows = synthetic_rows("v2", 20, 1.5, 9)
    rows.loc[0, "Rate"] = np.inf
    rows.loc[1, "Std"] = np.nan
    again = load_bundle(out)
    p1, p2 = bundle.predict_proba(rows), again.predict_proba(rows)
    np.testing.assert_allclose(p1, p2, rtol=1e-6)
    assert again.classes == ("Benign", "Attack") and again.release == "v2" and again.task == 2
    assert again.version.startswith("gru_dnn-2c-") and again.version == bundle.version
    meta = json.loads((out / "bundle.json").read_text())
    assert {"preprocessing", "versions", "train_config", "input_columns"} <= set(meta)
    assert (out / "model.safetensors").exists() and not list(out.glob("*.pt")) and not list(out.glob("*.pkl"))


def test_column_order_does_not_matter_but_names_do(trained: tuple) -> None:
    bundle, _ = trained
    rows = synthetic_rows("v2", 10, 0.5, 4)
    np.testing.assert_allclose(bundle.predict_proba(rows), bundle.predict_proba(rows[list(reversed(V2_COLUMNS))]))
    with pytest.raises(SchemaError, match=r"Missing: \['IAT'\]; unexpected: \['iat'\]"):
        bundle.predict_proba(rows.rename(columns={"IAT": "iat"}))
    with pytest.raises(SchemaError, match=r"shape \(n, 39\)"):
        bundle.predict_proba(np.zeros((3, 45)))


def test_loading_refuses_a_schema_mismatch_or_missing_files(trained: tuple, tmp_path: Path) -> None:
    _, out = trained
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    meta["input_columns"] = meta["input_columns"][:-1]
    (bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match="do not match the v2 schema"):
        load_bundle(bad)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "missing")
    (bad / "bundle.json").unlink()
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(bad)
