"""Fixtures of the adaptation tests: a small model trained on the embedded lab run 1, and benign captures.

Everything is real lab traffic shipped with the package (``iomt_ids/datasets/lab``): the model
is trained on lab run 1's feature rows, the site's normal traffic is the shipped benign capture
of lab run 2 (first 60 % for calibration, the rest held out), and the attacks are the shipped
port-scan and SYN-flood captures of the same run.
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest

from iomt_ids.workflows.demo import embedded_lab_dir

CALIB_SHARE = 0.6


@pytest.fixture(scope="session")
def lab_root() -> Path:
    return embedded_lab_dir()


def _split_pcap(src: Path, first: Path, rest: Path, share: float) -> None:
    with src.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        packets = list(reader)
        linktype = reader.datalink()
    cut = int(len(packets) * share)
    for path, part in ((first, packets[:cut]), (rest, packets[cut:])):
        with path.open("wb") as out:
            w = dpkt.pcap.Writer(out, linktype=linktype, nano=False)
            for ts, buf in part:
                w.writepkt(buf, ts)


@pytest.fixture(scope="session")
def benign_split(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benign")
    calib, holdout = root / "calib.pcap", root / "holdout.pcap"
    _split_pcap(lab_root / "captures" / "Benign_lab.pcap", calib, holdout, CALIB_SHARE)
    return {"calib": calib, "holdout": holdout}


@pytest.fixture(scope="session")
def lab_model(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-class GRU-DNN on lab run 1 (robust features: no window-size columns), 12 epochs."""
    from iomt_ids.data.loader import DatasetSplits, load_split
    from iomt_ids.workflows.train import RunConfig, train_run

    out = tmp_path_factory.mktemp("labmodel") / "run"
    splits = DatasetSplits(load_split(lab_root / "run1"), load_split(lab_root / "run2"), lab_root / "run1",
                           lab_root / "run2")  # fmt: skip
    train_run(
        RunConfig(data=lab_root, task=6, model="gru_dnn", out=out, preset="fast", epochs=12, feature_set="robust",
                  device="cpu", progress=False),
        splits=splits,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def site_dir(
    lab_model: Path, benign_split: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from iomt_ids.workflows.adapt import AdaptConfig, adapt_site

    out = tmp_path_factory.mktemp("site") / "site"
    adapt_site(AdaptConfig(model=lab_model, out=out, benign=(benign_split["calib"],), progress=False))
    return out
