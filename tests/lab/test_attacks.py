"""Scenario catalogue (pure): every dataset class, lab-only targets, bounded tools."""

from __future__ import annotations

import dataclasses

import pytest

from iomt_ids.data.labels import STEM_TO_CLASS19, parse_file_name
from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.attacks import AttackStep, Scenario, build_scenarios
from iomt_ids.lab.topology import default_topology


@pytest.fixture(scope="module")
def catalog() -> dict[str, Scenario]:
    return build_scenarios(default_topology(), seconds=20)


def test_one_scenario_per_dataset_class(catalog: dict[str, Scenario]) -> None:
    assert list(catalog) == list(STEM_TO_CLASS19)


def test_pcap_names_parse_to_their_class(catalog: dict[str, Scenario]) -> None:
    for stem, s in catalog.items():
        parsed = parse_file_name(s.pcap_name + ".csv")
        assert (parsed.stem, parsed.label, parsed.split) == (stem, STEM_TO_CLASS19[stem], "lab")


def test_windows_follow_the_dataset(catalog: dict[str, Scenario]) -> None:
    for stem, s in catalog.items():
        assert s.window == (100 if stem.startswith("TCP_IP-") else 10), stem


def test_floods_are_paced_and_counted(catalog: dict[str, Scenario]) -> None:
    for stem, s in catalog.items():
        for step in s.steps:
            if step.argv[0] == "hping3":
                assert "-c" in step.argv and "-i" in step.argv, stem
                assert "--flood" not in step.argv and "--rand-source" not in step.argv
                count = int(step.argv[step.argv.index("-c") + 1])
                assert 0 < count <= 2000 * 20
        if stem.startswith("TCP_IP-DDoS") or stem.startswith("MQTT-DDoS"):
            assert len({st.host for st in s.steps}) == 4, stem
        elif s.steps:
            assert {st.host for st in s.steps} == {"att1"}, stem


def test_every_step_targets_only_lab_addresses(catalog: dict[str, Scenario]) -> None:
    topo = default_topology()
    for s in catalog.values():
        s.check(topo)  # raises on a bad target
        for step in s.steps:
            assert all(t.startswith("10.77.0.") for t in step.targets)


def test_step_with_outside_target_is_refused() -> None:
    topo = default_topology()
    bad = AttackStep("att1", ("hping3", "-S", "-c", "5", "8.8.8.8"), ("8.8.8.8",))
    with pytest.raises(ConfigError, match="8.8.8.8"):
        bad.check(topo)
    hidden = AttackStep("att1", ("nmap", "-sn", "127.0.0.1"), ("10.77.0.10",))
    with pytest.raises(ConfigError, match="127.0.0.1"):
        hidden.check(topo)
    scenario = dataclasses.replace(build_scenarios(topo, 5)["TCP_IP-DoS-SYN"], steps=(bad,))
    with pytest.raises(ConfigError, match="outside the lab subnet"):
        scenario.check(topo)


def test_bad_seconds_are_refused() -> None:
    with pytest.raises(ConfigError, match="seconds must be in"):
        build_scenarios(default_topology(), seconds=0)
