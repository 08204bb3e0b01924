"""Fixtures of the detection tests: known pcaps and one real small bundle trained on windows extracted from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.features.extract import extract_file
from tests.detection import traffic

#: The flood of the fixtures comes from one host (traffic.FLOODER): a DoS, as the detector names it.
FLOOD_CLASS = "TCP/IP DoS SYN"


@pytest.fixture(scope="session")
def pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training pcaps (benign only, flood only) and a test pcap (benign, flood from FLOODER, benign)."""
    root = tmp_path_factory.mktemp("pcaps")
    rng = np.random.default_rng(7)
    return {
        "train_benign": traffic.write_pcap(root / "train_benign.pcap", traffic.benign(4000, rng, traffic.T0)),
        "train_flood": traffic.write_pcap(
            root / "train_flood.pcap", traffic.syn_flood(8000, rng, traffic.T0, src="10.0.0.77")
        ),
        "benign": traffic.write_pcap(root / "benign.pcap", traffic.benign(1500, rng, traffic.T0 + 3600)),
        "mixed": traffic.write_pcap(root / "mixed.pcap", traffic.mixed_capture(rng)),
    }


@pytest.fixture(scope="session")
def bundle_dir(pcaps: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 19-class DNN bundle trained (40 one-step epochs) on W=10 and W=100 windows of the training pcaps."""
    from iomt_ids.workflows import fit_bundle

    frames, labels = [], []
    for name, label in (("train_benign", "Benign"), ("train_flood", FLOOD_CLASS)):
        for w in (10, 100):
            rows, _ = extract_file(pcaps[name], window=w, progress=False)
            frames.append(rows)
            labels += [label] * len(rows)
    frame = pd.concat(frames, ignore_index=True)
    bundle, _ = fit_bundle(
        frame, np.array(labels), task=19, model="dnn", preset="fast", epochs=40, device="cpu"
    )
    return bundle.save(tmp_path_factory.mktemp("bundle") / "run")


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> ModelBundle:
    return load_bundle(bundle_dir)
