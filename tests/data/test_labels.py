from __future__ import annotations

import pytest

from iomt_ids.data.labels import (
    CLASS6_TO_CLASS2,
    CLASS19_TO_CLASS6,
    CLASSES,
    STEM_TO_CLASS19,
    map_labels,
    parse_file_name,
)
from iomt_ids.exceptions import UnknownFileNameError
from tests.conftest import OFFICIAL_NAMES


def _official_names() -> list[str]:
    if not OFFICIAL_NAMES.exists():
        pytest.skip(f"{OFFICIAL_NAMES} not found (../shared is only present beside the checkout in CI)")
    return [
        ln.strip() for ln in OFFICIAL_NAMES.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]


def test_every_official_file_name_maps_to_a_label() -> None:
    names = _official_names()
    assert len(names) == 72
    parsed = [parse_file_name(n) for n in names]
    assert {p.label for p in parsed} == set(CLASSES[19])
    assert sum(p.split == "train" for p in parsed) == 51
    assert sum(p.split == "test" for p in parsed) == 21


def test_capture_index_is_stripped_but_kept_in_capture_id() -> None:
    p = parse_file_name("TCP_IP-DDoS-ICMP3_train.pcap.csv")
    assert (p.label, p.stem, p.capture, p.split) == (
        "TCP/IP DDoS ICMP",
        "TCP_IP-DDoS-ICMP",
        "TCP_IP-DDoS-ICMP3",
        "train",
    )
    assert parse_file_name("/x/y/MQTT-DoS-Connect_Flood_test.pcap.csv").label == "MQTT DoS connect flood"
    assert parse_file_name("TCP_IP-DoS-SYN_lab.pcap.csv").split == "lab"


@pytest.mark.parametrize(
    "name",
    ["Foo_train.pcap.csv", "Benign_train.csv", "TCP_IP-DDoS-XYZ1_train.pcap.csv", "Benignx_train.pcap.csv"],
)
def test_unknown_file_name_is_an_error_naming_the_file(name: str) -> None:
    with pytest.raises(UnknownFileNameError, match=name.replace(".", r"\.")):
        parse_file_name(name)


def test_maps_are_complete_and_consistent() -> None:
    assert len(CLASSES[19]) == 19 and set(STEM_TO_CLASS19.values()) == set(CLASSES[19])
    assert set(CLASS19_TO_CLASS6) == set(CLASSES[19])
    assert set(CLASS19_TO_CLASS6.values()) == set(CLASSES[6])
    assert set(CLASS6_TO_CLASS2.values()) == set(CLASSES[2])
    six = map_labels(list(CLASSES[19]), 6)
    assert (
        six.count("DDoS") == 4
        and six.count("DoS") == 4
        and six.count("MQTT") == 5
        and six.count("RECON") == 4
    )
    assert map_labels(["Benign", "ARP spoofing", "Recon ping sweep"], 2) == ["Benign", "Attack", "Attack"]
