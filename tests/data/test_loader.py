from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iomt_ids.data.loader import find_split_dirs, load_csv_files, load_dataset, load_split
from iomt_ids.exceptions import BadValueError, DatasetNotFoundError, SchemaError
from iomt_ids.features.schema import V1_COLUMNS, V2_COLUMNS, detect_release
from tests.conftest import synthetic_rows, write_synthetic_dataset


def test_detect_release_both_and_errors_name_columns() -> None:
    assert detect_release(list(V1_COLUMNS)) == "v1"
    assert detect_release(list(reversed(V2_COLUMNS))) == "v2"
    cols = [c for c in V2_COLUMNS if c != "Rate"] + ["Bogus"]
    with pytest.raises(SchemaError, match=r"Missing: \['Rate'\].*unexpected: \['Bogus'\]"):
        detect_release(cols, source="f.csv")


@pytest.mark.parametrize("release", ["v1", "v2"])
def test_load_generated_dataset_of_each_release(tmp_path: Path, release: str) -> None:
    root = write_synthetic_dataset(tmp_path / "deep" / "WiFi_and_MQTT" / "CSV", release=release)
    splits = load_dataset(tmp_path)  # found below any folder
    assert splits.train.release == release
    assert len(splits.train) == 3 * 120 and len(splits.test) == 3 * 40
    assert splits.train.columns == (V1_COLUMNS if release == "v1" else V2_COLUMNS)
    assert set(splits.train.labels) == {"Benign", "TCP/IP DDoS SYN", "ARP spoofing"}
    assert "TCP_IP-DDoS-SYN1" in set(splits.train.captures)
    assert splits.train_dir == root / "train"


def test_inf_and_empty_std_are_read_raw(tmp_path: Path) -> None:
    df = synthetic_rows("v2", 5)
    df.loc[0, "Rate"] = np.inf
    path = tmp_path / "Benign_train.pcap.csv"
    df.to_csv(path, index=False)
    text = path.read_text().splitlines()
    # blank the Std cell of row 2, as real one-packet windows have it
    std_idx = list(V2_COLUMNS).index("Std")
    cells = text[2].split(",")
    cells[std_idx] = ""
    text[2] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    data = load_csv_files([path])
    rate = data.table["Rate"].to_numpy()
    assert np.isinf(rate[0])
    assert data.table["Std"].null_count() == 1


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no 'train/' and 'test/'"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"no \*\.pcap\.csv files"):
        load_split(tmp_path / "empty")


def test_wrong_columns_name_the_file_and_columns(tmp_path: Path) -> None:
    df = synthetic_rows("v2", 3).drop(columns=["IAT"]).rename(columns={"Rate": "rate_x"})
    path = tmp_path / "Benign_train.pcap.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        SchemaError, match=r"Benign_train\.pcap\.csv.*Missing: \['Rate', 'IAT'\].*\['rate_x'\]"
    ):
        load_csv_files([path])


def test_non_numeric_cell_names_file_column_and_line(tmp_path: Path) -> None:
    df = synthetic_rows("v2", 4).astype(object)
    df.loc[2, "Tot sum"] = "abc"
    path = tmp_path / "ARP_Spoofing_test.pcap.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        BadValueError, match=r"ARP_Spoofing_test\.pcap\.csv: column 'Tot sum', data row 3 \(line 4\): 'abc'"
    ):
        load_csv_files([path])


def test_mixed_releases_are_refused(tmp_path: Path) -> None:
    synthetic_rows("v1", 3).to_csv(tmp_path / "Benign_train.pcap.csv", index=False)
    synthetic_rows("v2", 3).to_csv(tmp_path / "ARP_Spoofing_train.pcap.csv", index=False)
    with pytest.raises(SchemaError, match="releases are mixed"):
        load_split(tmp_path)


def test_two_train_test_pairs_are_ambiguous(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "a")
    write_synthetic_dataset(tmp_path / "b")
    with pytest.raises(DatasetNotFoundError, match="several train/test pairs"):
        find_split_dirs(tmp_path)


def test_real_sample_loads(sample_dir: Path) -> None:
    splits = load_dataset(sample_dir)
    assert splits.train.release == "v2"
    assert len(set(splits.train.labels)) == 19
    assert len(splits.train) == 17 * 3200 + 1118 + 2453 + 119 + 661
    assert np.isinf(splits.train.table["Rate"].to_numpy()).any()
